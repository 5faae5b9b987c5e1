"""The `{name}` / `{name*}` placeholder syntax of rule patterns and templates, and a pattern's regex.

Its own module so that the translate stage (`cdnpurge.core.translate`), which fills templates and matches
keys, and configuration (`cdnpurge.core.config`), which checks them, share one definition and neither
imports the other at run time (translate names configuration's types for type checking only).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\*?)\}")  # {name} one segment, {name*} any number


@cache
def compile_match(pattern: str) -> re.Pattern[str]:
    """`articles/{slug}.html` -> a full-match regex with named groups; `{x*}` spans segments."""
    regex, position = [], 0
    for placeholder in PLACEHOLDER.finditer(pattern):
        regex.append(re.escape(pattern[position : placeholder.start()]))
        name, greedy = placeholder.groups()
        regex.append(f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)")
        position = placeholder.end()
    regex.append(re.escape(pattern[position:]))
    return re.compile("".join(regex))
