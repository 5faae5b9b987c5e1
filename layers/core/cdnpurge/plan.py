"""plan: routed targets + each provider's declared capabilities -> the fewest requests within limits.

Pure: no I/O, no clock, no provider-specific branches. Everything provider-specific arrives as
`Capabilities` data, the provider's `EscalationPolicy` and its pure `render()` (for byte accounting).
Steps, per provider:

1. convert each target to a kind the provider accepts (path -> url per configured host, url -> path),
   or report a plan error naming the target: nothing is dropped silently;
2. resolve soft/hard (the change's wish, else the provider's default, only where supported);
3. dedupe across the whole batch: a value wanted both soft and hard is purged hard once; a path, URL or
   prefix inside a planned prefix, and anything beside a planned purge-all, is served by that request
   (its change ids move there);
4. escalate, only where the provider's configuration allows it: the largest groups of paths/URLs sharing
   a directory become one prefix each when that needs no more requests (`prefix_at`), and a plan above the
   provider's request budget becomes one purge-all (`purge_all_over`); each is recorded in
   `Plan.escalations`;
5. sort (deterministic output) and chunk by the per-call target limit and the body-byte limit.

Request counts. Requests carry one kind and one soft/hard mode, so the minimum for a provider is the sum,
over its (kind, mode) groups, of the fewest chunks each group fits in:

- count limit only: exactly `ceil(n / limit)` (consecutive slices of the sorted values), which is optimal;
- with a body-byte limit it is bin packing with a cardinality limit. We pack first-fit-decreasing (which
  leaves at most one chunk with room for both another target and the largest one: the bound the property
  tests check), and when that is above the lower bound `max(ceil(n / limit), ceil(bytes / budget))` and
  the group is small (`EXACT_SEARCH_MAX_ITEMS`), an exhaustive search finds the optimum. Sizes are measured
  on `json.dumps(render(target))` with ASCII escapes, an upper bound of the UTF-8 size of any encoding.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cdnpurge.models import Escalation, Plan, PlanFailure, PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.providers.spec import DeclaredProvider, ProviderSpec

__all__ = ["EXACT_SEARCH_MAX_ITEMS", "can_express", "convert", "lower_bound", "pack", "plan", "router"]

# Groups this small get an exhaustive search when first-fit-decreasing is above the lower bound.
EXACT_SEARCH_MAX_ITEMS = 10
_EXACT_SEARCH_NODES = 200_000
# Characters json.dumps escapes (or that are not ASCII): such values are measured the slow way.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\U0010ffff]')
# Kinds escalation may collapse into a prefix.
_COLLAPSIBLE = (TargetKind.PATH, TargetKind.URL)

Group = tuple[TargetKind, bool]  # (kind, soft)
Converted = tuple[tuple[TargetKind, str], ...]


# --------------------------------------------------------------------------------------------------
# 1. conversion
# --------------------------------------------------------------------------------------------------


def convert(target: Target, spec: ProviderSpec) -> tuple[list[Target], str | None]:
    """Express `target` in kinds `spec` supports, or explain why it cannot be."""
    converted = _converter(spec, target.kind)(target.value)
    if isinstance(converted, str):
        return [], converted
    return [Target(kind, value) for kind, value in converted], None


def _converter(spec: ProviderSpec, kind: TargetKind) -> Callable[[str], Converted | str]:
    """A fast function value -> converted (kind, value) pairs, or an error message, for one input kind."""
    caps, hosts, name = spec.capabilities, spec.hosts, spec.name

    def refuse(message: str) -> Callable[[str], Converted | str]:
        return lambda value: f"{kind.value}:{value}: {message}"

    if caps.supports(kind) and kind in caps.host_qualified:
        if not hosts:
            no_hosts = refuse(f"{name} needs a host for {kind.value} and has no `hosts` configured")
            return lambda value: no_hosts(value) if value.startswith("/") else ((kind, value),)
        return lambda value: (
            tuple((kind, f"{host}{value}") for host in hosts) if value.startswith("/") else ((kind, value),)
        )
    if caps.supports(kind):
        return lambda value: ((kind, value),)
    if kind is TargetKind.PATH and caps.supports(TargetKind.URL):
        if not hosts:
            return refuse(f"{name} purges URLs only and has no `hosts` configured")
        return lambda value: tuple((TargetKind.URL, f"https://{host}{value}") for host in hosts)
    if kind is TargetKind.URL and caps.supports(TargetKind.PATH):
        served = {host.lower() for host in hosts}

        def url_to_path(value: str) -> Converted | str:
            parts = urlsplit(value)
            if served and (parts.hostname or "").lower() not in served:
                return f"{kind.value}:{value}: host is not one of {name}'s hosts {list(hosts)}"
            return ((TargetKind.PATH, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")),)

        return url_to_path
    return refuse(f"{name} cannot purge by {kind.value}")


# --------------------------------------------------------------------------------------------------
# 5. chunking (used by escalation to price alternatives, so it comes first)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    """One group's per-call limits: `count` targets, and `budget` bytes for the target list (or None).

    `render` is the provider's (None: the base identity render, which has nothing to validate); it also
    validates, raising ValueError for what the provider cannot express. A target costs the bytes of its
    rendered form as a JSON string, plus a comma, where there is a budget to spend them from.
    """

    kind: TargetKind
    count: int
    budget: int | None
    render: Callable[[Target], str] | None

    def size(self, value: str) -> int:
        """A value's cost for pricing alternatives: an unrenderable value costs nothing (it is reported when
        the group is chunked)."""
        if self.budget is None:
            return 0
        try:
            wire = value if self.render is None else self.render(Target(self.kind, value))
        except ValueError:
            return 0
        return _cost(wire)


def _limits(spec: ProviderSpec, kind: TargetKind) -> _Limits:
    caps = spec.capabilities
    render = None if _identity(spec.render) else spec.render
    if caps.max_body_bytes is None:
        return _Limits(kind, caps.max_targets[kind], None, render)
    # Body = overhead + items joined by commas: an item costs its JSON string plus one comma, and the
    # last comma is not sent, hence the + 1.
    return _Limits(kind, caps.max_targets[kind], caps.max_body_bytes - caps.body_overhead_bytes + 1, render)


def _cost(wire: str) -> int:
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


# --------------------------------------------------------------------------------------------------
# 2-4. one provider's share of the batch
# --------------------------------------------------------------------------------------------------


def _location(kind: TargetKind, value: str, host_qualified: bool) -> str:
    """Where a target points, comparable with prefixes: `/a/b` (or `host/a/b` for host-qualified prefixes)."""
    if kind is TargetKind.URL:
        parts = urlsplit(value)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return f"{(parts.hostname or '').lower()}{path}" if host_qualified else path
    return value


def _directory(location: str) -> str | None:
    """The directory holding a location (`/a/b.html` -> `/a/`), or None for the root of a site."""
    query = location.find("?")
    end = location.rfind("/", 0, query if query >= 0 else len(location))
    directory = location[: end + 1]
    root = directory == "/" or (not location.startswith("/") and directory.count("/") == 1)
    return None if end < 0 or root else directory


@dataclass
class _Lane:
    """Everything one provider is owed by the batch, grouped by (kind, soft) -> value -> change ids."""

    spec: ProviderSpec
    groups: dict[Group, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(dict))
    converters: dict[TargetKind, Callable[[str], Converted | str]] = field(default_factory=dict)
    errors: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, kind: TargetKind, soft_wish: bool | None, items: list[RoutedTarget]) -> None:
        """Add routed targets of one input kind and soft wish (the hot loop of the planner)."""
        caps = self.spec.capabilities
        wish = self.spec.default_soft if soft_wish is None else soft_wish
        groups = self.groups

        def group_for(target_kind: TargetKind) -> dict[str, set[str]]:
            return groups[(target_kind, wish and caps.soft_purge and target_kind not in caps.hard_only)]

        if caps.supports(kind) and kind not in caps.host_qualified:  # as is: most targets
            group = group_for(kind)
            for item in items:
                value, change_id = item.target.value, item.change_id
                ids = group.get(value)
                if ids is None:
                    group[value] = {change_id}
                else:
                    ids.add(change_id)
            return
        if kind is TargetKind.PATH and not caps.supports(kind) and caps.supports(TargetKind.URL) and self.spec.hosts:
            group = group_for(TargetKind.URL)  # path -> one URL per host, inline: the second most common case
            for host in self.spec.hosts:
                base = f"https://{host}"
                for item in items:
                    url, change_id = base + item.target.value, item.change_id
                    ids = group.get(url)
                    if ids is None:
                        group[url] = {change_id}
                    else:
                        ids.add(change_id)
            return
        converter = self.converters.get(kind)
        if converter is None:
            converter = self.converters[kind] = _converter(self.spec, kind)
        for item in items:
            converted, change_id = converter(item.target.value), item.change_id
            if isinstance(converted, str):
                self.errors[converted].add(change_id)
                continue
            for target_kind, target_value in converted:
                group = group_for(target_kind)
                ids = group.get(target_value)
                if ids is None:
                    group[target_value] = {change_id}
                else:
                    ids.add(change_id)

    # -- step 3: dedupe and subsume ----------------------------------------------------------------------

    def subsume(self) -> None:
        """Serve every target that another planned target already purges from that one instead."""
        groups = self.groups
        for (kind, soft), values in list(groups.items()):  # hard purges what soft would
            hard = groups.get((kind, False)) if soft else None
            if hard:
                for value in [value for value in values if value in hard]:
                    hard[value] |= values.pop(value)
        for soft in (False, True):  # a purge-all serves everything of its mode (hard: every mode)
            everything = groups.get((TargetKind.ALL, soft))
            if not everything:
                continue
            ids = set().union(*everything.values())
            value = min(everything)
            everything.clear()
            everything[value] = ids
            for (kind, other_soft), values in groups.items():
                if (kind, other_soft) != (TargetKind.ALL, soft) and (other_soft or not soft):
                    for served in values.values():
                        ids |= served
                    values.clear()
        self._subsume_prefixes()
        for key in [key for key, values in groups.items() if not values]:
            del groups[key]

    def _subsume_prefixes(self) -> None:
        host_qualified = TargetKind.PREFIX in self.spec.capabilities.host_qualified
        for prefix_soft in (False, True):
            prefixes = self.groups.get((TargetKind.PREFIX, prefix_soft))
            if not prefixes:
                continue
            ordered = sorted(prefixes)  # a prefix sorts right before everything below it
            for (kind, soft), values in self.groups.items():
                if kind not in (*_COLLAPSIBLE, TargetKind.PREFIX) or (soft is False and prefix_soft):
                    continue
                for value in list(values):
                    location = _location(kind, value, host_qualified)
                    cover = _covering(ordered, location, exclude=value if values is prefixes else None)
                    if cover is not None:
                        prefixes[cover] |= values.pop(value)

    # -- step 4: escalation ------------------------------------------------------------------------------

    def escalate_to_prefixes(self) -> list[Escalation]:
        """Collapse the largest same-directory groups into prefixes where that needs no more requests."""
        threshold = self.spec.escalation.prefix_at
        caps = self.spec.capabilities
        if threshold is None or not caps.supports(TargetKind.PREFIX):
            return []
        host_qualified = TargetKind.PREFIX in caps.host_qualified
        escalations = []
        for kind, soft in sorted(self.groups, key=lambda group: (group[0].value, group[1])):
            values = self.groups.get((kind, soft))
            if kind not in _COLLAPSIBLE or not values:
                continue  # (a group an earlier escalation emptied included)
            if host_qualified and kind is TargetKind.PATH:
                continue  # its prefixes would need a host per configured host: not worth the complexity
            by_directory: dict[str, list[str]] = defaultdict(list)
            for value in values:
                directory = _directory(_location(kind, value, host_qualified))
                if directory is not None:
                    by_directory[directory].append(value)
            candidates = sorted(
                ((directory, members) for directory, members in by_directory.items() if len(members) >= threshold),
                key=lambda item: (-len(item[1]), item[0]),
            )
            if not candidates:
                continue
            prefix_soft = soft and caps.soft_purge and TargetKind.PREFIX not in caps.hard_only
            chosen = self._cheapest(kind, soft, prefix_soft, candidates)
            if not chosen:
                continue
            before = self.request_count()
            prefixes = self.groups[(TargetKind.PREFIX, prefix_soft)]
            replaced = 0
            for directory, members in chosen:
                ids = prefixes.setdefault(directory, set())
                for member in members:
                    ids |= values.pop(member)
                replaced += len(members)
            self.subsume()
            escalations.append(
                Escalation(
                    provider=self.spec.name,
                    kind=TargetKind.PREFIX,
                    targets=tuple(sorted(directory for directory, _ in chosen)),
                    replaced=replaced,
                    requests_before=before,
                    requests_after=self.request_count(),
                    soft=prefix_soft,
                )
            )
        return escalations

    def _cheapest(
        self, kind: TargetKind, soft: bool, prefix_soft: bool, candidates: list[tuple[str, list[str]]]
    ) -> list[tuple[str, list[str]]]:
        """The k largest directories to collapse, k minimising (requests, targets); k = 0 unless cheaper.

        Collapsing the largest groups first is optimal for a given k: it removes the most targets while
        adding the same k prefixes. Requests are priced with the lower bound (exact without byte limits).
        """
        members = self.groups[(kind, soft)]
        prefixes = self.groups.get((TargetKind.PREFIX, prefix_soft), {})
        target_limits, prefix_limits = _limits(self.spec, kind), _limits(self.spec, TargetKind.PREFIX)
        sizes = {value: target_limits.size(value) for value in members}
        remaining_count, remaining_bytes = len(members), sum(sizes.values())
        prefix_count = len(prefixes)
        prefix_bytes = sum(prefix_limits.size(value) for value in prefixes)

        def requests(count: int, size: int, limits: _Limits) -> int:
            if count == 0:
                return 0
            by_count = -(-count // limits.count)
            return by_count if limits.budget is None else max(by_count, -(-size // limits.budget))

        def cost(count: int, size: int, prefix_total: int, prefix_size: int) -> tuple[int, int]:
            total = requests(count, size, target_limits) + requests(prefix_total, prefix_size, prefix_limits)
            return total, count + prefix_total

        best_k, best = 0, cost(remaining_count, remaining_bytes, prefix_count, prefix_bytes)
        for k, (directory, group) in enumerate(candidates, start=1):
            remaining_count -= len(group)
            remaining_bytes -= sum(sizes[value] for value in group)
            prefix_count += 1
            prefix_bytes += prefix_limits.size(directory)
            candidate = cost(remaining_count, remaining_bytes, prefix_count, prefix_bytes)
            if candidate < best:
                best_k, best = k, candidate
        return candidates[:best_k]

    def escalate_to_all(
        self, chunked: list[PurgeRequest], unsendable: list[PlanFailure]
    ) -> tuple[list[PurgeRequest], list[PlanFailure], list[Escalation]]:
        """Over the provider's request budget: one purge-all serving every change instead (including
        targets too large to send on their own)."""
        budget = self.spec.escalation.purge_all_over
        caps = self.spec.capabilities
        if budget is None or len(chunked) <= budget or not caps.supports(TargetKind.ALL):
            return chunked, unsendable, []
        soft = all(r.soft for r in chunked) and caps.soft_purge and TargetKind.ALL not in caps.hard_only
        ids = frozenset().union(*(r.change_ids for r in chunked), *(e.change_ids for e in unsendable))
        request = PurgeRequest(self.spec.name, TargetKind.ALL, ("*",), soft, ids)
        escalation = Escalation(
            provider=self.spec.name,
            kind=TargetKind.ALL,
            targets=("*",),
            replaced=sum(len(r.targets) for r in chunked),
            requests_before=len(chunked),
            requests_after=1,
            soft=soft,
        )
        return [request], [], [escalation]

    # -- step 5: chunking ----------------------------------------------------------------------------------

    def request_count(self) -> int:
        """Requests the groups need as they stand (exact: the same packing `chunk` uses)."""
        total = 0
        for (kind, _soft), values in self.groups.items():
            limits = _limits(self.spec, kind)
            if limits.budget is None:
                total += -(-len(values) // limits.count)
            else:
                sizes = [size for size in map(limits.size, values) if 0 < size <= limits.budget]
                total += len(pack(sizes, limits.count, limits.budget))
        return total

    def chunk(self) -> tuple[list[PurgeRequest], list[PlanFailure]]:
        requests: list[PurgeRequest] = []
        errors: list[PlanFailure] = []
        name = self.spec.name
        for kind, soft in sorted(self.groups, key=lambda group: (group[0].value, group[1])):
            by_value = self.groups[(kind, soft)]
            limits = _limits(self.spec, kind)
            values: list[str] = sorted(by_value)
            if limits.render is not None or limits.budget is not None:  # something to check or to size
                values, sizes = self._measured(by_value, values, limits, errors)
            if limits.count == 1 and limits.budget is None:  # one target per call: the hot case at scale
                requests.extend(PurgeRequest(name, kind, (v,), soft, frozenset(by_value[v])) for v in values)
                continue
            if limits.budget is None:
                chunks = [values[start : start + limits.count] for start in range(0, len(values), limits.count)]
            else:
                chunks = [[values[i] for i in chunk] for chunk in pack(sizes, limits.count, limits.budget)]
            for chunk in chunks:
                ids = (
                    frozenset(by_value[chunk[0]])
                    if len(chunk) == 1
                    else frozenset().union(*(by_value[v] for v in chunk))
                )
                requests.append(PurgeRequest(name, kind, tuple(chunk), soft, ids))
        return requests, errors

    def _measured(
        self, by_value: dict[str, set[str]], values: list[str], limits: _Limits, errors: list[PlanFailure]
    ) -> tuple[list[str], list[int]]:
        """The values the provider can express and send, and their sizes (under a byte budget only); the
        others become plan errors. Renders inline, not through `_Limits.size`: this runs once per target."""
        kind, render, budget = limits.kind, limits.render, limits.budget
        kept: list[str] = []
        sizes: list[int] = []
        for value in values:
            try:
                wire = value if render is None else render(Target(kind, value))
            except ValueError as exc:  # the provider cannot express it: an error for its changes only
                errors.append(PlanFailure(self.spec.name, frozenset(by_value[value]), str(exc)))
                continue
            if budget is not None:
                size = _cost(wire)
                if size > budget:
                    message = f"{kind.value}:{value[:80]} alone exceeds {self.spec.name}'s body limit"
                    errors.append(PlanFailure(self.spec.name, frozenset(by_value[value]), message))
                    continue
                sizes.append(size)
            kept.append(value)
        return kept, sizes


def _covering(ordered: list[str], location: str, *, exclude: str | None) -> str | None:
    """The shortest prefix in sorted `ordered` covering `location` (other than `exclude` itself)."""
    for candidate in _ancestors(location):
        if candidate != exclude and _bisect_contains(ordered, candidate):
            return candidate
    return None


def _ancestors(location: str) -> Iterable[str]:
    """Every prefix spelling that could cover `location`, shortest first: `/a/b` -> `/`, `/a`, `/a/`, `/a/b`
    (`host/a` -> `host`, `host/`, `host/a`); a prefix equal to the location covers it too."""
    position = location.find("/")
    while position >= 0:
        if position:
            yield location[:position]
        yield location[: position + 1]
        position = location.find("/", position + 1)
    yield location


def _bisect_contains(ordered: list[str], value: str) -> bool:
    index = bisect_left(ordered, value)
    return index < len(ordered) and ordered[index] == value


# --------------------------------------------------------------------------------------------------
# the planner
# --------------------------------------------------------------------------------------------------


def plan(routed: Iterable[RoutedTarget], providers: Mapping[str, ProviderSpec]) -> Plan:
    lanes = {name: _Lane(spec) for name, spec in sorted(providers.items())}
    destinations = router(providers)
    # One pass to bucket the input by where it goes and how, then a tight loop per bucket and provider.
    buckets: dict[tuple[frozenset[str] | None, TargetKind, bool | None], list[RoutedTarget]] = defaultdict(list)
    for item in routed:
        buckets[(item.providers, item.target.kind, item.soft)].append(item)
    for (names, kind, soft_wish), items in buckets.items():
        for name in destinations(names, kind):
            lanes[name].add(kind, soft_wish, items)

    requests: list[PurgeRequest] = []
    errors: list[PlanFailure] = []
    escalations: list[Escalation] = []
    for name, lane in lanes.items():
        errors.extend(PlanFailure(name, frozenset(ids), message) for message, ids in lane.errors.items())
        lane.subsume()
        escalations.extend(lane.escalate_to_prefixes())
        chunked, unsendable = lane.chunk()
        chunked, unsendable, to_all = lane.escalate_to_all(chunked, unsendable)
        errors.extend(unsendable)
        escalations.extend(to_all)
        requests.extend(chunked)
    return Plan(tuple(requests), tuple(_merge_errors(errors)), tuple(escalations))


def router(providers: Mapping[str, ProviderSpec]) -> Callable[[frozenset[str] | None, TargetKind], tuple[str, ...]]:
    """`destinations(names, kind)`: the providers a target of `kind` goes to, memoised for one batch.

    Of the providers its rule names (default: all), those able to express the kind. In a multi-CDN setup
    a surrogate key is for the CDNs that tag objects, a path for those that purge paths: sending a key to
    CloudFront would be a permanent failure that no retry can fix, while the same change's paths still
    reach it. Only a kind that no candidate can express goes to all of them, so each reports a plan
    error: a target is never dropped silently. The pipeline claims its idempotency records through this
    same function, so what is claimed is exactly what is planned.
    """
    memo: dict[tuple[frozenset[str] | None, TargetKind], tuple[str, ...]] = {}

    def destinations(names: frozenset[str] | None, kind: TargetKind) -> tuple[str, ...]:
        found = memo.get((names, kind))
        if found is None:
            candidates = sorted(providers if names is None else names)
            able = tuple(name for name in candidates if name in providers and can_express(providers[name], kind))
            found = memo[(names, kind)] = able or tuple(candidates)
        return found

    return destinations


def can_express(spec: ProviderSpec, kind: TargetKind) -> bool:
    """Whether `spec` accepts `kind` natively or by a conversion that keeps its meaning."""
    caps = spec.capabilities
    if caps.supports(kind):
        return kind not in caps.host_qualified or bool(spec.hosts)
    if kind is TargetKind.PATH:
        return caps.supports(TargetKind.URL) and bool(spec.hosts)
    return kind is TargetKind.URL and caps.supports(TargetKind.PATH)


def _merge_errors(errors: list[PlanFailure]) -> list[PlanFailure]:
    """One entry per (provider, message), listing every change it affects."""
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for error in errors:
        merged[(error.provider, error.message)].update(error.change_ids)
    return [PlanFailure(provider, frozenset(ids), message) for (provider, message), ids in sorted(merged.items())]
