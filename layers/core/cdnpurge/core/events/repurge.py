"""The re-purge message, encoded and decoded in one place.

With `repurge_delay_seconds` set, the handler enqueues S3 changes it purged once more, with an SQS delay
(origin replication lag; scheduling is `cdnpurge.runtime.repurge`). The message is `{"cdnpurge": "repurge",
"changes": [...]}`: each change keeps its bucket, key and action; its id gets the `#repurge` suffix, so
the ledger treats the second purge as a change of its own (not a redelivery of the first), a redelivered
re-purge message is still skipped, and a re-purge is never re-purged (`is_repurge`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from cdnpurge.core.events.own import NO_CONTROL, MessagePart, OwnMessage, encode_own, read_own
from cdnpurge.core.events.reading import (
    AWS_ACCOUNT,
    MAX_IDENTITY_CHARS,
    MAX_KEY_BYTES,
    MAX_TARGETS,
    S3_BUCKET,
    Origin,
)
from cdnpurge.core.events.result import Sink
from cdnpurge.core.events.verify import ChangeId
from cdnpurge.core.models import Action, Change
from cdnpurge.core.schema import worded

REPURGE_MARKER: Final = "repurge"  # value of the "cdnpurge" field of a re-purge message
REPURGE_SUFFIX: Final = "#repurge"  # appended to the change ids a re-purge message carries
_REPURGE_BODY_BYTES: Final = 200 * 1024  # well under the SQS limit, leaving room for attributes

# S3's naming rules (legacy us-east-1 names included), as every decoded S3 change is held to: `S3_BUCKET`,
# and no two dots in a row.
Bucket = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=255,
        pattern=worded(
            rf"\A(?!.*\.\.){S3_BUCKET.pattern}\Z", "is not an S3 bucket name (3-255 letters, digits, '.', '-', '_')"
        ),
    ),
]
# Stored decoded: never URL-decoded again. Its UTF-8 length is checked by `RepurgedChange`.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_BYTES, pattern=NO_CONTROL)]
EventTime = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTITY_CHARS, pattern=NO_CONTROL)]
_ACCOUNT: Final = worded(rf"\A{AWS_ACCOUNT.pattern}\Z", "must be a 12-digit AWS account id")
Account = Annotated[str, msgspec.Meta(pattern=_ACCOUNT)]


class RepurgedChange(MessagePart, frozen=True, forbid_unknown_fields=True):
    """One S3 change to purge once more: what identifies it, and its object."""

    id: ChangeId
    action: Action  # created or removed: a published change has no object to purge again
    bucket: Bucket
    key: Key
    event_time: EventTime | None = None
    account: Account | None = None  # another account's change keeps it (part of its id already)

    def __post_init__(self) -> None:
        """What a field's type cannot say (msgspec names the change that breaks it, `changes[<n>]`)."""
        if self.action is Action.PUBLISHED:
            raise ValueError("action must be created or removed (a published change is not purged again)")
        # A character is at most 4 UTF-8 bytes: only a long key needs encoding to be measured.
        if len(self.key) * 4 > MAX_KEY_BYTES and len(self.key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError(f"key is over S3's {MAX_KEY_BYTES}-byte key limit")


class RepurgeMessage(OwnMessage, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A delayed second purge of S3 changes (a message the function writes to its own queue). Never
    enqueued again by the function (a re-purge is not re-purged), so it needs no end time: SQS's redrive
    policy ends its retries."""

    changes: Annotated[tuple[RepurgedChange, ...], msgspec.Meta(min_length=1, max_length=MAX_TARGETS)]
    cdnpurge: Literal["repurge"] = REPURGE_MARKER


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
        item = RepurgedChange(
            change.id, change.action, change.bucket, change.key, change.event_time or None, change.account
        )
        size = len(msgspec.json.encode(item)) + 1
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
                account=item.account,
            )
        )
