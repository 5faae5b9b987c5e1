"""Coalescing, the pure decision: which targets wait for a provider's window, and how a window is named.

Why: coalescing inside one SQS batch already sends a surrogate key shared by a hundred uploads once, but a
storm spread over a hundred batches still sent it a hundred times (and, at CloudFront, billed it a hundred
times). With `coalesce_seconds` set on a provider, a *shared* target (a key or cache tag, a prefix or
wildcard, a host, a purge-all: something many objects' changes name) is not purged by the batch that names
it: it joins the provider's open window, and one purge after the window serves every change that joined.
A target unique to one object (a URL, a path) is purged at once, as before: delaying it would save nothing.

This module holds what needs no I/O: the split of a batch's routed targets into "now" and "per window",
how a target is stored (`encode_target` / `decode_target`), and how a window's purge is named as a change
(`flush_change_id`), so the ledger, the plan, the purge trail and the failure report treat the window's
purge like any other change. The store, the flush message and the state machine are
`cdnpurge.runtime.coalesce`; the message itself is `cdnpurge.core.events.coalesce`.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

import msgspec

from cdnpurge.core.models import Change, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.spec import MAX_COALESCE_SECONDS, ProviderSpec

# Kinds that name what many objects share: these wait for the window. URLs and paths are one object's.
SHARED_KINDS: Final = frozenset({TargetKind.KEY, TargetKind.PREFIX, TargetKind.HOST, TargetKind.ALL})
FLUSH_ID_PREFIX: Final = "coalesce:"  # a window's purge, as a change id: `coalesce:<provider>#<generation>`
_FLUSH_ID: Final = re.compile(r"coalesce:[A-Za-z0-9_.-]{1,128}#[0-9]{1,16}")
MAX_GENERATION: Final = 2**53 - 1  # a window's number stays an exact JSON number and DynamoDB N
# The longest a stored target may be: a key of Fastly's 1,024 bytes or a prefix URL, with room to spare.
MAX_STORED_TARGET_CHARS: Final = 2048
_SOFT_MARKS: Final = {None: "-", True: "s", False: "h"}
_MARK_SOFT: Final = {mark: soft for soft, mark in _SOFT_MARKS.items()}

Destinations = Callable[[frozenset[str] | None, TargetKind], tuple[str, ...]]


def flush_change_id(provider: str, generation: int) -> str:
    """The change id under which a window's purge is claimed, planned, settled and recorded."""
    return f"{FLUSH_ID_PREFIX}{provider}#{generation}"


def is_flush(change: Change) -> bool:
    """Whether a change is a window's purge (its targets come from the window, not from rules): only the flush
    message's decoder makes one (no other change id has this shape, and a window's purge has no object)."""
    return change.bucket is None and change.id.startswith(FLUSH_ID_PREFIX) and bool(_FLUSH_ID.fullmatch(change.id))


def flush_window(change_id: str) -> tuple[str, int]:
    """(provider, generation) of a flush change id (the decoder built it, so it is well formed)."""
    provider, _, generation = change_id[len(FLUSH_ID_PREFIX) :].rpartition("#")
    return provider, int(generation)


def split_flushes(changes: Sequence[Change]) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """(window purges, every other change): only the others go through the rules."""
    flushes = tuple(change for change in changes if is_flush(change))
    if not flushes:
        return (), tuple(changes)
    return flushes, tuple(change for change in changes if not is_flush(change))


def encode_target(kind: TargetKind, value: str, soft: bool | None) -> str:
    """A target as stored in a window's set: `<kind>|<mode>|<value>` (mode `s`oft, `h`ard, `-` default)."""
    return f"{kind.value}|{_SOFT_MARKS[soft]}|{value}"


def decode_target(stored: str) -> tuple[Target, bool | None] | None:
    """The target and soft wish of a stored entry, or None for an entry that is not one (never trusted)."""
    kind_text, _, rest = stored.partition("|")
    mark, _, value = rest.partition("|")
    try:
        kind = TargetKind(kind_text)
    except ValueError:
        return None
    if kind not in SHARED_KINDS or mark not in _MARK_SOFT or not value or len(value) > MAX_STORED_TARGET_CHARS:
        return None
    return Target(kind, value), _MARK_SOFT[mark]


def flush_targets(change_id: str, provider: str, stored: Iterable[str]) -> tuple[list[RoutedTarget], int]:
    """The routed targets of a window's purge (to `provider` only), and how many stored entries were refused."""
    routed: list[RoutedTarget] = []
    refused = 0
    only = frozenset({provider})
    for entry in sorted(set(stored)):
        decoded = decode_target(entry)
        if decoded is None:
            refused += 1
            continue
        target, soft = decoded
        routed.append(RoutedTarget(change_id, target, only, soft))
    return routed, refused


def flush_delay(due_at: float, now: float) -> int:
    """The SQS DelaySeconds that delivers a window's flush message when the window closes: rounded up (a purge
    never starts before the window's end), within SQS's 0..900."""
    if not math.isfinite(due_at - now):
        return 0
    return max(0, min(MAX_COALESCE_SECONDS, math.ceil(due_at - now)))


class Split(msgspec.Struct):
    """A batch's targets: `now` goes to the planner, `waiting[provider]` joins that provider's window.

    `changes[provider]` lists the change ids whose targets wait there (the purge trail says which window's
    purge covered them). A target routed to a windowed provider and to others is split: the others get it now.
    """

    now: list[RoutedTarget] = msgspec.field(default_factory=list)
    waiting: dict[str, list[RoutedTarget]] = msgspec.field(default_factory=lambda: defaultdict(list))

    def changes(self, provider: str) -> tuple[str, ...]:
        return tuple(sorted({item.change_id for item in self.waiting.get(provider, ())}))

    def give_up(self, provider: str) -> list[RoutedTarget]:
        """The fallback when a window cannot hold a provider's share: it is purged now."""
        items = self.waiting.pop(provider, [])
        self.now.extend(items)
        return items


def split(routed: Iterable[RoutedTarget], destinations: Destinations, specs: Mapping[str, ProviderSpec]) -> Split:
    """Route each shared target to the windows of the providers that coalesce; everything else is purged now.

    Routing is the planner's own (`destinations`, `cdnpurge.core.plan.router`), so a target waits only where
    it would have been sent, and where it still goes to other providers they get it with the same change id.
    """
    windows = {name for name, spec in specs.items() if spec.coalesce_seconds}
    result = Split()
    if not windows:
        result.now.extend(routed)
        return result
    for item in routed:
        if item.target.kind not in SHARED_KINDS or len(item.target.value) > MAX_STORED_TARGET_CHARS:
            result.now.append(item)
            continue
        found = destinations(item.providers, item.target.kind)
        waiting = [name for name in found if name in windows]
        if not waiting:
            result.now.append(item)
            continue
        for name in waiting:
            result.waiting[name].append(item._replace(providers=frozenset({name})))
        others = frozenset(found) - frozenset(waiting)
        if others:
            result.now.append(item._replace(providers=others))
    for name in sorted(windows):
        if specs[name].escalation.purge_all_over is not None:
            _escalate_across_batches(result, name, specs[name], destinations)
    return result


def _escalate_across_batches(result: Split, name: str, spec: ProviderSpec, destinations: Destinations) -> None:
    """A batch whose purges at `name` would escalate to a purge-all (`purge_all_over`) leaves that purge-all to
    the window instead, serving all of the batch's changes there: a storm over many batches then purges
    everything once per window, not once per batch."""
    mine = [item for item in result.now if name in destinations(item.providers, item.target.kind)]
    if not mine:
        return
    trial = plan([item._replace(providers=frozenset({name})) for item in mine], {name: spec})
    everything = next((e for e in trial.escalations if e.kind is TargetKind.ALL), None)
    if everything is None:
        return
    kept: list[RoutedTarget] = []
    for item in result.now:
        found = destinations(item.providers, item.target.kind)
        if name not in found:
            kept.append(item)
        elif others := frozenset(found) - {name}:
            kept.append(item._replace(providers=others))
    result.now = kept
    only = frozenset({name})
    result.waiting[name].extend(
        RoutedTarget(change_id, Target(TargetKind.ALL, "*"), only, everything.soft)
        for change_id in sorted({item.change_id for item in mine})
    )
