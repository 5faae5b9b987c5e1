"""The re-purge message, encoded and decoded in one place.

With `repurge_delay_seconds` set, the handler enqueues S3 changes it purged once more, with an SQS delay
(origin replication lag; scheduling is `cdnpurge.runtime.repurge`). The message is `{"cdnpurge": "repurge",
"changes": [...]}`: each change keeps its bucket, key and action; its id gets the `#repurge` suffix, so
the ledger treats the second purge as a change of its own (not a redelivery of the first), a redelivered
re-purge message is still skipped, and a re-purge is never re-purged (`is_repurge`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any, Final

from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import (
    AWS_ACCOUNT,
    MAX_KEY_BYTES,
    MAX_TARGETS,
    MalformedError,
    Origin,
    Sink,
    check_bucket,
    check_text,
    guarded,
    is_object,
    json_kind,
    optional_text,
    required_text,
)
from cdnpurge.core.models import Action, Change

REPURGE_MARKER: Final = "repurge"  # value of the "cdnpurge" field of a re-purge message
REPURGE_SUFFIX: Final = "#repurge"  # appended to the change ids a re-purge message carries
MAX_CHANGE_ID_CHARS: Final = 4096  # an S3 change id: bucket, a key of up to 1024 bytes, a sequencer
_REPURGE_BODY_BYTES: Final = 200 * 1024  # well under the SQS limit, leaving room for attributes


def is_repurge(change: Change) -> bool:
    """Whether a change came from a re-purge message (and so is never re-purged again)."""
    return change.id.endswith(REPURGE_SUFFIX)


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
        if change.account:
            item["account"] = change.account
        size = len(json.dumps(item).encode()) + 1
        if chunk and used + size > _REPURGE_BODY_BYTES:
            flush()
            chunk, used = [], 0
        chunk.append(item)
        used += size
    if chunk:
        flush()
    return messages


def decode_repurge(doc: Mapping[str, Any], origin: Origin, sink: Sink) -> None:
    what = "re-purge message"
    if doc["cdnpurge"] != REPURGE_MARKER:
        raise MalformedError(f"unknown envelope: cdnpurge message type {show(str(doc['cdnpurge']))}")
    changes = doc.get("changes")
    if not isinstance(changes, list) or not changes:
        raise MalformedError(f"{what} field changes must be a non-empty array, got {json_kind(changes)}")
    if len(changes) > MAX_TARGETS:
        raise MalformedError(f"{what} field changes has {len(changes)} entries, over the limit of {MAX_TARGETS}")
    for index, raw in enumerate(changes):
        guarded(sink, origin, partial(_decode_repurge_change, raw, f"{what} changes[{index}]", origin, sink))


def _decode_repurge_change(raw: object, what: str, origin: Origin, sink: Sink) -> None:
    if not is_object(raw):
        raise MalformedError(f"{what} must be an object, got {json_kind(raw)}")
    first_id = required_text(raw, "id", what)
    if len(first_id) > MAX_CHANGE_ID_CHARS:
        raise MalformedError(f"{what} field id has {len(first_id)} characters, over the limit of {MAX_CHANGE_ID_CHARS}")
    check_text(first_id, f"{what} field id")
    action = required_text(raw, "action", what)
    if action not in (Action.CREATED.value, Action.REMOVED.value):
        raise MalformedError(f"{what} field action must be 'created' or 'removed', got {show(action)}")
    bucket = required_text(raw, "bucket", what)
    check_bucket(bucket, what)
    key = required_text(raw, "key", what)  # stored decoded: never URL-decoded again
    check_text(key, f"{what} key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MalformedError(f"{what} key is over S3's {MAX_KEY_BYTES}-byte limit")
    change_id = first_id if first_id.endswith(REPURGE_SUFFIX) else first_id + REPURGE_SUFFIX
    account = optional_text(raw, "account")
    if account is not None and not AWS_ACCOUNT.fullmatch(account):
        raise MalformedError(f"{what} field account must be a 12-digit AWS account id, got {show(account)}")
    sink.changes.append(
        Change(
            id=change_id,
            action=Action(action),
            source_id=origin.source_for(change_id),
            bucket=bucket,
            key=key,
            event_time=optional_text(raw, "event_time"),
            account=account,
        )
    )
