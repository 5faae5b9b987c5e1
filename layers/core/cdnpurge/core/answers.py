"""Reading numbers and ids out of a CDN's answer (or an item read back from DynamoDB): finite and bounded
before anything uses them.

A CDN's answer is input like any message. JSON allows `1e999` (Python reads it as infinity), a header can
say `nan`, `-5` or a number with 5,000 digits, and an id can be a megabyte of control characters. Used raw,
such a value aborted a batch after its purges were made (`math.ceil(inf)` while scheduling a check) or
stalled a provider. Every adapter reads the numbers and ids of an answer through these two functions, so
what the rest of the code sees is always a finite number within the bounds the caller states, an id of
bounded length, or None (the answer said nothing usable). Items read back from the table are input too,
whoever wrote them: their numbers go through `stored_number`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

# The longest a provider's own answer (Retry-After, a rate-limit reset, CloudFront's back-off) may pause it.
# A longer ask (`Retry-After: 1000000000`, a reset date years ahead) would otherwise stop every later batch
# of the warm container; capped, the records deferred meanwhile come back when the pause ends.
MAX_PROVIDER_WAIT_SECONDS: Final = 300.0
MAX_ANSWER_SECONDS: Final = 86_400.0  # any other duration an answer names (an ETA): at most a day
# A count (calls or objects left, a rate, a request's size) or an epoch time in a rate-limit answer.
MAX_ANSWER_COUNT: Final = 1e12
MAX_ANSWER_ID_CHARS: Final = 256  # a job, purge or support id: CloudFront's are 14 characters, UUIDs 36
_NUMBER_CHARS: Final = 64  # a number written with more characters than this is not one an API sends
# DynamoDB numbers have up to 38 significant digits and magnitudes up to 1E+125, which it may write out in full.
_STORED_NUMBER_CHARS: Final = 160
_ID: Final = re.compile(r"[!-~]+")  # printable ASCII without spaces: reads the same in every log and terminal


def answer_number(value: object, *, low: float, high: float) -> float | None:
    """`value` (a JSON number, or a header's text) as a finite float clamped into [`low`, `high`].

    None for anything that names no number: absent, a boolean, NaN, not numeric, or longer than 64
    characters. Infinity and numbers out of range are clamped (`1e999` seconds is "as long as allowed"),
    so a caller never compares, adds or rounds a value it has not bounded."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = float(value) if abs(value) < 1 << 1023 else math.copysign(math.inf, value)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and len(value) <= _NUMBER_CHARS:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if math.isnan(number):
        return None
    return min(high, max(low, number))


def stored_number(item: Mapping[str, Any], name: str, *, low: float, high: float) -> float | None:
    """The number attribute `name` (`{"N": "..."}`) of a DynamoDB item, finite and clamped into [`low`,
    `high`] as `answer_number` does; None when absent or not a number."""
    value = item.get(name)
    text = value.get("N") if isinstance(value, Mapping) else None
    if not isinstance(text, str) or len(text) > _STORED_NUMBER_CHARS:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return answer_number(number, low=low, high=high)


def answer_id(value: object, *, limit: int = MAX_ANSWER_ID_CHARS) -> str | None:
    """An id from an answer (a string, or an integer as text): printable ASCII without spaces, at most
    `limit` characters; None otherwise, so an id is never what breaks a log line, a message or a terminal."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value) if abs(value) < 10**limit else None
    if not isinstance(value, str) or not 0 < len(value) <= limit or not _ID.fullmatch(value):
        return None
    return value
