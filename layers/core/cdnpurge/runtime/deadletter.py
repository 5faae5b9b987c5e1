"""Dead-lettering: a record no retry can fix, or on its last allowed receive, goes to the dead-letter queue
with its reasons attached, instead of being retried five times or moved silently by SQS.

- a record that failed *permanently* (malformed, bad key or host, refused by a provider) is sent at once
  (`DeadLetterReason.PERMANENT`) and acknowledged;
- a record that failed *transiently* is returned in `batchItemFailures`, except on its last allowed
  receive (`ApproximateReceiveCount >= MAX_RECEIVE_COUNT`), when it is sent the same way
  (`DeadLetterReason.RETRIES_EXHAUSTED`);
- if the send fails, the record stays in `batchItemFailures`: SQS's own redrive is the fallback, so
  nothing is ever dropped.

The attribute names live here because `cdnpurge redrive` reads them back: it shows the reason and strips
every `cdnpurge-` attribute (`kept_attributes`) before returning a message to the purge queue.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final

import msgspec

from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import describe_error
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS

ATTRIBUTE_PREFIX: Final = "cdnpurge-"  # every attribute the function adds; `cdnpurge redrive` strips them
ERROR_ATTRIBUTE: Final = "cdnpurge-error"  # the reasons, "; "-separated
FAILURE_ATTRIBUTE: Final = "cdnpurge-failure"  # a `DeadLetterReason`
SOURCE_ATTRIBUTE: Final = "cdnpurge-source"  # "<queue ARN> <message id>"
RECEIVES_ATTRIBUTE: Final = "cdnpurge-receive-count"
_SQS_MAX_ATTRIBUTES: Final = 10
_ATTRIBUTE_CHARS: Final = 1024
# Characters SQS refuses in message attributes: those outside XML 1.0's character ranges (#x9, #xA, #xD,
# #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF), spelled as what is left out: the negated class with ranges
# up to U+10FFFF took 4 ms of every cold start to compile, this one well under 1 ms (same matches).
_NOT_SQS_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class DeadLetterReason(StrEnum):
    """Why a record went to the dead-letter queue (the `cdnpurge-failure` attribute's value)."""

    PERMANENT = "permanent"  # no retry can fix it
    RETRIES_EXHAUSTED = "retries-exhausted"  # still failing on its last allowed receive
    VERIFICATION_FAILED = "verification-failed"  # a purge accepted, and the edge still stale past the deadline
    EXPIRED = "expired"  # a message the function wrote itself, arrived past its end time: never run


class DeadLettering(msgspec.Struct, frozen=True):
    """What the dead-letter step did for one batch."""

    moved: Mapping[str, DeadLetterReason] = msgspec.field(default_factory=dict)  # source id -> why it was moved
    errors: tuple[str, ...] = ()  # sends that failed (redacted); those records stay in batchItemFailures


def dead_letter(
    sqs: Any,
    queue_url: str,
    records: Mapping[str, Mapping[str, Any]],
    *,
    failed_sources: tuple[str, ...],
    reasons: Mapping[str, tuple[str, ...]],
    permanent: frozenset[str],
    max_receive_count: int | None,
    redact: Callable[[str], str],
    deadline: Deadline,
) -> DeadLettering:
    """Send every failed record (of `records`, the batch's SQS records by id) that should not be retried to
    `queue_url`, with its reasons attached.

    Every send ends before `deadline`; one that cannot leaves its record in `batchItemFailures` (SQS
    redelivers it, and its redrive policy is the fallback), so the function still answers in time."""
    if not failed_sources:
        return DeadLettering()
    moved: dict[str, DeadLetterReason] = {}
    errors: list[str] = []
    for source in failed_sources:
        record = records.get(source)
        if record is None:
            continue
        why = _reason(source in permanent, record, max_receive_count)
        if why is None:
            continue
        try:
            with bounded_call(deadline, CALL_SECONDS, what="dead-lettering", need=MIN_CALL_SECONDS):
                sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=record.get("body") or "",
                    MessageAttributes=_attributes(record, why, reasons.get(source, ()), redact),
                )
        except OutOfTimeError:
            errors.append(f"{source}: not sent: out of time before the function's deadline")
            continue
        except Exception as exc:  # SQS unreachable or the message refused: SQS's own redrive remains
            errors.append(f"{source}: {describe_error(exc, redact)}")
            continue
        moved[source] = why
    return DeadLettering(moved, tuple(errors))


def dead_letter_body(
    sqs: Any,
    queue_url: str,
    body: str,
    *,
    why: DeadLetterReason,
    reasons: tuple[str, ...],
    redact: Callable[[str], str],
    deadline: Deadline,
) -> str | None:
    """Send a message the function wrote itself (a verification check) to `queue_url` with its reasons,
    before `deadline`; the (redacted) send error, or None when it was sent."""
    try:
        with bounded_call(deadline, CALL_SECONDS, what="dead-lettering a check", need=MIN_CALL_SECONDS):
            sqs.send_message(
                QueueUrl=queue_url, MessageBody=body, MessageAttributes=_attributes({}, why, reasons, redact)
            )
    except Exception as exc:  # reported by the caller, which keeps the message with SQS
        return redact(describe_error(exc))
    return None


def kept_attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    """A dead-lettered message's own attributes (as ReceiveMessage returns them), in SendMessage form,
    without the `cdnpurge-` ones added when it was dead-lettered: what `cdnpurge redrive` sends back."""
    return {
        name: {key: value for key, value in attribute.items() if key in ("DataType", "StringValue", "BinaryValue")}
        for name, attribute in message.get("MessageAttributes", {}).items()
        if not name.startswith(ATTRIBUTE_PREFIX)
    }


def describe_dead_letter(message: Mapping[str, Any]) -> str:
    """One line for a dead-lettered message (as ReceiveMessage returns it): its id, reason and why."""
    attributes = message.get("MessageAttributes", {})
    reason = attributes.get(ERROR_ATTRIBUTE, {}).get("StringValue")
    failure = attributes.get(FAILURE_ATTRIBUTE, {}).get("StringValue")
    if reason is None:
        return f"{message['MessageId']}: no reason attached (moved by the queue's redrive policy)"
    return f"{message['MessageId']} [{failure or 'failed'}]: {reason}"


def _reason(permanent: bool, record: Mapping[str, Any], max_receive_count: int | None) -> DeadLetterReason | None:
    if permanent:
        return DeadLetterReason.PERMANENT
    if max_receive_count is not None and receive_count(record) >= max_receive_count:
        return DeadLetterReason.RETRIES_EXHAUSTED
    return None


def _attributes(
    record: Mapping[str, Any], why: DeadLetterReason, reasons: tuple[str, ...], redact: Callable[[str], str]
) -> dict[str, Any]:
    ours = {
        ERROR_ATTRIBUTE: "; ".join(reasons) or "failed",
        FAILURE_ATTRIBUTE: why.value,
        SOURCE_ATTRIBUTE: f"{record.get('eventSourceARN', '')} {record.get('messageId', '')}".strip(),
        RECEIVES_ATTRIBUTE: str(receive_count(record)),
    }
    attributes = {
        name: {"DataType": "String", "StringValue": _attribute_text(redact(value))} for name, value in ours.items()
    }
    for name, value in original_attributes(record).items():
        if len(attributes) >= _SQS_MAX_ATTRIBUTES:
            break
        attributes.setdefault(name, value)
    return attributes


def sqs_records(event: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The event's SQS records by message id (the source id of their changes); other records are skipped."""
    records = event.get("Records")
    if not isinstance(records, list):
        return {}
    return {
        record["messageId"]: record
        for record in records
        if isinstance(record, Mapping)
        and record.get("eventSource") == "aws:sqs"
        and isinstance(record.get("messageId"), str)
    }


def receive_count(record: Mapping[str, Any]) -> int:
    """How many times SQS has delivered this record (1 when the attribute is absent or unreadable)."""
    attributes = record.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1


def _attribute_text(value: str) -> str:
    text = _NOT_SQS_TEXT.sub("?", value)[:_ATTRIBUTE_CHARS]
    return text or "-"


def original_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own message attributes in SendMessage form (Lambda's event uses other field names)."""
    converted: dict[str, Any] = {}
    attributes = record.get("messageAttributes")
    if not isinstance(attributes, Mapping):
        return converted
    for name, value in attributes.items():
        if not isinstance(value, Mapping) or str(name).startswith(ATTRIBUTE_PREFIX):
            continue
        data_type = value.get("dataType") or "String"
        if value.get("stringValue") is not None:
            converted[name] = {"DataType": data_type, "StringValue": value["stringValue"]}
        elif value.get("binaryValue") is not None:
            raw = value["binaryValue"]
            binary = base64.b64decode(raw) if isinstance(raw, str) else raw
            converted[name] = {"DataType": data_type, "BinaryValue": binary}
    return converted
