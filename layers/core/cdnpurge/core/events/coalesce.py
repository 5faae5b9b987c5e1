"""The coalescing flush message, encoded and decoded in one place.

When a batch's shared targets join a provider's coalescing window (`cdnpurge.runtime.coalesce`), the
handler enqueues `{"cdnpurge": "coalesce", "provider": ..., "generation": ..., "due_at": ...}` on its own
purge queue, delayed until the window closes. The message names the window only: its targets are in the
window's item in DynamoDB, so any number of such messages for one window purge it once. Decoded, it is a
change of its own (`cdnpurge.core.coalesce.flush_change_id`) with no targets of its own: the pipeline takes
the window's targets for it, and the ledger, the plan, the failure report and the purge trail treat it like
any other change. It comes from our own queue but is input all the same: it is one kind of the function's
own messages (`cdnpurge.core.events.own`), every field typed with its bounds. It is never enqueued again (a
later batch sends a message of its own for the window), so its end is SQS's redrive policy and retention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from cdnpurge.core.coalesce import MAX_GENERATION, flush_change_id
from cdnpurge.core.events.own import Epoch, OwnMessage, ProviderName, encode_own, read_own
from cdnpurge.core.events.reading import Origin
from cdnpurge.core.events.result import Sink
from cdnpurge.core.models import Action, Change

COALESCE_MARKER: Final = "coalesce"  # value of the "cdnpurge" field of a flush message

Generation = Annotated[int, msgspec.Meta(ge=0, le=MAX_GENERATION)]


class FlushMessage(OwnMessage, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The purge of one provider's coalescing window (`generation`), due when the window closes."""

    provider: ProviderName
    generation: Generation
    due_at: Epoch
    cdnpurge: Literal["coalesce"] = COALESCE_MARKER


def encode_flush(provider: str, generation: int, due_at: float) -> str:
    """The flush message for one window (what `decode_flush` reads back)."""
    return encode_own(FlushMessage(provider=provider, generation=generation, due_at=round(due_at, 3)))


def decode_flush(doc: Mapping[str, Any], origin: Origin, sink: Sink) -> None:
    """The window's purge as a `Change`, validated whole (`read_own`): one bad field fails the record."""
    message = read_own(FlushMessage, doc, what="coalescing flush message")
    change_id = flush_change_id(message.provider, message.generation)
    sink.changes.append(Change(id=change_id, action=Action.PUBLISHED, source_id=origin.source_for(change_id)))
