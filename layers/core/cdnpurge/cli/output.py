"""The one place operator output is made safe: external text on a terminal, and in a chart's labels.

What a command prints mixes its own words with text it did not write: a CDN's error message, a key from a
bucket, a trail record, a dead letter's reason, a run file's labels. Printed raw, an ESC sequence from a
CDN's answer can recolour or clear the terminal, a carriage return overwrite a status row with a fake
"ok", a backspace erase what came before, a bidi override reorder a line. So:

- `terminal_text` escapes every character that moves the cursor or changes how text shows (C0 controls
  but the line break, DEL, C1 controls, line and paragraph separators, bidi embeddings, overrides and
  isolates) as a visible `\\xNN` / `\\uNNNN`, and bounds a field's length when asked;
- `SafeText` is the stream every command writes through (`cdnpurge.cli.main.main` wraps stdout, stderr and
  the command's `out` in it), so no output path can forget: a line a command writes reaches the terminal
  escaped, whatever it quotes;
- `chart_text` does the same for a chart's labels, and escapes matplotlib's mathtext (`$`), so a label
  from a run file draws as the text it is;
- `external` is for one external value inside a line a command writes (a CDN's error in a status row, a dead
  letter's reason, a pause reason read back from SSM, what doctor found): escaped as above, its line breaks
  escaped too, and cut at `MAX_FIELD_CHARS`. The stream cannot tell a command's own line break from one
  inside a value it quotes, so a row that quotes a value passes it through `external`: a reason written as
  `"...\nok    PurgeFunction ..."` would otherwise print a row of its own that looks like the command's.
"""

from __future__ import annotations

import io
import re
from typing import Final, TextIO, cast

# What may not reach a terminal as it is: C0 controls except the line break, DEL and C1 controls, the line
# and paragraph separators, and the bidi controls (ALM, LRM, RLM, embeddings, overrides, isolates).
_UNSAFE: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
MAX_FIELD_CHARS: Final = 500  # one external field on one line: longer is cut, saying how long it was


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str, limit: int | None = None) -> str:
    """`text` with every unsafe character shown as an escape (see the module), cut to `limit` characters
    (saying how long it was) when a limit is given."""
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} chars)"
    return _UNSAFE.sub(_escaped, text)


def external(value: object, limit: int = MAX_FIELD_CHARS) -> str:
    """One external value inside a line: escaped as `terminal_text`, its line breaks shown as `\\x0a`, and cut
    to `limit` characters (saying how long it was), so it can neither start a line of its own nor fill a screen."""
    return terminal_text(str(value), limit).replace("\n", "\\x0a")


def chart_text(text: str, limit: int = 120) -> str:
    """`text` for a chart's title or label: escaped as for a terminal, bounded, `$` escaped so matplotlib
    never reads it as mathtext."""
    return terminal_text(text, limit).replace("$", r"\$")


class SafeText(io.TextIOBase):
    """A text stream that writes through `terminal_text` to the stream it wraps."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(terminal_text(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


def safe_stream(stream: TextIO) -> TextIO:
    """`stream`, writing through `terminal_text` (a stream already safe is returned as it is)."""
    if isinstance(stream, SafeText):
        return cast(TextIO, stream)
    return cast(TextIO, SafeText(stream))
