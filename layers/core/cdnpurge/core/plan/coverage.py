"""What a plan provably purges: the check that lets an economy (a budget, an escalation) drop nothing.

A target owed to a provider is *served* by a plan when a request at that provider, serving the target's
change, in the same mode or a harder one, purges it provably:

- the same target, in the form the provider receives it (`convert`);
- a prefix covering it at a whole path segment (the planner's own escalation and subsumption);
- a purge-all;
- a cache tag of the same change, only where the configuration declares that the change's keys tag the
  objects its other targets name (a rule's `keys_cover`): nothing here can see which objects an origin
  tags, so a tag proves nothing by itself (a publisher's `keys: [home]` beside `paths: [/news/]` does not
  cover `/news/`).

A target named by a plan error for its change at that provider is not served but not dropped either: it
fails its records and is retried or dead-lettered. `unserved` returns every other one, which is what an
economising step must add back as it was (`cdnpurge.core.cost.budgeted_plan` does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping

from cdnpurge.core.models import Plan, PurgeRequest, RoutedTarget, TargetKind
from cdnpurge.core.plan.convert import Converted, converter_for
from cdnpurge.core.plan.lanes import covering_prefixes, target_location
from cdnpurge.core.spec import ProviderSpec

# Kinds a declared cache tag of the same change may stand in for.
TAG_COVERABLE = frozenset({TargetKind.PATH, TargetKind.URL, TargetKind.PREFIX})

# (soft, change ids) of each request purging something
_Served = list[tuple[bool, frozenset[str]]]


class _ProviderCoverage:
    """One provider's requests, indexed by what they purge."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.exact: dict[tuple[TargetKind, str], _Served] = defaultdict(list)
        self.prefixes: dict[str, _Served] = defaultdict(list)
        self.everything: _Served = []
        self.tagged: set[str] = set()  # changes a cache-tag request serves
        self._converters: dict[TargetKind, Callable[[str], Converted | str]] = {}
        self._host_qualified = TargetKind.PREFIX in spec.capabilities.host_qualified

    def add(self, request: PurgeRequest) -> None:
        served = (request.soft, request.change_ids)
        if request.kind is TargetKind.ALL:
            self.everything.append(served)
            return
        if request.kind is TargetKind.KEY:
            self.tagged |= request.change_ids
        for value in request.targets:
            self.exact[(request.kind, value)].append(served)
            if request.kind is TargetKind.PREFIX:
                self.prefixes[value].append(served)

    def serves(self, item: RoutedTarget, tag_covered: Collection[str]) -> bool:
        """Whether every form of `item`'s target at this provider is purged for its change."""
        change = item.change_id
        if change in tag_covered and change in self.tagged and item.target.kind in TAG_COVERABLE:
            return True
        converter = self._converters.get(item.target.kind)
        if converter is None:
            converter = self._converters[item.target.kind] = converter_for(self.spec, item.target.kind)
        converted = converter(item.target.value)
        if isinstance(converted, str):
            return False  # the planner names it in a plan error, or it is not served
        return all(self._serves_form(kind, value, item) for kind, value in converted)

    def _serves_form(self, kind: TargetKind, value: str, item: RoutedTarget) -> bool:
        caps = self.spec.capabilities
        wish = self.spec.default_soft if item.soft is None else item.soft
        soft = bool(wish and caps.soft_purge and kind not in caps.hard_only)

        def any_serving(served: Iterable[tuple[bool, frozenset[str]]]) -> bool:
            return any(item.change_id in ids and (not request_soft or soft) for request_soft, ids in served)

        if any_serving(self.everything) or any_serving(self.exact.get((kind, value), ())):
            return True
        if kind not in TAG_COVERABLE or not self.prefixes:
            return False
        where = target_location(kind, value, self._host_qualified)
        return any(any_serving(self.prefixes.get(prefix, ())) for prefix in covering_prefixes(where))


def unserved(
    routed: Iterable[RoutedTarget],
    the_plan: Plan,
    specs: Mapping[str, ProviderSpec],
    destinations: Callable[[frozenset[str] | None, TargetKind], tuple[str, ...]],
    *,
    tag_covered: Collection[str] = frozenset(),
) -> list[RoutedTarget]:
    """Each routed target (restricted to the providers concerned) that `the_plan` neither serves nor names
    in a plan error for its change; `destinations` is the planner's router (`cdnpurge.core.plan.router`)
    and `tag_covered` the changes whose keys are declared to tag their other targets."""
    coverage = {name: _ProviderCoverage(spec) for name, spec in specs.items()}
    for request in the_plan.requests:
        if request.provider in coverage:
            coverage[request.provider].add(request)
    failed = {(error.provider, change) for error in the_plan.errors for change in error.change_ids}
    failed_anywhere = {change for error in the_plan.errors for change in error.change_ids}
    missing: list[RoutedTarget] = []
    for item in routed:
        going = destinations(item.providers, item.target.kind)
        if not going:
            if item.change_id not in failed_anywhere:
                missing.append(item)
            continue
        left = frozenset(
            name
            for name in going
            if (name, item.change_id) not in failed and not coverage[name].serves(item, tag_covered)
        )
        if left:
            missing.append(item._replace(providers=left))
    return missing
