"""Returned records come back when their retry is due, not after the queue's visibility timeout.

A record returned in `batchItemFailures` becomes visible again when its visibility timeout (720 s) ends,
so a throttled purge waited twelve minutes although the CDN asked for ten seconds. For each returned SQS
record whose every failure says when a retry is due (a throttle's pause, a deferral's pacing or back-off
delay: `RecordFailures.retry_in`), the visibility is set to that delay with `ChangeMessageVisibility`:

- never shorter than `VISIBILITY_FLOOR_SECONDS x 2^(receives - 1)`, so a record that keeps being deferred
  backs off (30, 60, 120, 240 s) instead of spending its five receives, and so its way to the dead-letter
  queue, within a minute;
- within SQS's range, 0 to `MAX_VISIBILITY_SECONDS` (12 hours).

Best effort: a failed call is reported (logged, counted), never fatal; the record then simply comes back
after the queue's own visibility timeout, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import describe_error
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.deadletter import receive_count

VISIBILITY_FLOOR_SECONDS: Final = 30
MAX_VISIBILITY_SECONDS: Final = 43_200  # SQS's limit for ChangeMessageVisibility


class VisibilityChanges(msgspec.Struct, frozen=True):
    """What the visibility step did for one batch."""

    changed: Mapping[str, int] = msgspec.field(default_factory=dict)  # source id -> seconds until it is visible again
    errors: tuple[str, ...] = ()  # calls that failed (redacted); those records keep the queue's timeout


def visibility_for(retry_in: float, receives: int) -> int:
    """Seconds of visibility for a record whose retry is due in `retry_in` s, on its `receives`-th receive."""
    floor = VISIBILITY_FLOOR_SECONDS * 2 ** min(max(0, receives - 1), 16)
    wanted = max(float(floor), retry_in if math.isfinite(retry_in) else MAX_VISIBILITY_SECONDS)
    return min(MAX_VISIBILITY_SECONDS, math.ceil(wanted))


def return_when_due(
    sqs: Any,
    queue_url: str,
    records: Mapping[str, Mapping[str, Any]],
    *,
    returned: Iterable[str],
    retry_in: Mapping[str, float],
    redact: Callable[[str], str],
    deadline: Deadline,
) -> VisibilityChanges:
    """`ChangeMessageVisibility` for each returned record (of `records`, the batch's SQS records by id)
    whose retry time is known, each call ending before `deadline` (a record whose call cannot keeps the
    queue's visibility timeout)."""
    changed: dict[str, int] = {}
    errors: list[str] = []
    for source in returned:
        record = records.get(source)
        due = retry_in.get(source)
        if record is None or due is None or not isinstance(record.get("receiptHandle"), str):
            continue
        seconds = visibility_for(due, receive_count(record))
        try:
            with bounded_call(deadline, CALL_SECONDS, what="changing visibility", need=MIN_CALL_SECONDS):
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=seconds
                )
        except OutOfTimeError:
            errors.append(f"{source}: not changed: out of time before the function's deadline")
            continue
        except Exception as exc:  # best effort: the queue's own visibility timeout still brings it back
            errors.append(redact(f"{source}: {describe_error(exc)}"))
            continue
        changed[source] = seconds
    return VisibilityChanges(changed, tuple(errors))
