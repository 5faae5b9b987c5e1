"""The AWS event documents cdnpurge receives, built in one place for tests, the local stack and the bench.

Why here: `cdnpurge_local` is the one package that the unit and reliability tests (through
`tests/helpers.py` and `tests/reliability/support.py`), the benchmark (`python -m bench.storm`, run from
the repository root) and the local tooling (`event_source`, the SQS poller stand-in) can all import: it is
installed into the virtualenv by `make install`, and is type-checked with the rest. `tests/` is not a
package the bench could import, and `bench/` is not installed.

Each builder returns the smallest document with the fields AWS documents for that shape (S3 event
notification, EventBridge "Object Created"/"Object Deleted", SNS notification envelope, Lambda's SQS
event), so a test states only what it is about. Identifiers that AWS makes unique per event (S3
sequencers, EventBridge event ids, SNS and SQS message ids) are fresh unless given: two built events are
two events, as they would be in AWS, and a test that needs a redelivery passes the same value twice.
Pass ``None`` where a builder allows it to leave an optional field out.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ACCOUNT",
    "EVENT_TIME",
    "FRESH",
    "REGION",
    "eventbridge_published",
    "eventbridge_s3",
    "fresh_id",
    "new_sequencer",
    "s3_notification",
    "s3_record",
    "sns_envelope",
    "sqs_event",
    "sqs_record",
]

ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
EVENT_TIME: Final = "2026-11-23T10:00:00.000Z"
QUEUE_ARN: Final = f"arn:aws:sqs:{REGION}:{ACCOUNT}:cdnpurge-PurgeQueue-local"
TOPIC_ARN: Final = f"arn:aws:sns:{REGION}:{ACCOUNT}:cdnpurge-local-ContentPublishedTopic"
SENT_MILLIS: Final = "1795435860000"  # SQS SentTimestamp (epoch milliseconds)


class _Fresh(enum.Enum):
    FRESH = "fresh"


#: The default of an identifier that AWS makes unique per event: a new value on every call.
FRESH: Final = _Fresh.FRESH


def new_sequencer() -> str:
    """A new S3 sequencer (hexadecimal, as S3 sends it)."""
    return uuid.uuid4().hex[:18].upper()


def fresh_id() -> str:
    """A new UUID, the form of EventBridge event ids and SNS/SQS message ids."""
    return str(uuid.uuid4())


def _body(message: Any) -> str:
    """A message body: text as given, anything else as JSON."""
    return message if isinstance(message, str) else json.dumps(message)


def s3_record(
    bucket: str,
    key: str,
    *,
    event_name: str = "ObjectCreated:Put",
    sequencer: str | _Fresh | None = FRESH,
    size: int = 1,
    etag: str | None = "e",
    version_id: str | None = None,
    event_time: str | None = EVENT_TIME,
) -> dict[str, Any]:
    """One record of an S3 event notification (`key` as S3 sends it: URL-encoded, `+` for spaces)."""
    obj: dict[str, Any] = {"key": key, "size": size}
    seq = new_sequencer() if sequencer is FRESH else sequencer
    for name, value in (("sequencer", seq), ("versionId", version_id), ("eTag", etag)):
        if value is not None:
            obj[name] = value
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj},
    }
    if event_time is not None:
        record["eventTime"] = event_time
    return record


def s3_notification(*records: Mapping[str, Any]) -> dict[str, Any]:
    """An S3 event notification document holding `records` (see `s3_record`)."""
    return {"Records": [dict(record) for record in records]}


def eventbridge_s3(
    bucket: str,
    key: str,
    *,
    detail_type: str = "Object Created",
    sequencer: str | _Fresh = FRESH,
    event_id: str | _Fresh = FRESH,
    size: int = 1,
    etag: str = "e",
    reason: str = "PutObject",
) -> dict[str, Any]:
    """An S3 event as EventBridge delivers it (`detail.object.key` URL-encoded, as for notifications)."""
    return {
        "version": "0",
        "id": fresh_id() if event_id is FRESH else event_id,
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": etag,
                "sequencer": new_sequencer() if sequencer is FRESH else sequencer,
            },
            "request-id": "71F7NXFJ1RA274BQ",
            "requester": ACCOUNT,
            "source-ip-address": "203.0.113.10",
            "reason": reason,
        },
    }


def eventbridge_published(detail: Mapping[str, Any], *, event_id: str | _Fresh = FRESH) -> dict[str, Any]:
    """A publishing system's "Content Published" event on EventBridge, `detail` being the purge request."""
    return {
        "version": "0",
        "id": fresh_id() if event_id is FRESH else event_id,
        "detail-type": "Content Published",
        "source": "cms.content",
        "account": ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": dict(detail),
    }


def sns_envelope(message: Any, *, message_id: str | _Fresh = FRESH) -> dict[str, Any]:
    """The SNS notification envelope an SQS subscription receives (`message`: text, or a JSON document)."""
    return {
        "Type": "Notification",
        "MessageId": fresh_id() if message_id is FRESH else message_id,
        "TopicArn": TOPIC_ARN,
        "Message": _body(message),
        "Timestamp": "2026-11-23T10:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
    }


def sqs_record(
    body: Any,
    *,
    message_id: str | _Fresh = FRESH,
    receipt_handle: str | None = None,
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, Any] | None = None,
    queue_arn: str = QUEUE_ARN,
    md5_of_body: str = "",
    region: str = REGION,
) -> dict[str, Any]:
    """One record of Lambda's SQS event (`body`: text, or a document sent as JSON)."""
    identifier = fresh_id() if message_id is FRESH else message_id
    return {
        "messageId": identifier,
        "receiptHandle": receipt_handle or f"AQEB{identifier}",
        "body": _body(body),
        "attributes": dict(
            attributes
            or {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": SENT_MILLIS,
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": SENT_MILLIS,
            }
        ),
        "messageAttributes": dict(message_attributes or {}),
        "md5OfBody": md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(*bodies: Any, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Lambda's SQS event with one record per body; message ids `m0`, `m1`, ... unless `ids` are given."""
    message_ids = list(ids) if ids is not None else [f"m{index}" for index in range(len(bodies))]
    return {
        "Records": [
            sqs_record(body, message_id=message_id) for message_id, body in zip(message_ids, bodies, strict=True)
        ]
    }
