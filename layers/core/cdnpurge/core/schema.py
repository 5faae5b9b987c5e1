"""Where a msgspec validation failed and what was wrong, as `field.path: problem`, never quoting the input.

Documents the function reads (its configuration, its own queue messages, its environment) are typed as
msgspec Structs: defining one costs microseconds where a pydantic model costs a millisecond and pydantic's
import alone tens of milliseconds of every cold start (bench/README.md: cold start). msgspec stops at the
first problem and words it as ``Expected `int` >= 1 - at `$.providers[0].rate_per_second` ``; `located`
turns that into a field path the way this project names fields (`providers[0].rate_per_second`) and a
problem that never quotes the value (an enum's message quotes it, and a value pasted into the wrong field may
be a credential).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import msgspec

# msgspec's message ends with " - at `$<path>`" when the problem is below the top level.
_AT: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")
# Messages of msgspec that quote the input: the value is dropped, the rule kept.
_QUOTING: Final = ((re.compile(r"^Invalid enum value .*$", re.DOTALL), "not one of the allowed values"),)


class Located(NamedTuple):
    """One validation problem: `where` is the field path (`providers[0].name`, "" at the top level)."""

    where: str
    what: str

    def line(self, *, prefix: str = "") -> str:
        """`prefix.where: what` (or `what` alone when there is no place to name)."""
        place = ".".join(part for part in (prefix, self.where) if part).replace(".[", "[")
        return f"{place}: {self.what}" if place else self.what


def located(error: msgspec.ValidationError) -> Located:
    """The field path and the problem of a msgspec `ValidationError`, in this project's words."""
    message = str(error)
    at = _AT.search(message)
    path = at.group("path") if at else ""
    what = message[: at.start()] if at else message
    where = path.removeprefix(".")
    if (missing := _MISSING.match(what)) is not None:
        where, what = _join(where, missing.group("field")), "field required"
    elif (unknown := _UNKNOWN.match(what)) is not None:
        where, what = _join(where, unknown.group("field")), "unknown field (not one this document has)"
    else:
        for pattern, replacement in _QUOTING:
            if pattern.match(what):
                what = replacement
    return Located(where, what)


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field
