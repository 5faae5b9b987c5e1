"""The coalescing flush message, encoded and decoded in one place.

When a batch's shared targets join a provider's coalescing window (`cdnpurge.runtime.coalesce`), the
handler enqueues `{"cdnpurge": "coalesce", "provider": ..., "generation": ..., "due_at": ...}` on its own
purge queue, delayed until the window closes. The message names the window only: its targets are in the
window's item in DynamoDB, so any number of such messages for one window purge it once. Decoded, it is a
change of its own (`cdnpurge.core.coalesce.flush_change_id`) with no targets of its own: the pipeline takes
the window's targets for it, and the ledger, the plan, the failure report and the purge trail treat it like
any other change. It comes from our own queue but is input all the same: every field is checked and bounded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from cdnpurge.core.coalesce import MAX_GENERATION, flush_change_id
from cdnpurge.core.events.reading import MalformedError, Origin, Sink, json_kind
from cdnpurge.core.models import Action, Change

COALESCE_MARKER: Final = "coalesce"  # value of the "cdnpurge" field of a flush message
# A provider's name as the configuration allows it (`ProviderSettings.name`), bounded.
_PROVIDER_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# `due_at` is epoch seconds: between 2001 and 5138, so a number that is not a time is refused.
_EARLIEST, _LATEST = 1e9, 1e11
_FIELDS: Final = frozenset({"cdnpurge", "provider", "generation", "due_at"})


def encode_flush(provider: str, generation: int, due_at: float) -> str:
    """The flush message for one window (what `decode_flush` reads back)."""
    body = {"cdnpurge": COALESCE_MARKER, "provider": provider, "generation": generation, "due_at": round(due_at, 3)}
    return json.dumps(body, separators=(",", ":"))


def is_flush_document(doc: Mapping[str, Any]) -> bool:
    return doc.get("cdnpurge") == COALESCE_MARKER


def decode_flush(doc: Mapping[str, Any], origin: Origin, sink: Sink) -> None:
    """The window's purge as a `Change`, or `MalformedError` naming what is wrong."""
    what = "coalescing flush message"
    extra = sorted(str(name)[:40] for name in doc if name not in _FIELDS)
    if extra:
        raise MalformedError(f"{what} has unknown field(s) {extra[:5]}")
    provider = doc.get("provider")
    if not isinstance(provider, str) or not _PROVIDER_NAME.fullmatch(provider):
        raise MalformedError(f"{what} field provider must be a provider name (letters, digits, '_', '.', '-')")
    generation = doc.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int) or not 0 <= generation <= MAX_GENERATION:
        raise MalformedError(f"{what} field generation must be an integer from 0 to {MAX_GENERATION}")
    due_at = doc.get("due_at")
    if (
        isinstance(due_at, bool)
        or not isinstance(due_at, int | float)
        or not math.isfinite(due_at)
        or not _EARLIEST <= due_at <= _LATEST
    ):
        raise MalformedError(f"{what} field due_at must be a finite epoch time in seconds, got {json_kind(due_at)}")
    change_id = flush_change_id(provider, generation)
    sink.changes.append(Change(id=change_id, action=Action.PUBLISHED, source_id=origin.source_for(change_id)))
