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

Modules: `convert` (step 1, and `can_express`), `lanes` (steps 2-4, one provider's share), `packing`
(step 5). This module routes and assembles the `Plan`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from cdnpurge.core.models import Escalation, Plan, PlanFailure, PurgeRequest, RoutedTarget, TargetKind
from cdnpurge.core.plan.convert import can_express, convert
from cdnpurge.core.plan.lanes import Lane
from cdnpurge.core.plan.packing import EXACT_SEARCH_MAX_ITEMS, lower_bound, pack
from cdnpurge.core.spec import ProviderSpec

__all__ = ["EXACT_SEARCH_MAX_ITEMS", "UNROUTED", "can_express", "convert", "lower_bound", "pack", "plan", "router"]

# The `provider` of a plan error for a target no provider receives (none is to blame, the routing is).
UNROUTED = "(routing)"


def plan(routed: Iterable[RoutedTarget], providers: Mapping[str, ProviderSpec]) -> Plan:
    lanes = {name: Lane(spec) for name, spec in sorted(providers.items())}
    destinations = router(providers)
    # One pass to bucket the input by where it goes and how, then a tight loop per bucket and provider.
    buckets: dict[tuple[frozenset[str] | None, TargetKind, bool | None], list[RoutedTarget]] = defaultdict(list)
    for item in routed:
        buckets[(item.providers, item.target.kind, item.soft)].append(item)
    requests: list[PurgeRequest] = []
    errors: list[PlanFailure] = []
    for (names, kind, soft_wish), items in buckets.items():
        found = destinations(names, kind)
        if not found:
            errors.append(PlanFailure(UNROUTED, frozenset(item.change_id for item in items), unrouted(kind)))
        for name in found:
            lanes[name].add(kind, soft_wish, items)

    escalations: list[Escalation] = []
    for name, lane in lanes.items():
        errors.extend(
            PlanFailure(name, frozenset(ids), message, message in lane.unexpected)
            for message, ids in lane.errors.items()
        )
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

    Of the providers its rule names (default: all), those the configuration lets receive the kind (their
    `purge_by`, default every kind) and able to express it. In a multi-CDN setup a surrogate key is for the
    CDNs that tag objects, a path for those that purge paths: sending a key to a CloudFront distribution
    without cache tags would be a permanent failure that no retry can fix, while the same change's paths
    still reach it. A kind that no receiving candidate can express goes to all the receiving ones, so each
    reports a plan error; a kind that none receives goes nowhere, and `plan` reports it: a target is never
    dropped silently, nor sent where the configuration excluded its kind. The pipeline claims its
    idempotency records through this same function, so what is claimed is exactly what is planned.
    """
    memo: dict[tuple[frozenset[str] | None, TargetKind], tuple[str, ...]] = {}

    def destinations(names: frozenset[str] | None, kind: TargetKind) -> tuple[str, ...]:
        found = memo.get((names, kind))
        if found is None:
            candidates = sorted(providers if names is None else names)
            receiving = tuple(name for name in candidates if name in providers and providers[name].receives(kind))
            able = tuple(name for name in receiving if can_express(providers[name], kind))
            found = memo[(names, kind)] = able or receiving
        return found

    return destinations


def unrouted(kind: TargetKind) -> str:
    """Why a target went to no provider: every one it is for excludes its kind (`purge_by`)."""
    return f"no provider this {kind.value} target is for receives {kind.value} targets (see their `purge_by`)"


def _merge_errors(errors: list[PlanFailure]) -> list[PlanFailure]:
    """One entry per (provider, message), listing every change it affects."""
    merged: dict[tuple[str, str, bool], set[str]] = defaultdict(set)
    for error in errors:
        merged[(error.provider, error.message, error.unexpected)].update(error.change_ids)
    return [
        PlanFailure(provider, frozenset(ids), message, surprise)
        for (provider, message, surprise), ids in sorted(merged.items())
    ]
