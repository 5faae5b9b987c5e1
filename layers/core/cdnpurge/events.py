"""The decode stage: whatever Lambda receives -> `Change` records, one `DecodeError` per bad record.

Why a stage of its own: every trigger shape (S3 notification, S3 -> SNS, S3 -> EventBridge, SNS and
EventBridge "content published", each direct or as an SQS body) must end up as the same `Change`, with an
identity that survives redelivery, and a malformed record must fail *only itself* so the handler can
report it in `batchItemFailures` while the rest of the batch is purged. `decode_event` never raises.

Shapes (an SQS body, an SNS `Message` and a direct invocation are all decoded by the same dispatcher):

- SQS batch (`Records[].eventSource == "aws:sqs"`): each `body` is one of the documents below;
  `source_id` is the SQS `messageId`.
- S3 notification (`Records[].eventSource == "aws:s3"`): one change per record.
- `s3:TestEvent` (sent when a notification configuration is saved): acknowledged, listed in `ignored`.
- SNS envelope (`Type: Notification`; also the direct SNS event's `Records[].Sns`): `Message` holds an
  S3 notification, a TestEvent, or a publish message. `SubscriptionConfirmation` is ignored.
- EventBridge (`detail-type` + `source` + `detail`): `aws.s3` "Object Created"/"Object Deleted", or
  "Content Published" from any source.
- A bare publish message as the SQS body: what an SNS -> SQS subscription with raw message delivery
  sends (the template's subscription is not raw, so its bodies are SNS envelopes; both are accepted).
- A re-purge message (`{"cdnpurge": "repurge", "changes": [...]}`): what the handler itself enqueues, with
  an SQS delay, after purging S3 changes when `repurge_delay_seconds` is set (origin replication lag).
  Each change keeps its bucket, key and action; its id gets the `#repurge` suffix, so the ledger treats
  the second purge as a change of its own (not a redelivery of the first) and a redelivered re-purge
  message is still skipped.

S3 event names: `ObjectCreated:*` -> CREATED; `ObjectRemoved:*` (incl. `DeleteMarkerCreated`) and
`LifecycleExpiration:*` -> REMOVED, since the origin now answers 404. Restore, tagging, ACL, lifecycle
transition, Intelligent-Tiering, replication and RRS-lost events leave the bytes a GET returns unchanged,
so they are ignored (not errors: retrying them could never succeed). Unknown event names are errors so a
new AWS event type is seen rather than silently dropped. EventBridge detail-types map the same way.

Change ids (idempotency identity): `s3:{bucket}/{key}@{sequencer}` with the *decoded* key, falling back to
`version:{versionId}`, `etag:{eTag}`, then `time:{eventTime}` when a record has no sequencer; the same S3
operation seen through a notification and through EventBridge carries the same sequencer, so it gets the
same id. Publish messages: `pub:{id}` when the publisher set `id`, else `sns:{MessageId}`,
`events:{event id}`, or `sqs:{messageId}` for raw delivery. Direct (non-SQS) invocations use the change id
as `source_id`, and the event id (or `"event"`) for errors.

Key encoding: S3 notification keys are form-URL-encoded (`+` is a space, `%2B` a plus) and are decoded
exactly once with `unquote_plus`. EventBridge keys are decoded the same way: the AWS EventBridge event
reference does not say either way (its examples use plain keys), and Powertools' own
`S3EventBridgeNotificationObject.key` applies `unquote_plus`. Note moto 5.x sends EventBridge keys *raw*,
so local tests through that path must avoid `+` and `%` in keys.

Powertools data classes are the typed views of each envelope; required fields are checked first by the
small `_at`/`_text` helpers so a missing field yields a message naming its path rather than a `KeyError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, Final, NamedTuple, TypeGuard
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import (
    EventBridgeEvent,
    SNSEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.data_classes.sns_event import SNSMessage
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cdnpurge.models import Action, Change, DecodeError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_KEY_BYTES",
    "MAX_TARGETS",
    "REPURGE_SUFFIX",
    "Decoded",
    "decode_event",
    "repurge_messages",
]

MAX_BODY_BYTES: Final = 256 * 1024  # SQS's (and SNS's) maximum message size
MAX_TARGETS: Final = 10_000  # per target list of a publish message
MAX_KEY_BYTES: Final = 1024  # S3's maximum key length (UTF-8)
MAX_ID_CHARS: Final = 512  # publisher-chosen ids end up in idempotency keys and logs
DIRECT: Final = "event"  # source id of errors that belong to the invocation as a whole

PUBLISH_FIELDS: Final = ("keys", "paths", "urls", "hosts")

REPURGE_MARKER: Final = "repurge"  # value of the "cdnpurge" field of a re-purge message
REPURGE_SUFFIX: Final = "#repurge"  # appended to the change ids a re-purge message carries
MAX_CHANGE_ID_CHARS: Final = 4096  # an S3 change id: bucket, a key of up to 1024 bytes, a sequencer
_REPURGE_BODY_BYTES: Final = 200 * 1024  # well under the SQS limit, leaving room for attributes

_S3_ACTIONS: Final = (
    ("ObjectCreated:", Action.CREATED),
    ("ObjectRemoved:", Action.REMOVED),
    ("LifecycleExpiration:", Action.REMOVED),
)
_S3_NO_CONTENT_CHANGE: Final = (
    "ObjectRestore:",
    "ObjectTagging:",
    "ObjectAcl:",
    "LifecycleTransition",
    "IntelligentTiering",
    "Replication:",
    "ReducedRedundancyLostObject",
)
_EVENTBRIDGE_S3_ACTIONS: Final = {"Object Created": Action.CREATED, "Object Deleted": Action.REMOVED}
_EVENTBRIDGE_S3_NO_CONTENT_CHANGE: Final = frozenset(
    {
        "Object Restore Initiated",
        "Object Restore Completed",
        "Object Restore Expired",
        "Object Tags Added",
        "Object Tags Deleted",
        "Object ACL Updated",
        "Object Storage Class Changed",
        "Object Access Tier Changed",
    }
)
_SNS_CONFIRMATIONS: Final = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_CHARS: Final = 120
_SHOWN_KEYS: Final = 20


@dataclass(frozen=True)
class Decoded:
    """Everything one invocation carried: changes to purge, records that failed, records acknowledged."""

    changes: tuple[Change, ...]
    errors: tuple[DecodeError, ...]
    ignored: tuple[str, ...]  # "<source id>: <reason>" for records acknowledged without a change
    # SQS records the storm fast path decoded: what tells a slow storm from a fast one, not what was decoded.
    fast_path_records: int = field(default=0, compare=False)


def decode_event(event: Mapping[str, Any], *, fast_path: bool = True) -> Decoded:
    """Decode any supported Lambda event; every problem becomes a `DecodeError`, nothing is raised.

    `fast_path=False` decodes every record on the validating path: the result must be the same (the tests
    hold the fast path to that); only the time differs."""
    sink = _Sink(fast_path=fast_path)
    _guarded(sink, _DIRECT_ORIGIN, partial(_decode_invocation, event, sink))
    return sink.result()


# --- plumbing -------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A record is malformed; `message` says precisely what is wrong with it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class _Origin:
    """Where a document came from, so its changes and errors map back to what the handler acknowledges."""

    label: str  # message prefix: "record <messageId>" or "event"
    error_id: str  # source id of this document's errors and ignored entries
    message_id: str | None = None  # SQS messageId when the document is an SQS body
    sent_millis: str | None = None  # SQS SentTimestamp: only a bare publish message needs it, as a time

    @property
    def sent_time(self) -> str | None:
        return _millis_to_iso(self.sent_millis)

    def source_for(self, change_id: str) -> str:
        return self.message_id if self.message_id is not None else change_id

    def direct_as(self, event_id: str) -> _Origin:
        """A direct invocation reports its errors under its own event id once that is known."""
        if self.message_id is not None:
            return self
        return _Origin(label=f"event {_show(event_id)}", error_id=event_id)


_DIRECT_ORIGIN: Final = _Origin(label="event", error_id=DIRECT)


@dataclass
class _Sink:
    changes: list[Change] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    fast_path: bool = True
    fast_path_records: int = 0

    def error(self, origin: _Origin, message: str) -> None:
        self.errors.append(DecodeError(source_id=origin.error_id, message=f"{origin.label}: {message}"))

    def ignore(self, origin: _Origin, reason: str) -> None:
        self.ignored.append(f"{origin.error_id}: {reason}")

    def result(self) -> Decoded:
        return Decoded(
            changes=tuple(self.changes),
            errors=tuple(self.errors),
            ignored=tuple(self.ignored),
            fast_path_records=self.fast_path_records,
        )


def _guarded(sink: _Sink, origin: _Origin, decode: Callable[[], None]) -> None:
    """Run one unit of decoding so that whatever goes wrong fails that unit only."""
    try:
        decode()
    except _Invalid as exc:
        sink.error(origin, exc.message)
    except Exception as exc:  # the contract is "never raise": a bug must fail one record, not the batch
        sink.error(origin, f"unexpected {type(exc).__name__} while decoding: {_show(str(exc))}")


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    """`isinstance(value, Mapping)`, with the plain dict that `json.loads` returns checked first (cheaply)."""
    return type(value) is dict or isinstance(value, Mapping)


def _within(sink: _Sink, origin: _Origin, decode: Callable[[], None]) -> None:
    """Decode the body of an envelope whose id is now known: a direct invocation's errors are reported
    under that id (guarded); an SQS body is already guarded under its messageId."""
    if origin.message_id is not None:
        decode()
    else:
        _guarded(sink, origin, decode)


def _kind(value: object) -> str:
    """JSON's name for a value's type, for error messages written for people who read JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string" if value else "empty string"
    if _is_object(value):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _show(text: str) -> str:
    """Quote untrusted text for a message, bounded so a huge field cannot flood the logs."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} chars)"


def _keys_of(doc: Mapping[Any, Any]) -> str:
    names = sorted(str(name) for name in doc)
    shown = repr(names[:_SHOWN_KEYS])
    return shown if len(names) <= _SHOWN_KEYS else f"{shown[:-1]}, ...] ({len(names)} keys)"


@cache
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _at(doc: Mapping[str, Any], path: str, what: str) -> Any:
    """The value at a dotted path, or `_Invalid` naming the path that is missing or not an object.

    Walks the raw dicts under a Powertools data class (its item access adds a layer per step), and only
    works out the precise problem once a step failed: this runs several times per record of a batch.
    """
    current: Any = doc if type(doc) is dict else _unwrapped(doc)
    for part in _parts(path):
        try:
            current = current[part]
        except (KeyError, TypeError, IndexError):
            raise _Invalid(_missing(doc, path, what)) from None
    return current


def _unwrapped(doc: Mapping[str, Any]) -> Any:
    """The dict under a Powertools data class (duck-typed: an ABC isinstance check costs more here)."""
    return getattr(doc, "raw_event", doc)


def _missing(doc: Mapping[str, Any], path: str, what: str) -> str:
    """Why `path` cannot be read from `doc`: a missing field, or a step that is not an object."""
    current: Any = _unwrapped(doc)
    parts = _parts(path)
    for depth, part in enumerate(parts):
        if not _is_object(current):
            return f"{what} field {'.'.join(parts[:depth])} must be an object, got {_kind(current)}"
        if part not in current:
            break
        current = current[part]
    return f"{what} missing {path}"


def _text(doc: Mapping[str, Any], path: str, what: str) -> str:
    value = _at(doc, path, what)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{what} field {path} must be a non-empty string, got {_kind(value)}")
    return value


def _optional_text(doc: Mapping[str, Any], path: str) -> str | None:
    try:
        value = _at(doc, path, "")
    except _Invalid:
        return None
    return value if isinstance(value, str) and value else None


def _first_text(doc: Mapping[str, Any], *candidates: tuple[str, str]) -> str | None:
    """The first present `(path, prefix)` candidate, prefixed: the fallback chain of an S3 identity."""
    for path, prefix in candidates:
        value = _optional_text(doc, path)
        if value is not None:
            return f"{prefix}{value}"
    return None


def _parse_json(text: object, what: str) -> Any:
    if not isinstance(text, str):
        raise _Invalid(f"{what} must be a string, got {_kind(text)}")
    # A character is at most 4 UTF-8 bytes: only a long text needs encoding to be measured.
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_BODY_BYTES else 0
    if size > MAX_BODY_BYTES:
        raise _Invalid(f"{what} is {size} bytes, over the {MAX_BODY_BYTES}-byte (256 KiB) SQS message limit")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"{what} is not usable JSON: {type(exc).__name__}: {_show(str(exc))}") from None


def _check_text(value: str, what: str) -> None:
    """Reject control characters: they have no business in keys or targets and break logs and URLs."""
    control = _CONTROL.search(value)
    if control is not None:
        raise _Invalid(f"{what} {_show(value)} contains control character U+{ord(control.group()):04X}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(f"{what} {_show(value)} is not valid Unicode (lone surrogate)") from None


def _decode_key(raw: str, what: str) -> str:
    """URL-decode an S3 key exactly once (`+` is a space, `%2B` a plus) and validate the result."""
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise _Invalid(f"{what} key {_show(raw)} does not percent-decode to UTF-8") from None
    if not key:
        raise _Invalid(f"{what} key {_show(raw)} is empty after URL-decoding")
    _check_text(key, f"{what} key")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise _Invalid(f"{what} key is {size} bytes after URL-decoding, over S3's {MAX_KEY_BYTES}-byte limit")
    return key


def _millis_to_iso(millis: str | None) -> str | None:
    if millis is None:
        return None
    try:
        moment = datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- invocation level -----------------------------------------------------------------------------


def _decode_invocation(event: object, sink: _Sink) -> None:
    if not _is_object(event):
        raise _Invalid(f"event is not a JSON object: got {_kind(event)}")
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records else None
    if _is_object(first) and first.get("eventSource") == "aws:sqs":
        _decode_sqs_batch(SQSEvent(dict(event)), sink)
    elif _is_object(first) and first.get("EventSource") == "aws:sns":
        _decode_sns_event(SNSEvent(dict(event)), sink)
    else:
        _decode_document(event, _DIRECT_ORIGIN, sink)


def _decode_sqs_batch(event: SQSEvent, sink: _Sink) -> None:
    for index, raw in enumerate(event["Records"]):
        parsed = _NOT_PARSED
        if sink.fast_path and type(raw) is dict and raw.get("eventSource") == "aws:sqs":
            parsed = _parsed_body(raw.get("body"))
            message_id = raw.get("messageId")
            change = _plain_s3_change(parsed, message_id) if type(message_id) is str and message_id else None
            if change is not None:
                sink.changes.append(change)
                sink.fast_path_records += 1
                continue
        if not _is_object(raw):
            sink.error(_DIRECT_ORIGIN, f"SQS record [{index}] must be an object, got {_kind(raw)}")
            continue
        message_id = raw.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            # Without a messageId the failure cannot be reported per item: "event" fails the whole batch.
            sink.error(_DIRECT_ORIGIN, f"SQS record [{index}] missing messageId")
            continue
        record = SQSRecord(raw if type(raw) is dict else dict(raw))
        attributes = record.get("attributes")
        sent = attributes.get("SentTimestamp") if _is_object(attributes) else None
        origin = _Origin(
            label=f"record {message_id}",
            error_id=message_id,
            message_id=message_id,
            sent_millis=sent if isinstance(sent, str) else None,
        )
        _guarded(sink, origin, partial(_decode_sqs_record, record, parsed, origin, sink))


def _decode_sqs_record(record: SQSRecord, parsed: object, origin: _Origin, sink: _Sink) -> None:
    source = record.get("eventSource")
    if source != "aws:sqs":
        raise _Invalid(f"SQS record has eventSource {source!r}, expected 'aws:sqs'")
    if "body" not in record:
        raise _Invalid("SQS record missing body")
    doc = _parse_json(record.body, "body") if parsed is _NOT_PARSED else parsed
    _decode_document(doc, origin, sink)


# --- the fast path for storms -----------------------------------------------------------------------
#
# A deploy's 10,000 uploads arrive as 10,000 SQS records of one of two shapes, almost always plain: the
# fast path reads them with straight dict lookups and returns the very `Change` the validating path would
# (tests/unit/test_events.py compares the two over generated records). Anything unusual (a missing or
# non-string field, a key needing URL-decoding or not plain ASCII, no sequencer, other envelopes) returns
# None, and the record goes through the validating path, which owns every error message.

_NOT_PARSED: Final = object()  # the body was not parsed (or could not be): the validating path parses it
# `json.loads` minus its wrappers (a BOM check and two whitespace regexes around this very call): a body
# that `raw_decode` parses to its last character is parsed to the same value by `json.loads`, and one
# that it does not (whitespace around the document, a BOM, extra data) is left to the validating path.
_BODY_DECODER: Final = json.JSONDecoder()


def _parsed_body(body: object) -> object:
    """The body as JSON, when it is a string small enough that it cannot exceed the size limit and holds
    nothing but one JSON document."""
    if type(body) is not str or len(body) * 4 > MAX_BODY_BYTES:
        return _NOT_PARSED
    try:
        doc, end = _BODY_DECODER.raw_decode(body)
    except (ValueError, RecursionError):
        return _NOT_PARSED
    return doc if end == len(body) else _NOT_PARSED


def _plain_s3_change(doc: object, message_id: str) -> Change | None:
    """The change of an EventBridge S3 event or one-record S3 notification with plain fields, else None."""
    if type(doc) is not dict or "cdnpurge" in doc:
        return None
    try:
        # The same order of shapes as `_decode_document`, so a document with several is read as it reads it
        if "Records" in doc:
            if len(records := doc["Records"]) != 1 or type(record := records[0]) is not dict:
                return None
            if record.get("eventSource") != "aws:s3" or type(name := record.get("eventName")) is not str:
                return None
            action = next((a for prefix, a in _S3_ACTIONS if name.removeprefix("s3:").startswith(prefix)), None)
            s3 = record["s3"]
            bucket, obj, event_time = s3["bucket"]["name"], s3["object"], record.get("eventTime")
        elif "detail-type" in doc and "Event" not in doc and not ("Type" in doc and "MessageId" in doc):
            action = _EVENTBRIDGE_S3_ACTIONS.get(doc["detail-type"]) if doc.get("source") == "aws.s3" else None
            detail = doc["detail"]
            bucket, obj, event_time = detail["bucket"]["name"], detail["object"], doc.get("time")
            if type(event_id := doc["id"]) is not str or not event_id:  # all the validating path asks of it
                return None
        else:
            return None
        key, sequencer = obj["key"], obj.get("sequencer")
    except (KeyError, TypeError, IndexError):
        return None
    if action is None or not (type(bucket) is type(key) is type(sequencer) is str and bucket and key and sequencer):
        return None
    change_id = f"s3:{bucket}/{key}@{sequencer}"
    # Bucket, key and sequencer printable ASCII, with nothing to decode or validate: checked at once on the id
    # (which holds the three between printable separators), the key's characters that URL-decode and its
    # length (in bytes, being ASCII) after it. Anything else is the validating path's.
    if not (change_id.isascii() and change_id.isprintable()) or "+" in key or "%" in key or len(key) > MAX_KEY_BYTES:
        return None
    event_time = event_time if type(event_time) is str and event_time else None
    return Change(change_id, action, message_id, bucket, key, event_time)  # by position: cheaper than keywords


def _decode_sns_event(event: SNSEvent, sink: _Sink) -> None:
    for index, raw in enumerate(event["Records"]):
        if not _is_object(raw) or not isinstance(raw.get("Sns"), Mapping):
            sink.error(_DIRECT_ORIGIN, f"SNS record [{index}] missing Sns object")
            continue
        message = SNSMessage(dict(raw["Sns"]))
        _guarded(sink, _DIRECT_ORIGIN, partial(_decode_sns, message, _DIRECT_ORIGIN, sink))


# --- document level -------------------------------------------------------------------------------


def _decode_document(doc: object, origin: _Origin, sink: _Sink) -> None:
    """Dispatch one JSON document (SQS body, SNS Message or direct event) on its shape."""
    if not _is_object(doc):
        raise _Invalid(f"unknown envelope: JSON {_kind(doc)}, expected an object")
    if "cdnpurge" in doc:
        _decode_repurge(doc, origin, sink)
    elif "Records" in doc:
        _decode_s3_notification(doc, origin, sink)
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
            raise _Invalid("publish message outside any envelope needs an id to be idempotent")
        _decode_publish(
            doc,
            default_id=f"sqs:{origin.message_id}",
            what="publish message",
            event_time=origin.sent_time,
            origin=origin,
            sink=sink,
        )
    else:
        raise _Invalid(f"unknown envelope: JSON object with keys {_keys_of(doc)}")


def _decode_s3_notification(doc: Mapping[str, Any], origin: _Origin, sink: _Sink) -> None:
    records = doc["Records"]
    if not isinstance(records, list) or not records:
        raise _Invalid(f"S3 notification field Records must be a non-empty array, got {_kind(records)}")
    for index, raw in enumerate(records):
        what = "S3 record" if len(records) == 1 else f"S3 record [{index}]"
        _guarded(sink, origin, partial(_decode_s3_record, raw, what, origin, sink))


def _s3_action(event_name: str, what: str) -> Action | None:
    """Map an S3 event name to an action; None means "no content change, acknowledge and ignore"."""
    name = event_name.removeprefix("s3:")
    for prefix, action in _S3_ACTIONS:
        if name.startswith(prefix):
            return action
    if name.startswith(_S3_NO_CONTENT_CHANGE):
        return None
    raise _Invalid(f"{what} has unsupported eventName {_show(event_name)}")


def _decode_s3_record(raw: object, what: str, origin: _Origin, sink: _Sink) -> None:
    if not _is_object(raw):
        raise _Invalid(f"{what} must be an object, got {_kind(raw)}")
    record = S3EventRecord(raw if type(raw) is dict else dict(raw))
    source = record.get("eventSource")
    if source != "aws:s3":
        raise _Invalid(f"{what} has eventSource {source!r}, expected 'aws:s3'")
    event_name = _text(record, "eventName", what)
    action = _s3_action(event_name, what)
    if action is None:
        target = f"s3://{_optional_text(record, 's3.bucket.name')}/{_optional_text(record, 's3.object.key')}"
        sink.ignore(origin, f"{event_name} on {_show(target)} does not change content")
        return
    event_time = _optional_text(record, "eventTime")
    _add_s3_change(record, _NOTIFICATION_FIELDS, action, event_time, what=what, origin=origin, sink=sink)


def _decode_sns(message: SNSMessage, origin: _Origin, sink: _Sink) -> None:
    message_id = _text(message, "MessageId", "SNS message")
    origin = origin.direct_as(message_id)
    _within(sink, origin, partial(_decode_sns_body, message, message_id, origin, sink))


def _decode_sns_body(message: SNSMessage, message_id: str, origin: _Origin, sink: _Sink) -> None:
    kind = _text(message, "Type", "SNS message")
    if kind in _SNS_CONFIRMATIONS:
        topic = message.get("TopicArn")
        sink.ignore(origin, f"SNS {kind} for topic {topic!r}: confirm subscriptions out of band")
        return
    if kind != "Notification":
        raise _Invalid(f"SNS message has Type {_show(kind)}, expected 'Notification'")
    if "Message" not in message:
        raise _Invalid("SNS message missing Message")
    inner = _parse_json(message.message, "SNS Message")
    if _is_object(inner) and any(name in inner for name in PUBLISH_FIELDS):
        _decode_publish(
            inner,
            default_id=f"sns:{message_id}",
            what="SNS publish message",
            event_time=_optional_text(message, "Timestamp"),
            origin=origin,
            sink=sink,
        )
    else:
        _decode_document(inner, origin, sink)


def _decode_eventbridge(event: EventBridgeEvent, origin: _Origin, sink: _Sink) -> None:
    event_id = _text(event, "id", "EventBridge event")
    origin = origin.direct_as(event_id)
    _within(sink, origin, partial(_decode_eventbridge_body, event, event_id, origin, sink))


def _decode_eventbridge_body(event: EventBridgeEvent, event_id: str, origin: _Origin, sink: _Sink) -> None:
    what = "EventBridge event"
    detail_type = _text(event, "detail-type", what)
    source = _text(event, "source", what)
    detail = _at(event, "detail", what)
    if not _is_object(detail):
        raise _Invalid(f"{what} field detail must be an object, got {_kind(detail)}")
    event_time = _optional_text(event, "time")
    if detail_type == "Content Published":
        _decode_publish(
            detail,
            default_id=f"events:{event_id}",
            what="EventBridge Content Published detail",
            event_time=event_time,
            origin=origin,
            sink=sink,
        )
        return
    if source != "aws.s3":
        raise _Invalid(f"unsupported EventBridge event: source {_show(source)}, detail-type {_show(detail_type)}")
    if detail_type in _EVENTBRIDGE_S3_NO_CONTENT_CHANGE:
        sink.ignore(origin, f"EventBridge S3 {detail_type!r} does not change content")
        return
    action = _EVENTBRIDGE_S3_ACTIONS.get(detail_type)
    if action is None:
        raise _Invalid(f"unsupported EventBridge S3 detail-type {_show(detail_type)}")
    # The key is read raw (not through Powertools' `S3EventBridgeNotificationObject.key`, which already
    # unquotes) and decoded by `_add_s3_change`: one place decodes keys, exactly once, for every shape.
    _add_s3_change(
        event, _EVENTBRIDGE_FIELDS, action, event_time, what="EventBridge S3 event", origin=origin, sink=sink
    )


class _S3Fields(NamedTuple):
    """Where one envelope shape keeps an S3 change's bucket, key and identity (sequencer, version id,
    ETag, event time: the fallbacks of a change id, in that order)."""

    bucket: str
    key: str
    identity: tuple[str, str, str, str]


_NOTIFICATION_FIELDS: Final = _S3Fields(
    "s3.bucket.name", "s3.object.key", ("s3.object.sequencer", "s3.object.versionId", "s3.object.eTag", "eventTime")
)
_EVENTBRIDGE_FIELDS: Final = _S3Fields(
    "detail.bucket.name",
    "detail.object.key",
    ("detail.object.sequencer", "detail.object.version-id", "detail.object.etag", "time"),
)
_IDENTITY_PREFIXES: Final = ("", "version:", "etag:", "time:")


def _add_s3_change(
    doc: Mapping[str, Any],
    fields: _S3Fields,
    action: Action,
    event_time: str | None,
    *,
    what: str,
    origin: _Origin,
    sink: _Sink,
) -> None:
    """One S3 change, whatever the envelope: the key URL-decoded once, the id from the first identity
    field present."""
    bucket = _text(doc, fields.bucket, what)
    key = _decode_key(_text(doc, fields.key, what), what)
    version = _first_text(doc, *zip(fields.identity, _IDENTITY_PREFIXES, strict=True))
    if version is None:
        raise _Invalid(f"{what} has no {', '.join(fields.identity[:3])} or {fields.identity[3]} to identify it")
    change_id = f"s3:{bucket}/{key}@{version}"
    sink.changes.append(
        Change(
            id=change_id,
            action=action,
            source_id=origin.source_for(change_id),
            bucket=bucket,
            key=key,
            event_time=event_time,
        )
    )


def _publish_targets(doc: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid(f"{what} field {name} must be an array of strings, got {_kind(value)}")
    if len(value) > MAX_TARGETS:
        raise _Invalid(f"{what} field {name} has {len(value)} entries, over the limit of {MAX_TARGETS}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _Invalid(f"{what} field {name}[{index}] must be a non-empty string, got {_kind(item)}")
        _check_text(item, f"{what} field {name}[{index}]")
    return tuple(value)


def _decode_publish(
    doc: Mapping[str, Any],
    *,
    default_id: str,
    what: str,
    event_time: str | None,
    origin: _Origin,
    sink: _Sink,
) -> None:
    """A "content published" message: explicit targets, validated field by field."""
    keys, paths, urls, hosts = (_publish_targets(doc, name, what) for name in PUBLISH_FIELDS)
    if not (keys or paths or urls or hosts):
        raise _Invalid(
            f"{what} names no targets: one of keys, paths, urls, hosts must be a non-empty array "
            f"of strings (got keys {_keys_of(doc)})"
        )
    soft = doc.get("soft")
    if soft is not None and not isinstance(soft, bool):
        raise _Invalid(f"{what} field soft must be true or false, got {_kind(soft)}")
    change_id = default_id
    if "id" in doc:
        own_id = doc["id"]
        if not isinstance(own_id, str) or not own_id:
            raise _Invalid(f"{what} field id must be a non-empty string, got {_kind(own_id)}")
        if len(own_id) > MAX_ID_CHARS:
            raise _Invalid(f"{what} field id has {len(own_id)} characters, over the limit of {MAX_ID_CHARS}")
        _check_text(own_id, f"{what} field id")
        change_id = f"pub:{own_id}"
    sink.changes.append(
        Change(
            id=change_id,
            action=Action.PUBLISHED,
            source_id=origin.source_for(change_id),
            event_time=event_time,
            keys=keys,
            paths=paths,
            urls=urls,
            hosts=hosts,
            soft=soft,
        )
    )


# --- re-purge messages (written by the handler itself) ----------------------------------------------


def repurge_messages(changes: list[Change] | tuple[Change, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """SQS bodies asking for a second purge of these S3 changes, each under `_REPURGE_BODY_BYTES`,
    with the ids of the changes each one carries."""
    messages: list[tuple[str, tuple[str, ...]]] = []
    chunk: list[dict[str, str]] = []
    used = 0

    def flush() -> None:
        body = json.dumps({"cdnpurge": REPURGE_MARKER, "changes": chunk}, separators=(",", ":"))
        messages.append((body, tuple(item["id"] for item in chunk)))

    for change in changes:
        if change.bucket is None or change.key is None:
            continue
        item = {"id": change.id, "action": change.action.value, "bucket": change.bucket, "key": change.key}
        if change.event_time:
            item["event_time"] = change.event_time
        size = len(json.dumps(item).encode()) + 1
        if chunk and used + size > _REPURGE_BODY_BYTES:
            flush()
            chunk, used = [], 0
        chunk.append(item)
        used += size
    if chunk:
        flush()
    return messages


def _decode_repurge(doc: Mapping[str, Any], origin: _Origin, sink: _Sink) -> None:
    what = "re-purge message"
    if doc["cdnpurge"] != REPURGE_MARKER:
        raise _Invalid(f"unknown envelope: cdnpurge message type {_show(str(doc['cdnpurge']))}")
    changes = doc.get("changes")
    if not isinstance(changes, list) or not changes:
        raise _Invalid(f"{what} field changes must be a non-empty array, got {_kind(changes)}")
    if len(changes) > MAX_TARGETS:
        raise _Invalid(f"{what} field changes has {len(changes)} entries, over the limit of {MAX_TARGETS}")
    for index, raw in enumerate(changes):
        _guarded(sink, origin, partial(_decode_repurge_change, raw, f"{what} changes[{index}]", origin, sink))


def _decode_repurge_change(raw: object, what: str, origin: _Origin, sink: _Sink) -> None:
    if not _is_object(raw):
        raise _Invalid(f"{what} must be an object, got {_kind(raw)}")
    first_id = _text(raw, "id", what)
    if len(first_id) > MAX_CHANGE_ID_CHARS:
        raise _Invalid(f"{what} field id has {len(first_id)} characters, over the limit of {MAX_CHANGE_ID_CHARS}")
    _check_text(first_id, f"{what} field id")
    action = _text(raw, "action", what)
    if action not in (Action.CREATED.value, Action.REMOVED.value):
        raise _Invalid(f"{what} field action must be 'created' or 'removed', got {_show(action)}")
    bucket = _text(raw, "bucket", what)
    _check_text(bucket, f"{what} field bucket")
    key = _text(raw, "key", what)  # stored decoded: never URL-decoded again
    _check_text(key, f"{what} key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _Invalid(f"{what} key is over S3's {MAX_KEY_BYTES}-byte limit")
    change_id = first_id if first_id.endswith(REPURGE_SUFFIX) else first_id + REPURGE_SUFFIX
    sink.changes.append(
        Change(
            id=change_id,
            action=Action(action),
            source_id=origin.source_for(change_id),
            bucket=bucket,
            key=key,
            event_time=_optional_text(raw, "event_time"),
        )
    )
