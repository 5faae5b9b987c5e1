"""One provider's share of a batch (steps 2-4 of `cdnpurge.core.plan`): soft/hard, dedupe and subsumption under
planned prefixes and purge-alls, escalation, and chunking into requests (through `packing`).

A `Lane` holds everything one provider is owed, grouped by (kind, soft) -> value -> change ids, so the
planner's hot loop is a dict update per target.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import msgspec

from cdnpurge.core.boundary import unexpected
from cdnpurge.core.models import Escalation, PlanFailure, PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan.convert import Converted, converter_for
from cdnpurge.core.plan.packing import Limits, limits_for, pack, wire_cost
from cdnpurge.core.spec import ProviderSpec

# `Target` and `PurgeRequest` built in C where one is built per target: their generated `__new__` (a Python
# call filling keyword defaults) costs about twice as much (measured with bench/planner.py's storms).
_new_tuple = tuple.__new__
# Kinds escalation may collapse into a prefix.
COLLAPSIBLE = (TargetKind.PATH, TargetKind.URL)
Group = tuple[TargetKind, bool]  # (kind, soft)


def target_location(kind: TargetKind, value: str, host_qualified: bool) -> str:
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


class Lane(msgspec.Struct):
    """Everything one provider is owed by the batch, grouped by (kind, soft) -> value -> change ids."""

    spec: ProviderSpec
    groups: dict[Group, dict[str, frozenset[str]]] = msgspec.field(default_factory=lambda: defaultdict(dict))
    converters: dict[TargetKind, Callable[[str], Converted | str]] = msgspec.field(default_factory=dict)
    errors: dict[str, set[str]] = msgspec.field(default_factory=lambda: defaultdict(set))
    unexpected: set[str] = msgspec.field(default_factory=set)  # the messages of `errors` the boundary wrote

    def add(self, kind: TargetKind, soft_wish: bool | None, items: list[RoutedTarget]) -> None:
        """Add routed targets of one input kind and soft wish (the hot loop of the planner)."""
        caps = self.spec.capabilities
        wish = self.spec.default_soft if soft_wish is None else soft_wish
        groups = self.groups

        def group_for(target_kind: TargetKind) -> dict[str, frozenset[str]]:
            return groups[(target_kind, wish and caps.soft_purge and target_kind not in caps.hard_only)]

        # Each value's change ids are a frozenset from the start, shared by a change's consecutive targets: the
        # request takes it as it is (a set copied into a frozenset per request was two objects a target).
        last, only = None, frozenset[str]()
        if caps.supports(kind) and kind not in caps.host_qualified and kind not in caps.case_insensitive:  # as is
            group = group_for(kind)
            for item in items:
                value, change_id = item.target.value, item.change_id
                if change_id != last:
                    last, only = change_id, frozenset((change_id,))
                ids = group.get(value)
                group[value] = only if ids is None else ids | only
            return
        if kind is TargetKind.PATH and not caps.supports(kind) and caps.supports(TargetKind.URL) and self.spec.hosts:
            group = group_for(TargetKind.URL)  # path -> one URL per host, inline: the second most common case
            for host in self.spec.hosts:
                base = f"https://{host}"
                for item in items:
                    url, change_id = base + item.target.value, item.change_id
                    if change_id != last:
                        last, only = change_id, frozenset((change_id,))
                    ids = group.get(url)
                    group[url] = only if ids is None else ids | only
            return
        converter = self.converters.get(kind)
        if converter is None:
            converter = self.converters[kind] = converter_for(self.spec, kind)
        for item in items:
            change_id = item.change_id
            try:
                converted = converter(item.target.value)
            except Exception as exc:  # a fault boundary per target (`cdnpurge.core.boundary`)
                converted = unexpected(exc, f"converting {item.target.kind.value} {item.target.value[:80]!r}")
                self.unexpected.add(converted)
            if isinstance(converted, str):
                self.errors[converted].add(change_id)
                continue
            if change_id != last:
                last, only = change_id, frozenset((change_id,))
            for target_kind, target_value in converted:
                group = group_for(target_kind)
                ids = group.get(target_value)
                group[target_value] = only if ids is None else ids | only

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
            for (kind, other_soft), values in groups.items():
                if (kind, other_soft) != (TargetKind.ALL, soft) and (other_soft or not soft):
                    for served in values.values():
                        ids |= served
                    values.clear()
            everything.clear()
            everything[value] = frozenset(ids)
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
                if kind not in (*COLLAPSIBLE, TargetKind.PREFIX) or (soft is False and prefix_soft):
                    continue
                for value in list(values):
                    location = target_location(kind, value, host_qualified)
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
            if kind not in COLLAPSIBLE or not values:
                continue  # (a group an earlier escalation emptied included)
            if host_qualified and kind is TargetKind.PATH:
                continue  # its prefixes would need a host per configured host: not worth the complexity
            by_directory: dict[str, list[str]] = defaultdict(list)
            for value in values:
                directory = _directory(target_location(kind, value, host_qualified))
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
                prefixes[directory] = prefixes.get(directory, frozenset()).union(*map(values.pop, members))
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
        adding the same k prefixes. Requests are priced with the lower bound (exact without byte limits),
        counting only what `chunk` would send (`Limits.cost`): a target the provider cannot send costs no
        request now, so collapsing it saves none, and a prefix it cannot send is no candidate at all (its
        changes would fail instead of being purged).
        """
        members = self.groups[(kind, soft)]
        prefixes = self.groups.get((TargetKind.PREFIX, prefix_soft), {})
        target_limits, prefix_limits = limits_for(self.spec, kind), limits_for(self.spec, TargetKind.PREFIX)
        sizes = {value: size for value in members if (size := target_limits.cost(value)) is not None}
        remaining_count, remaining_bytes = len(sizes), sum(sizes.values())
        prefix_sizes = [size for size in map(prefix_limits.cost, prefixes) if size is not None]
        prefix_count, prefix_bytes = len(prefix_sizes), sum(prefix_sizes)
        sendable = [
            (directory, group, size)
            for directory, group in candidates
            if (size := prefix_limits.cost(directory)) is not None
        ]

        def requests(count: int, size: int, limits: Limits) -> int:
            if count == 0:
                return 0
            by_count = -(-count // limits.count)
            return by_count if limits.budget is None else max(by_count, -(-size // limits.budget))

        def cost(count: int, size: int, prefix_total: int, prefix_size: int) -> tuple[int, int]:
            total = requests(count, size, target_limits) + requests(prefix_total, prefix_size, prefix_limits)
            return total, count + prefix_total

        best_k, best = 0, cost(remaining_count, remaining_bytes, prefix_count, prefix_bytes)
        for k, (_directory, group, prefix_size) in enumerate(sendable, start=1):
            collapsed = [sizes[value] for value in group if value in sizes]
            remaining_count -= len(collapsed)
            remaining_bytes -= sum(collapsed)
            prefix_count += 1
            prefix_bytes += prefix_size
            candidate = cost(remaining_count, remaining_bytes, prefix_count, prefix_bytes)
            if candidate < best:
                best_k, best = k, candidate
        return [(directory, group) for directory, group, _ in sendable[:best_k]]

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
        """Requests the groups need as they stand (exact: what `chunk` sends, packed the same way)."""
        total = 0
        for (kind, _soft), values in self.groups.items():
            limits = limits_for(self.spec, kind)
            sizes = [size for size in map(limits.cost, values) if size is not None]
            total += len(pack(sizes, limits.count, limits.budget))
        return total

    def chunk(self) -> tuple[list[PurgeRequest], list[PlanFailure]]:
        requests: list[PurgeRequest] = []
        errors: list[PlanFailure] = []
        name = self.spec.name
        for kind, soft in sorted(self.groups, key=lambda group: (group[0].value, group[1])):
            by_value = self.groups[(kind, soft)]
            limits = limits_for(self.spec, kind)
            values: list[str] = sorted(by_value)
            if limits.render is not None or limits.budget is not None:  # something to check or to size
                values, sizes = self._measured(by_value, values, limits, errors)
            if limits.count == 1 and limits.budget is None:  # one target per call: the hot case at scale
                requests += [_new_tuple(PurgeRequest, (name, kind, (v,), soft, by_value[v])) for v in values]
                continue
            if limits.budget is None:
                chunks = [values[start : start + limits.count] for start in range(0, len(values), limits.count)]
            else:
                chunks = [[values[i] for i in chunk] for chunk in pack(sizes, limits.count, limits.budget)]
            for chunk in chunks:
                ids = by_value[chunk[0]] if len(chunk) == 1 else frozenset().union(*map(by_value.__getitem__, chunk))
                requests.append(PurgeRequest(name, kind, tuple(chunk), soft, ids))
        return requests, errors

    def _measured(
        self, by_value: dict[str, frozenset[str]], values: list[str], limits: Limits, errors: list[PlanFailure]
    ) -> tuple[list[str], list[int]]:
        """The values the provider can express and send, and their sizes (under a byte budget only); the
        others become plan errors. Renders inline, not through `Limits.size`: this runs once per target."""
        kind, render, budget = limits.kind, limits.render, limits.budget
        kept: list[str] = []
        sizes: list[int] = []
        for value in values:
            try:
                wire = value if render is None else render(_new_tuple(Target, (kind, value)))
            except ValueError as exc:  # the provider cannot express it: an error for its changes only
                errors.append(PlanFailure(self.spec.name, by_value[value], str(exc)))
                continue
            except Exception as exc:  # a fault boundary per target (`cdnpurge.core.boundary`)
                why = unexpected(exc, f"rendering {kind.value} {value[:80]!r}")
                errors.append(PlanFailure(self.spec.name, by_value[value], why, unexpected=True))
                continue
            if budget is not None:
                size = wire_cost(wire)
                if size > budget:
                    message = f"{kind.value}:{value[:80]} alone exceeds {self.spec.name}'s body limit"
                    errors.append(PlanFailure(self.spec.name, by_value[value], message))
                    continue
                sizes.append(size)
            kept.append(value)
        return kept, sizes


def _covering(ordered: list[str], location: str, *, exclude: str | None) -> str | None:
    """The shortest prefix in sorted `ordered` covering `location` (other than `exclude` itself)."""
    for candidate in covering_prefixes(location):
        if candidate != exclude and _bisect_contains(ordered, candidate):
            return candidate
    return None


def covering_prefixes(location: str) -> Iterable[str]:
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
