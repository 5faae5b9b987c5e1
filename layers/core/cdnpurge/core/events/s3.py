"""S3 changes, from a notification (direct, in SQS, via SNS) or an EventBridge S3 event.

S3 event names: `ObjectCreated:*` -> CREATED; `ObjectRemoved:*` (incl. `DeleteMarkerCreated`) and
`LifecycleExpiration:*` -> REMOVED, since the origin now answers 404. Restore, tagging, ACL, lifecycle
transition, Intelligent-Tiering, replication and RRS-lost events leave the bytes a GET returns unchanged,
so they are ignored (not errors: retrying them could never succeed). Unknown event names are errors so a
new AWS event type is seen rather than silently dropped. EventBridge detail-types map the same way.

Every shape goes through `add_s3_change`: one place decodes keys, exactly once, and builds the change id.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Final, NamedTuple

from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord

from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import (
    MAX_IDENTITY_CHARS,
    MalformedError,
    Origin,
    check_bucket,
    check_identifier,
    decode_key,
    first_text,
    is_object,
    json_kind,
    optional_text,
    required_text,
)
from cdnpurge.core.events.result import Sink, guarded
from cdnpurge.core.models import Action, Change

S3_ACTIONS: Final = (
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
EVENTBRIDGE_S3_ACTIONS: Final = {"Object Created": Action.CREATED, "Object Deleted": Action.REMOVED}
EVENTBRIDGE_S3_NO_CONTENT_CHANGE: Final = frozenset(
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


def decode_s3_notification(doc: Mapping[str, Any], origin: Origin, sink: Sink) -> None:
    records = doc["Records"]
    if not isinstance(records, list) or not records:
        raise MalformedError(f"S3 notification field Records must be a non-empty array, got {json_kind(records)}")
    for index, raw in enumerate(records):
        what = "S3 record" if len(records) == 1 else f"S3 record [{index}]"
        guarded(sink, origin, partial(_decode_s3_record, raw, what, origin, sink))


def _s3_action(event_name: str, what: str) -> Action | None:
    """Map an S3 event name to an action; None means "no content change, acknowledge and ignore"."""
    name = event_name.removeprefix("s3:")
    for prefix, action in S3_ACTIONS:
        if name.startswith(prefix):
            return action
    if name.startswith(_S3_NO_CONTENT_CHANGE):
        return None
    raise MalformedError(f"{what} has unsupported eventName {show(event_name)}")


def _decode_s3_record(raw: object, what: str, origin: Origin, sink: Sink) -> None:
    if not is_object(raw):
        raise MalformedError(f"{what} must be an object, got {json_kind(raw)}")
    record = S3EventRecord(raw if type(raw) is dict else dict(raw))
    source = record.get("eventSource")
    if source != "aws:s3":
        raise MalformedError(f"{what} has eventSource {source!r}, expected 'aws:s3'")
    event_name = required_text(record, "eventName", what)
    action = _s3_action(event_name, what)
    if action is None:
        target = f"s3://{optional_text(record, 's3.bucket.name')}/{optional_text(record, 's3.object.key')}"
        sink.ignore(origin, f"{event_name} on {show(target)} does not change content")
        return
    event_time = optional_text(record, "eventTime")
    add_s3_change(record, NOTIFICATION_FIELDS, action, event_time, what=what, origin=origin, sink=sink)


class _S3Fields(NamedTuple):
    """Where one envelope shape keeps an S3 change's bucket, key and identity (sequencer, version id,
    ETag, event time: the fallbacks of a change id, in that order)."""

    bucket: str
    key: str
    identity: tuple[str, str, str, str]


NOTIFICATION_FIELDS: Final = _S3Fields(
    "s3.bucket.name", "s3.object.key", ("s3.object.sequencer", "s3.object.versionId", "s3.object.eTag", "eventTime")
)
EVENTBRIDGE_FIELDS: Final = _S3Fields(
    "detail.bucket.name",
    "detail.object.key",
    ("detail.object.sequencer", "detail.object.version-id", "detail.object.etag", "time"),
)
_IDENTITY_PREFIXES: Final = ("", "version:", "etag:", "time:")


def add_s3_change(
    doc: Mapping[str, Any],
    fields: _S3Fields,
    action: Action,
    event_time: str | None,
    *,
    what: str,
    origin: Origin,
    sink: Sink,
) -> None:
    """One S3 change, whatever the envelope: the key URL-decoded once, the id from the first identity
    field present."""
    bucket = required_text(doc, fields.bucket, what)
    check_bucket(bucket, what)
    key = decode_key(required_text(doc, fields.key, what), what)
    version = first_text(doc, *zip(fields.identity, _IDENTITY_PREFIXES, strict=True))
    if version is None:
        raise MalformedError(f"{what} has no {', '.join(fields.identity[:3])} or {fields.identity[3]} to identify it")
    check_identifier(version, f"{what} identity (sequencer, version id, ETag or time)", MAX_IDENTITY_CHARS)
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
