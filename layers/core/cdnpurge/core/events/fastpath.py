"""The decode stage's fast path for storms.

A deploy's 10,000 uploads arrive as 10,000 SQS records of one of two shapes, almost always plain: the
fast path reads them in two steps and returns the very `Change` the validating path would
(tests/unit/test_events.py compares the two over generated records). Anything unusual (a missing or
non-string field, a key needing URL-decoding or not plain ASCII, no sequencer, other envelopes) returns
None, and the record goes through the validating path, which owns every error message.

1. `typed_s3_change`: the body decoded by msgspec straight into the few typed fields a change needs (of an
   EventBridge S3 event or a one-record S3 notification: `_StormBody`), skipping the rest without building
   it. Measured on the bench's 10,000 EventBridge uploads (CPU time): 6.7 ms to decode the bodies, against
   12.3 ms into dictionaries (`json.loads`: 35 ms), and the whole step 17.5 ms against 34 ms for step 2
   (attribute reads instead of dictionary lookups, and no dictionaries to build). It decides only what it is
   sure of: any body it does not fully understand (a field of another type, a key of another shape,
   malformed JSON) gets None and goes to step 2, so what it returns is exactly what step 2 returns; a body
   it decodes is valid JSON that `json.loads` parses to the same values (skipped values are syntax-checked
   as strictly as decoded ones: tests/unit/test_events.py holds it to that).
2. `plain_s3_change` on the body parsed into dictionaries (`parsed_body`): both shapes with straight dict
   lookups; its parsed body is what the validating path reads next when it returns None.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cdnpurge.core.events.reading import (
    AWS_ACCOUNT,
    ENVELOPE_ID,
    MAX_BODY_BYTES,
    MAX_ENVELOPE_ID_CHARS,
    MAX_IDENTITY_CHARS,
    MAX_KEY_BYTES,
    S3_BUCKET,
)
from cdnpurge.core.events.s3 import EVENTBRIDGE_S3_ACTIONS, S3_ACTIONS
from cdnpurge.core.models import Change

NOT_PARSED: Final = object()  # the body was not parsed (or could not be): the validating path parses it
# msgspec's JSON decoder parses a storm's bodies in less than half json's time (bench/README.md). It is strict
# RFC 8259: what it accepts, `json.loads` parses to the same value (objects, arrays, strings, numbers, with the
# last of duplicate keys kept); what it refuses and `json.loads` takes (NaN, Infinity, numbers beyond a float,
# lone surrogates) is left to the validating path, which parses with `json` and owns every error message.
_BODY_DECODER: Final = msgspec.json.Decoder()


def parsed_body(body: object) -> object:
    """The body as JSON, when it is a string small enough that it cannot exceed the size limit and holds
    nothing but one JSON document. A body nested past the parser's recursion limit is left to the validating
    path, which refuses it by name before parsing (`cdnpurge.core.nesting`): counting brackets here would
    cost every record of a storm a few percent."""
    if type(body) is not str or len(body) * 4 > MAX_BODY_BYTES:
        return NOT_PARSED
    try:
        return _BODY_DECODER.decode(body)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        return NOT_PARSED


def plain_s3_change(doc: object, message_id: str, home_account: str | None = None) -> Change | None:
    """The change of an EventBridge S3 event or one-record S3 notification with plain fields, else None (an
    event from an account other than `home_account` included: its id is the validating path's to build)."""
    if type(doc) is not dict or "cdnpurge" in doc:
        return None
    try:
        # The same order of shapes as `decode_document`, so a document with several is read as it reads it
        if "Records" in doc:
            if len(records := doc["Records"]) != 1 or type(record := records[0]) is not dict:
                return None
            if record.get("eventSource") != "aws:s3" or type(name := record.get("eventName")) is not str:
                return None
            action = next((a for prefix, a in S3_ACTIONS if name.removeprefix("s3:").startswith(prefix)), None)
            s3 = record["s3"]
            bucket, obj, event_time = s3["bucket"]["name"], s3["object"], record.get("eventTime")
        elif "detail-type" in doc and "Event" not in doc and not ("Type" in doc and "MessageId" in doc):
            action = EVENTBRIDGE_S3_ACTIONS.get(doc["detail-type"]) if doc.get("source") == "aws.s3" else None
            detail = doc["detail"]
            bucket, obj, event_time = detail["bucket"]["name"], detail["object"], doc.get("time")
            account = doc.get("account")
            # Another account's change, or an account the validating path refuses: the validating path's.
            if account is not None and (
                type(account) is not str or not AWS_ACCOUNT.fullmatch(account) or account != (home_account or account)
            ):
                return None
            event_id = doc["id"]  # as the validating path checks it (`check_identifier`)
            if (
                type(event_id) is not str
                or len(event_id) > MAX_ENVELOPE_ID_CHARS
                or not ENVELOPE_ID.fullmatch(event_id)
            ):
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
    # The bucket and sequencer as the validating path checks them (`check_bucket`, `check_identifier`).
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket or " " in sequencer or len(sequencer) > MAX_IDENTITY_CHARS:
        return None
    event_time = event_time if type(event_time) is str and event_time else None
    return Change(change_id, action, message_id, bucket, key, event_time)  # by position: cheaper than keywords


# -- step 1: an S3 change decoded into typed fields -----------------------------------------------------------


class _Bucket(Struct, gc=False):  # gc=False: strings only, nothing to collect (msgspec allocates faster)
    name: str


class _Object(Struct, gc=False):
    key: str
    sequencer: str


class _Location(Struct, gc=False, rename={"object_": "object"}):
    """An EventBridge S3 event's `detail`, or an S3 notification record's `s3`."""

    bucket: _Bucket
    object_: _Object


class _NotificationRecord(Struct, gc=False):
    eventSource: str
    eventName: str
    s3: _Location
    eventTime: str | None = None


class _StormBody(Struct, gc=False, rename={"detail_type": "detail-type"}):
    """The fields of the two storm shapes (an EventBridge S3 event, a one-record S3 notification) the change
    needs. A body with a key of another shape (the `UnsetType` fields: present at all, the body fails to
    decode here) is step 2's, which reads every shape in `decode_document`'s order."""

    Records: list[_NotificationRecord] | UnsetType = UNSET
    detail_type: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    detail: _Location | UnsetType = UNSET
    id: str | UnsetType = UNSET
    time: str | None = None
    account: str | None = None
    # The keys that make `decode_document` (or `plain_s3_change`) read a body as another shape.
    cdnpurge: UnsetType = UNSET
    Event: UnsetType = UNSET
    Type: UnsetType = UNSET
    MessageId: UnsetType = UNSET


_STORM_DECODER: Final = msgspec.json.Decoder(_StormBody)
# A `Change` built in C (`tuple.__new__`) from a tuple spelling out its defaults: its generated `__new__` (keyword
# defaults filled in Python) cost 0.29 us a record here, this 0.12 us (the defaults as constants: appending them
# from a tuple costs another 0.15 us). The tests compare each change with the one `plain_s3_change` builds
# through `Change(...)`, so a field added to `Change` fails them until it is added here.
_new_tuple: Final = tuple.__new__


@lru_cache(maxsize=64)
def _plain_bucket(bucket: str) -> bool:
    """`check_bucket`'s test, memoised: a storm names the same few buckets ten thousand times."""
    return S3_BUCKET.fullmatch(bucket) is not None and ".." not in bucket


def typed_s3_change(body: str, message_id: str, home_account: str | None = None) -> Change | None:
    """The change of a storm record's body with plain fields, exactly as `plain_s3_change` reads it; None for
    anything else (step 2 then reads it: see the module docstring). `body` is at most `MAX_BODY_BYTES`."""
    try:
        doc = _STORM_DECODER.decode(body)
    except (ValueError, RecursionError):  # malformed, another shape or type (msgspec's errors are ValueErrors)
        return None
    if doc.Records is not UNSET:
        if len(doc.Records) != 1 or (record := doc.Records[0]).eventSource != "aws:s3":
            return None
        name = record.eventName.removeprefix("s3:")
        action = next((action for prefix, action in S3_ACTIONS if name.startswith(prefix)), None)
        location, event_time = record.s3, record.eventTime
    else:
        detail, event_id, account = doc.detail, doc.id, doc.account
        if detail is UNSET or event_id is UNSET or doc.source != "aws.s3":
            return None
        action = EVENTBRIDGE_S3_ACTIONS.get(doc.detail_type)  # type: ignore[arg-type]  # UNSET: None
        # The id as `check_identifier` checks it: 1-128 characters of printable ASCII but the space ([!-~]+).
        if not (event_id and len(event_id) <= MAX_ENVELOPE_ID_CHARS and event_id.isascii()):
            return None
        if not event_id.isprintable() or " " in event_id:
            return None
        # The account as `AWS_ACCOUNT` reads it (12 ASCII digits), and the stack's own (or none known).
        if account is not None and not (len(account) == 12 and account.isascii() and account.isdigit()):
            return None
        if account is not None and home_account is not None and account != home_account:
            return None
        location, event_time = detail, doc.time
    bucket, key, sequencer = location.bucket.name, location.object_.key, location.object_.sequencer
    if action is None or not (bucket and key and sequencer):
        return None
    change_id = f"s3:{bucket}/{key}@{sequencer}"
    # As in `plain_s3_change`: printable ASCII throughout, nothing in the key to URL-decode, within bounds.
    if not (change_id.isascii() and change_id.isprintable()) or "+" in key or "%" in key or len(key) > MAX_KEY_BYTES:
        return None
    if not _plain_bucket(bucket) or " " in sequencer or len(sequencer) > MAX_IDENTITY_CHARS:
        return None
    return _new_tuple(  # keys, paths, urls, hosts, soft, account: `Change`'s defaults
        Change, (change_id, action, message_id, bucket, key, event_time or None, (), (), (), (), None, None)
    )
