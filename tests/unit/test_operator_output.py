"""Operator output: text from a CDN, a bucket or a queue reaches the terminal escaped, whatever prints it.

`cdnpurge.cli.main.main` writes everything (the command's `out`, stdout, stderr) through
`cdnpurge.cli.output.SafeText`; these tests put hostile text through a real command and through every stream.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability.tally import hostile

from cdnpurge.cli import validate
from cdnpurge.cli.main import main
from cdnpurge.cli.output import chart_text, terminal_text

# What must never reach a terminal raw: C0 but the line break, DEL, C1, separators and bidi controls.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
HOSTILE = "\x1b[2J\x1b]0;owned\x07\rok      \x08\x08\x9b31m\u202eevil\u2066\x00"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.none() | st.integers(0, 200))
def test_terminal_text_leaves_nothing_that_moves_the_cursor(text: str, limit: int | None) -> None:
    shown = terminal_text(text, limit)
    assert not RAW.search(shown)
    assert limit is None or len(text) <= limit or shown.count("\n") <= text[:limit].count("\n")
    hostile("output")


def test_chart_text_escapes_mathtext_and_controls() -> None:
    assert chart_text("cost $5 \\alpha $x$\r") == "cost \\$5 \\alpha \\$x\\$\\x0d"


def test_every_stream_a_command_writes_is_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a command that prints hostile text to its `out`, to stdout and to stderr
    def loud(args: object, context: object) -> int:
        print(f"out: {HOSTILE}", file=context.out)  # type: ignore[attr-defined]
        print(f"stdout: {HOSTILE}")
        print(f"stderr: {HOSTILE}", file=sys.stderr)
        return 0

    monkeypatch.setattr(validate, "run", loud)
    out = io.StringIO()
    # When it runs
    assert main(["validate", "-c", "unused.yaml"], out=out) == 0
    captured = capsys.readouterr()
    # Then nothing raw reached any stream, and the text is still there, escaped
    for text in (out.getvalue(), captured.out, captured.err):
        assert not RAW.search(text) and "\\x1b[2J" in text and "\\u202eevil" in text
    hostile("output", 3)


def test_a_cdns_error_text_is_escaped_in_purge_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import FASTLY_SERVICE, FASTLY_TOKEN, key_purge_config

    from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
    from cdnpurge_local.fakecdn.server import FakeCDN, Fault

    # Given a CDN whose refusal carries an ESC sequence, a carriage return and a fake "ok"
    monkeypatch.setenv("FASTLY_API_TOKEN", FASTLY_TOKEN)
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        config = key_purge_config(tmp_path, cdn.endpoint("fastly"))
        cdn.inject("fastly", Fault(status=400, body=HOSTILE.encode()))
        out = io.StringIO()
        # When the purge is refused
        code = main(["purge", "-c", str(config), "-p", "fastly", "--key", "article-1"], out=out)
    # Then the refusal is printed, escaped: no row can be overwritten
    assert code == 1
    assert not RAW.search(out.getvalue())
    assert "\\x1b[2J" in out.getvalue() and "\\x0dok" in out.getvalue()
    hostile("output")


def test_no_command_writes_past_the_safe_streams() -> None:
    """Structural: every command writes to `context.out`, `sys.stdout` or `sys.stderr`, which `main` wraps;
    none reaches for the interpreter's original streams, a raw descriptor or a stream's bytes."""
    import cdnpurge.cli

    bypasses = ("sys.__stdout__", "sys.__stderr__", "os.write(", ".buffer.write(", "os.fdopen(")
    found = [
        f"{path.name}: {bypass}"
        for path in Path(cdnpurge.cli.__path__[0]).glob("*.py")
        for bypass in bypasses
        if bypass in path.read_text()
    ]
    assert found == []


def test_a_status_row_shows_trail_values_as_one_bounded_field_each() -> None:
    """The trail holds keys, targets, a CDN's error text and ids: each is one field of its row, so a line break
    in any of them cannot print a row of its own, and a time that is not one is shown, not a traceback."""
    from cdnpurge.cli.status import ChangeStatus, ProviderStatus, write_table

    forged = "\nfastly    2026-01-01 00:00:00Z  +1.0 s  +2.0 s  1  -  -" + HOSTILE
    provider = ProviderStatus(
        provider="fastly" + forged,
        targets=("url:https://www.example.com/a" + forged, "x" * 50_000),
        targets_omitted=0,
        provider_ids=("id" + forged,),
        accepted_at="not a time" + forged,
        completed_at="2026-13-99T99:99:99Z",
        fresh_at=None,
        attempts=1,
        last_error="503" + forged + "y" * 10_000,
        coalesced_into="coalesce:fastly#1" + forged,
    )
    change = ChangeStatus(
        "pub:x" + forged, "published" + forged, {"publisher_id": "p" + forged}, None, None, None, (provider,)
    )
    shown = io.StringIO()
    write_table([change], shown)
    lines = shown.getvalue().splitlines()
    # The header, targets, coalesced, column titles and the one provider row: nothing more
    assert len(lines) == 5, lines
    assert all(len(line) < 6_000 and not RAW.search(line) for line in lines)
    assert "503\\x0afastly" in lines[-1]
    hostile("output", 8)


# Fields that hold text a command read back from AWS or a CDN (a doctor finding, a dead letter's reason, a trail's
# targets, ids and errors, a pause record's author), by the attribute names the commands' types give them.
EXTERNAL_FIELDS = frozenset(
    {"found", "fix", "reason", "reasons", "last_error", "error", "targets", "provider_ids", "change_id"}
    | {"coalesced_into", "by", "message"}
)
# Interpolations of such a name that are the operator's own words, with why.
OPERATORS_OWN = {
    ("purge.py", "error.message"): "the planner's message about the targets the operator typed",
    ("redrive.py", "self.reason"): "the operator's --reason filter, echoed",
}


def test_no_command_interpolates_an_external_field_into_a_line_raw() -> None:
    """Structural: a line a command writes quotes an external field (`x.found`, `x.last_error`, ...) only through
    `external` (one line, escaped, bounded), so a line break in it cannot print a row of its own; a new command
    or row that forgets is reported with file and line."""
    import ast

    import cdnpurge.cli

    raw = []
    for path in sorted(Path(cdnpurge.cli.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.JoinedStr):
                continue
            for value in node.values:
                expression = value.value if isinstance(value, ast.FormattedValue) else None
                if isinstance(expression, ast.Attribute) and expression.attr in EXTERNAL_FIELDS:
                    shown = ast.unparse(expression)
                    if (path.name, shown) not in OPERATORS_OWN:
                        raw.append(f"{path.name}:{node.lineno}: {{{shown}}}")
    assert raw == [], f"quote these through cdnpurge.cli.output.external: {raw}"
