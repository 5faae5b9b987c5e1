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
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, ConfigDict, Field, Strict, with_config

from cdnpurge.core.events.own import NO_CONTROL, OwnMessage, encode_own, read_own
from cdnpurge.core.events.reading import (
    MAX_IDENTITY_CHARS,
    MAX_KEY_BYTES,
    MAX_TARGETS,
    S3_BUCKET,
    Origin,
)
from cdnpurge.core.events.result import Sink
from cdnpurge.core.events.verify import ChangeId
from cdnpurge.core.models import Action, Change

REPURGE_MARKER: Final = "repurge"  # value of the "cdnpurge" field of a re-purge message
REPURGE_SUFFIX: Final = "#repurge"  # appended to the change ids a re-purge message carries
_REPURGE_BODY_BYTES: Final = 200 * 1024  # well under the SQS limit, leaving room for attributes


def _s3_bucket(bucket: str) -> str:
    """S3's naming rules (legacy us-east-1 names included), as every decoded S3 change is held to."""
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError("is not an S3 bucket name (3-255 letters, digits, '.', '-', '_')")
    return bucket


def _s3_key_bytes(key: str) -> str:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"is over S3's {MAX_KEY_BYTES}-byte key limit")
    return key


Bucket = Annotated[str, Strict(), Field(min_length=3, max_length=255), AfterValidator(_s3_bucket)]
# Stored decoded: never URL-decoded again.
Key = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_KEY_BYTES), NO_CONTROL, AfterValidator(_s3_key_bytes)]
EventTime = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_IDENTITY_CHARS), NO_CONTROL]


@with_config(ConfigDict(extra="forbid"))
@dataclass(frozen=True)
class RepurgedChange:
    """One S3 change to purge once more: what identifies it, and its object."""

    id: ChangeId
    action: Literal[Action.CREATED, Action.REMOVED]
    bucket: Bucket
    key: Key
    event_time: EventTime | None = None


@with_config(ConfigDict(extra="forbid"))
@dataclass(frozen=True)
class RepurgeMessage(OwnMessage):
    """A delayed second purge of S3 changes (a message the function writes to its own queue). Never
    enqueued again by the function (a re-purge is not re-purged), so it needs no end time: SQS's redrive
    policy ends its retries."""

    changes: Annotated[tuple[RepurgedChange, ...], Field(min_length=1, max_length=MAX_TARGETS)]
    cdnpurge: Literal["repurge"] = field(default=REPURGE_MARKER, kw_only=True)


def is_repurge(change: Change) -> bool:
    """Whether a change came from a re-purge message (and so is never re-purged again)."""
    return change.id.endswith(REPURGE_SUFFIX)


def repurge_messages(changes: list[Change] | tuple[Change, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """SQS bodies asking for a second purge of these S3 changes, each under `_REPURGE_BODY_BYTES`,
    with the ids of the changes each one carries."""
    messages: list[tuple[str, tuple[str, ...]]] = []
    chunk: list[RepurgedChange] = []
    used = 0

    def flush() -> None:
        messages.append((encode_own(RepurgeMessage(changes=tuple(chunk))), tuple(item.id for item in chunk)))

    for change in changes:
        if change.bucket is None or change.key is None or change.action is Action.PUBLISHED:
            continue
        item = RepurgedChange(change.id, change.action, change.bucket, change.key, change.event_time or None)
        size = len(json.dumps(item.__dict__, default=str).encode()) + 1
        if chunk and used + size > _REPURGE_BODY_BYTES:
            flush()
            chunk, used = [], 0
        chunk.append(item)
        used += size
    if chunk:
        flush()
    return messages


def decode_repurge(doc: Mapping[str, Any], origin: Origin, sink: Sink) -> None:
    """The changes of a re-purge message, validated whole (`read_own`): one bad field fails the record."""
    message = read_own(RepurgeMessage, doc, what="re-purge message")
    for item in message.changes:
        change_id = item.id if item.id.endswith(REPURGE_SUFFIX) else item.id + REPURGE_SUFFIX
        sink.changes.append(
            Change(
                id=change_id,
                action=item.action,
                source_id=origin.source_for(change_id),
                bucket=item.bucket,
                key=item.key,
                event_time=item.event_time,
            )
        )
