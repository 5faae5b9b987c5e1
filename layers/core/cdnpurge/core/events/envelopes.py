"""Envelopes: what Lambda hands the function (an SQS batch, an SNS event, a direct document) and what
wraps a change inside it (an SNS notification, an EventBridge event), unwrapped to the documents the
other decode modules read. `decode_event` is the decode stage's entry point; it never raises.

An SQS body, an SNS `Message` and a direct invocation are all dispatched by `decode_document`, so every
shape nests in every other the same way; plain S3 records of a storm skip it through `fastpath`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Final

from aws_lambda_powertools.utilities.data_classes import (
    EventBridgeEvent,
    SNSEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.data_classes.sns_event import SNSMessage
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cdnpurge.core.errors import show
from cdnpurge.core.events.coalesce import COALESCE_MARKER, decode_flush
from cdnpurge.core.events.fastpath import NOT_PARSED, parsed_body, plain_s3_change, typed_s3_change
from cdnpurge.core.events.own import own_kind
from cdnpurge.core.events.published import PUBLISH_FIELDS, decode_publish
from cdnpurge.core.events.reading import (
    AWS_ACCOUNT,
    DIRECT_ORIGIN,
    MAX_BODY_BYTES,
    MAX_ENVELOPE_ID_CHARS,
    MalformedError,
    Origin,
    at,
    check_identifier,
    is_object,
    json_kind,
    keys_of,
    optional_text,
    parse_json,
    required_text,
)
from cdnpurge.core.events.repurge import REPURGE_MARKER, decode_repurge
from cdnpurge.core.events.result import Decoded, Sink, guarded, within
from cdnpurge.core.events.s3 import (
    EVENTBRIDGE_FIELDS,
    EVENTBRIDGE_S3_ACTIONS,
    EVENTBRIDGE_S3_NO_CONTENT_CHANGE,
    add_s3_change,
    decode_s3_notification,
)
from cdnpurge.core.events.verify import VERIFY_MARKER, read_check

_SNS_CONFIRMATIONS: Final = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})


def decode_event(event: Mapping[str, Any], *, fast_path: bool = True, home_account: str | None = None) -> Decoded:
    """Decode any supported Lambda event; every problem becomes a `DecodeFailure`, nothing is raised.

    `fast_path=False` decodes every record on the validating path: the result must be the same (the tests
    hold the fast path to that); only the time differs. `home_account`: the stack's account; an S3 change
    from another account's bucket gets that account in its id (None: unknown, every id as S3 names it)."""
    sink = Sink(fast_path=fast_path, home_account=home_account)
    guarded(sink, DIRECT_ORIGIN, partial(_decode_invocation, event, sink))
    return sink.result()


def _decode_invocation(event: object, sink: Sink) -> None:
    if not is_object(event):
        raise MalformedError(f"event is not a JSON object: got {json_kind(event)}")
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records else None
    if is_object(first) and first.get("eventSource") == "aws:sqs":
        _decode_sqs_batch(SQSEvent(dict(event)), sink)
    elif is_object(first) and first.get("EventSource") == "aws:sns":
        _decode_sns_event(SNSEvent(dict(event)), sink)
    else:
        decode_document(event, DIRECT_ORIGIN, sink)


def _decode_sqs_batch(event: SQSEvent, sink: Sink) -> None:
    fast_path, home_account, changes, fast = sink.fast_path, sink.home_account, sink.changes, 0
    for index, raw in enumerate(event["Records"]):
        parsed = NOT_PARSED
        if fast_path and type(raw) is dict and raw.get("eventSource") == "aws:sqs":
            try:
                body, message_id = raw.get("body"), raw.get("messageId")
                change = None
                if type(message_id) is str and message_id:  # without one, the record fails whatever its body
                    if type(body) is str and len(body) * 4 <= MAX_BODY_BYTES:
                        change = typed_s3_change(body, message_id, home_account)
                    if change is None:
                        parsed = parsed_body(body)
                        change = plain_s3_change(parsed, message_id, home_account)
            except Exception:  # a record the fast path cannot read: the guarded path below says why
                parsed, change = NOT_PARSED, None
            if change is not None:
                changes.append(change)
                fast += 1
                continue
        if not is_object(raw):
            sink.error(DIRECT_ORIGIN, f"SQS record [{index}] must be an object, got {json_kind(raw)}")
            continue
        message_id = raw.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            # Without a messageId the failure cannot be reported per item: "event" fails the whole batch.
            sink.error(DIRECT_ORIGIN, f"SQS record [{index}] missing messageId")
            continue
        record = SQSRecord(raw if type(raw) is dict else dict(raw))
        attributes = record.get("attributes")
        sent = attributes.get("SentTimestamp") if is_object(attributes) else None
        origin = Origin(
            label=f"record {message_id}",
            error_id=message_id,
            message_id=message_id,
            sent_millis=sent if isinstance(sent, str) else None,
        )
        guarded(sink, origin, partial(_decode_sqs_record, record, parsed, origin, sink))
    sink.fast_path_records += fast


def _decode_sqs_record(record: SQSRecord, parsed: object, origin: Origin, sink: Sink) -> None:
    source = record.get("eventSource")
    if source != "aws:sqs":
        raise MalformedError(f"SQS record has eventSource {source!r}, expected 'aws:sqs'")
    if "body" not in record:
        raise MalformedError("SQS record missing body")
    doc = parse_json(record.body, "body") if parsed is NOT_PARSED else parsed
    decode_document(doc, origin, sink)


def _decode_sns_event(event: SNSEvent, sink: Sink) -> None:
    for index, raw in enumerate(event["Records"]):
        if not is_object(raw) or not isinstance(raw.get("Sns"), Mapping):
            sink.error(DIRECT_ORIGIN, f"SNS record [{index}] missing Sns object")
            continue
        message = SNSMessage(dict(raw["Sns"]))
        guarded(sink, DIRECT_ORIGIN, partial(_decode_sns, message, DIRECT_ORIGIN, sink))


def decode_document(doc: object, origin: Origin, sink: Sink) -> None:
    """Dispatch one JSON document (SQS body, SNS Message or direct event) on its shape."""
    if not is_object(doc):
        raise MalformedError(f"unknown envelope: JSON {json_kind(doc)}, expected an object")
    if "cdnpurge" in doc:  # a message the function wrote to its own queue (`cdnpurge.core.events.own`)
        kind = own_kind(doc)
        if kind == VERIFY_MARKER:  # run by cdnpurge.runtime.verification after the batch, not a change to purge
            sink.checks.append((origin.error_id, read_check(doc)))
            sink.ignore(origin, "verification check")
        elif kind == REPURGE_MARKER:
            decode_repurge(doc, origin, sink)
        elif kind == COALESCE_MARKER:  # a coalescing window's purge (`cdnpurge.runtime.coalesce`)
            decode_flush(doc, origin, sink)
        else:
            raise MalformedError(f"unknown envelope: cdnpurge message type {show(kind)}")
    elif "Records" in doc:
        decode_s3_notification(doc, origin, sink)
    elif doc.get("Event") == "s3:TestEvent":
        bucket = doc.get("Bucket")
        sink.ignore(origin, f"s3:TestEvent for bucket {bucket!r} (sent when notifications are configured)")
    elif "Type" in doc and "MessageId" in doc:
        _decode_sns(SNSMessage(doc if type(doc) is dict else dict(doc)), origin, sink)
    elif "detail-type" in doc:
        _decode_eventbridge(EventBridgeEvent(doc if type(doc) is dict else dict(doc)), origin, sink)
    elif any(name in doc for name in PUBLISH_FIELDS):
        # A bare publish message is an SQS body from a raw-delivery SNS subscription: the SQS messageId
        # is the only identity it has unless the publisher set `id`.
        if origin.message_id is None and not doc.get("id"):
            raise MalformedError("publish message outside any envelope needs an id to be idempotent")
        decode_publish(
            doc,
            default_id=f"sqs:{origin.message_id}",
            what="publish message",
            event_time=origin.sent_time,
            origin=origin,
            sink=sink,
        )
    else:
        raise MalformedError(f"unknown envelope: JSON object with keys {keys_of(doc)}")


def _decode_sns(message: SNSMessage, origin: Origin, sink: Sink) -> None:
    message_id = required_text(message, "MessageId", "SNS message")
    check_identifier(message_id, "SNS message field MessageId", MAX_ENVELOPE_ID_CHARS)
    origin = origin.direct_as(message_id)
    within(sink, origin, partial(_decode_sns_body, message, message_id, origin, sink))


def _decode_sns_body(message: SNSMessage, message_id: str, origin: Origin, sink: Sink) -> None:
    kind = required_text(message, "Type", "SNS message")
    if kind in _SNS_CONFIRMATIONS:
        topic = message.get("TopicArn")
        sink.ignore(origin, f"SNS {kind} for topic {topic!r}: confirm subscriptions out of band")
        return
    if kind != "Notification":
        raise MalformedError(f"SNS message has Type {show(kind)}, expected 'Notification'")
    if "Message" not in message:
        raise MalformedError("SNS message missing Message")
    inner = parse_json(message.message, "SNS Message")
    if is_object(inner) and any(name in inner for name in PUBLISH_FIELDS):
        decode_publish(
            inner,
            default_id=f"sns:{message_id}",
            what="SNS publish message",
            event_time=optional_text(message, "Timestamp"),
            origin=origin,
            sink=sink,
        )
    else:
        decode_document(inner, origin, sink)


def _decode_eventbridge(event: EventBridgeEvent, origin: Origin, sink: Sink) -> None:
    event_id = required_text(event, "id", "EventBridge event")
    check_identifier(event_id, "EventBridge event field id", MAX_ENVELOPE_ID_CHARS)
    origin = origin.direct_as(event_id)
    within(sink, origin, partial(_decode_eventbridge_body, event, event_id, origin, sink))


def _decode_eventbridge_body(event: EventBridgeEvent, event_id: str, origin: Origin, sink: Sink) -> None:
    what = "EventBridge event"
    detail_type = required_text(event, "detail-type", what)
    source = required_text(event, "source", what)
    detail = at(event, "detail", what)
    if not is_object(detail):
        raise MalformedError(f"{what} field detail must be an object, got {json_kind(detail)}")
    event_time = optional_text(event, "time")
    if detail_type == "Content Published":
        decode_publish(
            detail,
            default_id=f"events:{event_id}",
            what="EventBridge Content Published detail",
            event_time=event_time,
            origin=origin,
            sink=sink,
        )
        return
    if source != "aws.s3":
        raise MalformedError(f"unsupported EventBridge event: source {show(source)}, detail-type {show(detail_type)}")
    if detail_type in EVENTBRIDGE_S3_NO_CONTENT_CHANGE:
        sink.ignore(origin, f"EventBridge S3 {detail_type!r} does not change content")
        return
    action = EVENTBRIDGE_S3_ACTIONS.get(detail_type)
    if action is None:
        raise MalformedError(f"unsupported EventBridge S3 detail-type {show(detail_type)}")
    # The key is read raw (not through Powertools' `S3EventBridgeNotificationObject.key`, which already
    # unquotes) and decoded by `add_s3_change`: one place decodes keys, exactly once, for every shape.
    account = event.get("account")
    if account is not None and not (isinstance(account, str) and AWS_ACCOUNT.fullmatch(account)):
        raise MalformedError(
            f"EventBridge S3 event field account must be a 12-digit AWS account id, got {show(str(account))}"
        )
    add_s3_change(
        event,
        EVENTBRIDGE_FIELDS,
        action,
        event_time,
        what="EventBridge S3 event",
        origin=origin,
        sink=sink,
        account=account,
    )
