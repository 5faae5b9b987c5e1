"""Continuation: a record whose change is too big for one receive is never dead-lettered for size alone.

Each receive that moves a change forward (some of its targets purged, recorded as its attempt's progress:
`cdnpurge.runtime.progress`) counts against the queue's `maxReceiveCount` all the same, so a change of
thousands of URLs at a one-URL-per-call CDN would reach the dead-letter queue on its fifth receive while
still advancing. On its last allowed receive such a record is sent again to the purge queue as a new
message (same body, its own attributes kept, `cdnpurge-continued` counting the continuations) and
acknowledged: the new message starts with a receive count of one, and its changes keep their ids (the ids
come from the body), so the next receive continues the same attempt where this one stopped.

It ends: a continuation is sent only for a record that advanced on this receive (progress *recorded* in its
attempt: `Settlement.advanced`), an attempt records at most `MAX_DONE` targets, and a record is continued at
most `MAX_CONTINUATIONS` times (its `cdnpurge-continued` count, read back as untrusted input: a publisher
can set any attribute on its message), after which it is dead-lettered as any record out of receives. A
record that made no progress is dead-lettered as before (`cdnpurge.runtime.deadletter`), and so is one whose
change id is its SQS message id (a bare publish message without `id`: a new message would be a new change).
Best effort: a failed send leaves the record in `batchItemFailures` (dead-lettering then applies, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from cdnpurge.core.answers import answer_number
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import describe_error
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.deadletter import original_attributes, receive_count

CONTINUED_ATTRIBUTE: Final = "cdnpurge-continued"  # how many times the record was continued
# At most this many continuations of one record (each follows maxReceiveCount receives that all advanced).
MAX_CONTINUATIONS: Final = 1000
_SQS_MAX_ATTRIBUTES: Final = 10
# Change ids taken from the SQS message id (raw publish messages without `id`): not kept by a new message.
MESSAGE_ID_CHANGES: Final = "sqs:"


class Continuations(msgspec.Struct, frozen=True):
    """What the continuation step did for one batch."""

    continued: tuple[str, ...] = ()  # source ids sent again as new messages (acknowledged)
    errors: tuple[str, ...] = ()  # sends that failed (redacted); those records stay failed


def continue_progressing(
    sqs: Any,
    queue_url: str,
    records: Mapping[str, Mapping[str, Any]],
    *,
    progressing: Iterable[str],
    change_ids: Mapping[str, tuple[str, ...]],
    max_receive_count: int | None,
    redact: Callable[[str], str],
    deadline: Deadline,
) -> Continuations:
    """Send again, as new messages, the `progressing` records (of `records`, the batch's SQS records by id)
    on their last allowed receive (`change_ids`: each source's change ids); every send ends before
    `deadline`."""
    if max_receive_count is None:
        return Continuations()
    continued: list[str] = []
    errors: list[str] = []
    for source in sorted(progressing):
        record = records.get(source)
        if record is None or receive_count(record) < max_receive_count:
            continue  # SQS's own redelivery continues it
        if any(change.startswith(MESSAGE_ID_CHANGES) for change in change_ids.get(source, ())):
            continue
        if continued_count(record) >= MAX_CONTINUATIONS:
            errors.append(f"{source}: not continued: continued {MAX_CONTINUATIONS} times already")
            continue
        try:
            with bounded_call(deadline, CALL_SECONDS, what="continuing a record", need=MIN_CALL_SECONDS):
                sqs.send_message(QueueUrl=queue_url, MessageBody=record.get("body") or "", **_attributes(record))
        except OutOfTimeError:
            errors.append(f"{source}: not continued: out of time before the function's deadline")
            continue
        except Exception as exc:  # the record stays failed: dead-lettering applies as before
            errors.append(f"{source}: {describe_error(exc, redact)}")
            continue
        continued.append(source)
    return Continuations(tuple(continued), tuple(errors))


def continued_count(record: Mapping[str, Any]) -> int:
    """How many times the record was continued: its attribute, a whole number within [0, MAX_CONTINUATIONS]
    (anything else, which this function never writes, counts as the cap: the record is not continued again)."""
    attributes = record.get("messageAttributes")
    before = attributes.get(CONTINUED_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    if before is None:
        return 0
    text = before.get("stringValue") if isinstance(before, Mapping) else None
    count = answer_number(text, low=-1, high=MAX_CONTINUATIONS + 1)
    if count is None or count != int(count) or not 0 <= count <= MAX_CONTINUATIONS:
        return MAX_CONTINUATIONS
    return int(count)


def _attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own attributes, and the count of its continuations."""
    attributes = original_attributes(record)
    kept = dict(list(attributes.items())[: _SQS_MAX_ATTRIBUTES - 1])
    kept[CONTINUED_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(continued_count(record) + 1)}
    return {"MessageAttributes": kept}
