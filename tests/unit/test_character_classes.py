"""The character classes the runtime and planner test text with match exactly the sets they name.

Both are spelled as what they leave out (compiling a class with ranges up to U+10FFFF cost every cold start
milliseconds), so they are checked here against the definitions themselves, over every code point of the
Basic Multilingual Plane and the edges of the planes above it.
"""

from __future__ import annotations

import json

from cdnpurge.core.plan.packing import _NEEDS_ESCAPE
from cdnpurge.runtime.deadletter import _NOT_SQS_TEXT

ASTRAL_EDGES = (0x10000, 0x10001, 0x1F600, 0xFFFFF, 0x100000, 0x10FFFE, 0x10FFFF)
CODE_POINTS = (*range(0x10000), *ASTRAL_EDGES)


def xml_char(code: int) -> bool:
    """XML 1.0's Char production: what SQS accepts in a message attribute."""
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


def test_not_sqs_text_matches_exactly_what_xml_refuses() -> None:
    wrong = [code for code in CODE_POINTS if bool(_NOT_SQS_TEXT.match(chr(code))) == xml_char(code)]
    assert wrong == []


def test_needs_escape_matches_exactly_what_json_escapes_or_is_not_ascii() -> None:
    def escaped(code: int) -> bool:
        return code > 0x7E or json.dumps(chr(code)) != f'"{chr(code)}"'

    wrong = [code for code in CODE_POINTS if bool(_NEEDS_ESCAPE.match(chr(code))) != escaped(code)]
    assert wrong == []
