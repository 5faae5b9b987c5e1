"""The decode stage's fast path for storms.

A deploy's 10,000 uploads arrive as 10,000 SQS records of one of two shapes, almost always plain: the
fast path reads them with straight dict lookups and returns the very `Change` the validating path would
(tests/unit/test_events.py compares the two over generated records). Anything unusual (a missing or
non-string field, a key needing URL-decoding or not plain ASCII, no sequencer, other envelopes) returns
None, and the record goes through the validating path, which owns every error message.
"""

from __future__ import annotations

import json
from typing import Final

from cdnpurge.core.events.reading import (
    ENVELOPE_ID,
    MAX_BODY_BYTES,
    MAX_ENVELOPE_ID_CHARS,
    MAX_IDENTITY_CHARS,
    MAX_KEY_BYTES,
    S3_BUCKET,
)
from cdnpurge.core.events.s3 import EVENTBRIDGE_S3_ACTIONS, S3_ACTIONS
from cdnpurge.core.models import Change
from cdnpurge.core.nesting import MAX_NESTING

NOT_PARSED: Final = object()  # the body was not parsed (or could not be): the validating path parses it
# `json.loads` minus its wrappers (a BOM check and two whitespace regexes around this very call): a body
# that `raw_decode` parses to its last character is parsed to the same value by `json.loads`, and one
# that it does not (whitespace around the document, a BOM, extra data) is left to the validating path.
_BODY_DECODER: Final = json.JSONDecoder()


def parsed_body(body: object) -> object:
    """The body as JSON, when it is a string small enough that it cannot exceed the size limit, with few
    enough brackets that it cannot nest deeper than the limit (no recursion), and nothing but one JSON
    document."""
    if type(body) is not str or len(body) * 4 > MAX_BODY_BYTES or body.count("[") + body.count("{") > MAX_NESTING:
        return NOT_PARSED
    try:
        doc, end = _BODY_DECODER.raw_decode(body)
    except (ValueError, RecursionError):
        return NOT_PARSED
    return doc if end == len(body) else NOT_PARSED


def plain_s3_change(doc: object, message_id: str) -> Change | None:
    """The change of an EventBridge S3 event or one-record S3 notification with plain fields, else None."""
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
