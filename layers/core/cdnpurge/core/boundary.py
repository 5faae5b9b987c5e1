"""Fault boundaries: anything unexpected fails one record or one request, never the batch.

Every stage already turns the failures it knows (a malformed record, a bad key, a target a provider cannot
express, a CDN's refusal) into data naming the record's problem. What it does not know, an exception of any
type from a parser, a library or a bug, must not escape either: one poison record would otherwise return
the whole batch, come back with every redelivery, and take its good neighbours to the dead-letter queue
after five receives. So each stage catches `Exception` (never a list of types: the next one is always a
type nobody listed) around its unit of work and records it with `unexpected`:

- per record: decoding one SQS record (`events.reading.guarded`), translating one change (`rules.translate`,
  including a rule whose pattern cannot compile), converting and rendering one target per provider
  (`plan.lanes`): the record fails *permanently* (a retry replays the same input through the same code),
  with the reason, marked `unexpected` so it is logged as such and counted (`RECORD_METRIC`);
- per request: one adapter call (`execute.Executor.run` around `Provider.purge`, HTTP and boto3 alike):
  the request fails permanently with `providers.errors.UnexpectedError`, and its records with it. The
  HTTP flow tells apart what it can first (`providers.http.HttpProvider`): a request that cannot be built
  or sent (a URL too long for the client, a header value that cannot be encoded) is refused permanently
  (`RejectedError`); an answer that cannot be read (a body that does not decode, a shape the adapter fails
  on) is transient (`UnreadableAnswerError`), since the next answer may be readable. Both unexpected
  classes count per provider as `REQUEST_METRIC`, and mark their records `unexpected`.

A reason names the exception's type, where it was raised (file and line: enough to find a bug, nothing a
secret could hide in) and a bounded, redacted excerpt of its message.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import PurePath
from typing import Final

from cdnpurge.core.errors import bounded

RECORD_METRIC: Final = "RecordFailedUnexpectedly"  # records failed by an exception no stage expected
REQUEST_METRIC: Final = "RequestFailedUnexpectedly"  # provider requests failed by one (per provider)
EXCERPT_CHARS: Final = 200


def unexpected(error: BaseException, during: str, *, redact: Callable[[str], str] = str) -> str:
    """The reason a unit failed on `error` while `during` (a gerund phrase: "translating", ...).

    The message is redacted before it is cut, so a secret cannot survive as a fragment at the cut."""
    excerpt = bounded(redact(str(error)), EXCERPT_CHARS)
    return f"unexpected {type(error).__name__}{_raised_at(error)} while {during}: {excerpt!r}"


def _raised_at(error: BaseException) -> str:
    """` at module.py:123`: the innermost frame that raised, file name only."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else None
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {PurePath(frame.filename).name}:{frame.lineno}"
