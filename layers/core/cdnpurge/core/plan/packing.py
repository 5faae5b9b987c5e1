"""Chunking: the fewest requests a group of targets fits in, under a provider's per-call target limit and
body-byte limit (see the `cdnpurge.core.plan` docstring for why first-fit-decreasing plus an exact search).

Pure integer work on sizes; `Limits` prices a target as the provider renders it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from cdnpurge.core.models import Target, TargetKind
from cdnpurge.core.spec import DeclaredProvider, ProviderSpec

# Groups this small get an exhaustive search when first-fit-decreasing is above the lower bound.
EXACT_SEARCH_MAX_ITEMS = 10
_EXACT_SEARCH_NODES = 200_000
# Characters json.dumps escapes (or that are not ASCII): such values are measured the slow way. Spelled as
# the printable ASCII that needs no escape, negated: a class with ranges up to U+10FFFF took 4 ms of every cold
# start to compile, this one a few microseconds (same matches).
_NEEDS_ESCAPE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class Limits(msgspec.Struct, frozen=True):
    """One group's per-call limits: `count` targets, and `budget` bytes for the target list (or None).

    `render` is the provider's (None: the base identity render, which has nothing to validate); it also
    validates, raising ValueError for what the provider cannot express. A target costs the bytes of its
    rendered form as a JSON string, plus a comma, where there is a budget to spend them from.
    """

    kind: TargetKind
    count: int
    budget: int | None
    render: Callable[[Target], str] | None

    def cost(self, value: str) -> int | None:
        """A value's bytes as chunking will spend them (0 without a budget), or None where chunking will not
        send it (the provider cannot express it, or it alone exceeds the budget): it becomes a plan error.

        Whatever prices a plan before it is chunked (escalation) must use this, so that what it counts is
        what `Lane.chunk` sends; `Lane._measured` is the same test inlined for the per-target hot loop.
        """
        if self.render is None and self.budget is None:
            return 0
        try:
            wire = value if self.render is None else self.render(Target(self.kind, value))
        except Exception:  # refused, or failing unexpectedly: it cannot be sent (`Lane.chunk` reports it)
            return None
        if self.budget is None:
            return 0
        size = wire_cost(wire)
        return size if size <= self.budget else None


def limits_for(spec: ProviderSpec, kind: TargetKind) -> Limits:
    caps = spec.capabilities
    render = None if _identity(spec.render) else spec.render
    if caps.max_body_bytes is None:
        return Limits(kind, caps.max_targets[kind], None, render)
    # Body = overhead + items joined by commas: an item costs its JSON string plus one comma, and the
    # last comma is not sent, hence the + 1.
    return Limits(kind, caps.max_targets[kind], caps.max_body_bytes - caps.body_overhead_bytes + 1, render)


def wire_cost(wire: str) -> int:
    """Bytes of `wire` as a JSON string in a list: quotes, escapes and a comma."""
    if _NEEDS_ESCAPE.search(wire) is None:
        return len(wire) + 3
    return len(json.dumps(wire)) + 1


def _identity(render: Callable[[Target], str]) -> bool:
    """Whether `render` is the base `DeclaredProvider.render` (the value as is: nothing to validate)."""
    function = getattr(getattr(render, "func", None), "__func__", None)
    base: classmethod[DeclaredProvider, [Any, Target], str] = vars(DeclaredProvider)["render"]
    return function is not None and function is base.__func__


def lower_bound(sizes: Sequence[int], count: int, budget: int | None) -> int:
    """No packing of these items can use fewer chunks: `max(ceil(n / count), ceil(bytes / budget))`."""
    if not sizes:
        return 0
    by_count = -(-len(sizes) // count)
    return by_count if budget is None else max(by_count, -(-sum(sizes) // budget))


def pack(sizes: Sequence[int], count: int, budget: int | None) -> list[list[int]]:
    """Indices of `sizes` grouped into the fewest chunks we can find (see the module docstring).

    Chunks are returned in a deterministic order; `sizes[i] <= budget` must hold for every item.
    """
    n = len(sizes)
    if budget is None:
        return [list(range(start, min(n, start + count))) for start in range(0, n, count)]
    order = sorted(range(n), key=lambda i: (-sizes[i], i))
    chunks = _first_fit(order, sizes, count, budget)
    if len(chunks) > lower_bound(sizes, count, budget) and n <= EXACT_SEARCH_MAX_ITEMS:
        better = _exact(order, sizes, count, budget, len(chunks) - 1)
        if better is not None:
            chunks = better
    return sorted((sorted(chunk) for chunk in chunks), key=lambda chunk: chunk[0])


def _first_fit(order: list[int], sizes: Sequence[int], count: int, budget: int) -> list[list[int]]:
    """First fit over `order`, finding the leftmost chunk with room in O(log chunks) (a max-tree of room)."""
    capacity = 1
    while capacity < len(order):
        capacity *= 2
    room = [-1] * (2 * capacity)  # room left in each chunk; -1 for chunks not open or full by count
    chunks: list[list[int]] = []
    used: list[int] = []
    for item in order:
        need = sizes[item]
        if room[1] >= need:
            node = 1
            while node < capacity:
                node = 2 * node if room[2 * node] >= need else 2 * node + 1
            slot = node - capacity
        else:
            slot = len(chunks)
            chunks.append([])
            used.append(0)
        chunks[slot].append(item)
        used[slot] += need
        node = slot + capacity
        room[node] = budget - used[slot] if len(chunks[slot]) < count else -1
        node //= 2
        while node:
            room[node] = max(room[2 * node], room[2 * node + 1])
            node //= 2
    return chunks


def _exact(order: list[int], sizes: Sequence[int], count: int, budget: int, most: int) -> list[list[int]] | None:
    """The fewest chunks (at most `most`) by exhaustive search with symmetry breaking; None if none exists
    or the node budget ran out (the caller keeps its packing)."""
    low = lower_bound(sizes, count, budget)
    nodes = 0
    best: list[list[int]] | None = None

    def place(position: int, chunks: list[list[int]], used: list[int], limit: int) -> bool:
        nonlocal nodes
        nodes += 1
        if nodes > _EXACT_SEARCH_NODES:
            raise _SearchExhaustedError
        if position == len(order):
            return True
        item = order[position]
        seen: set[tuple[int, int]] = set()
        for slot, chunk in enumerate(chunks):
            state = (used[slot], len(chunk))
            if state in seen or len(chunk) >= count or used[slot] + sizes[item] > budget:
                continue
            seen.add(state)
            chunk.append(item)
            used[slot] += sizes[item]
            if place(position + 1, chunks, used, limit):
                return True
            chunk.pop()
            used[slot] -= sizes[item]
        if len(chunks) < limit:
            chunks.append([item])
            used.append(sizes[item])
            if place(position + 1, chunks, used, limit):
                return True
            chunks.pop()
            used.pop()
        return False

    try:
        for limit in range(low, most + 1):
            chunks: list[list[int]] = []
            if place(0, chunks, [], limit):
                best = chunks
                break
    except _SearchExhaustedError:
        return None
    return best


class _SearchExhaustedError(Exception):
    """The exhaustive search hit its node budget."""
