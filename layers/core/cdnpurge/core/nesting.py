"""How deep a JSON or YAML text nests, found before parsing it and without recursion.

Python's JSON and YAML parsers recurse once per level: a document nested thousands deep ends in a
`RecursionError` (or, from a deep stack, earlier), far from the input that caused it. Every parser of
untrusted text (the decode stage's bodies, `cdnpurge plan --event`, a configuration) asks this first, so such a
document is refused by name, cheaply.
"""

from __future__ import annotations

import re
from typing import Final

MAX_NESTING: Final = 32  # the deepest document any envelope nests (an S3 record in SNS in SQS is 6 deep)
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def nesting_problem(text: str) -> str | None:
    """Why `text` nests too deep to parse, found before parsing and without recursion; None when fine.

    Only a text with more brackets than `MAX_NESTING` is looked at: its strings are dropped, then its
    innermost bracket pairs, `MAX_NESTING` times over (each pass is one C-speed replace); whatever is left
    is nested deeper than that (or unbalanced, which the parser then reports itself)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_NESTING):
        shorter = brackets.replace("[]", "").replace("{}", "")
        if shorter == brackets:
            break
        brackets = shorter
    if not brackets or brackets.count("[") + brackets.count("{") != brackets.count("]") + brackets.count("}"):
        return None
    return f"nests arrays or objects deeper than {MAX_NESTING} levels"
