"""Cost awareness: what a plan bills at providers that charge per target item, and a monthly budget.

CloudFront bills every invalidation path beyond the account's first 1,000 a calendar month ($0.005 each); a
wildcard (`/dir/*`) and a cache tag (`#tag`) count as one path each. A deploy storm purged path by path can
cost orders of magnitude more than the same storm purged by wildcard or tag. This module:

- prices a plan (`billed_paths`: items per billing key, the distribution id, from `ProviderSpec.billing_key`);
- keeps the month's count in the idempotency table, one atomic counter per distribution and one in total
  (`DynamoDBPathCounter`: `UpdateItem ADD` on `cdnpurge#paths#<YYYY-MM>#<distribution>` and `...#total`);
- holds a plan to `monthly_path_budget` (`budgeted_plan`): when the plan would take the month over it, it
  first drops the paths of changes whose rule declares that its keys tag them (`keys_cover`) and that send
  such a tag to the same distribution, then lets the planner's prefix escalation turn every directory of
  two or more paths into one wildcard where that needs no more requests; if the plan still crosses the
  budget it is sent anyway, because stale content costs more than a few cents, and the `PathBill` says so
  (logged and counted as `PathBudgetExceeded` by `observability`).

Economising never drops a target: the economical plan is checked with `cdnpurge.core.plan.coverage`
(every target owed is sent, provably covered by a sent one, or named by a plan error), and whatever it
would leave unserved is planned as it was. A tag covers nothing that is not declared: a publisher's
`keys: [home]` beside `paths: [/news/]` sends `#home` *and* `/news/`.

Planning stays pure: the month so far is read by the caller (the pipeline, or `cdnpurge plan --table`).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from cdnpurge.core.answers import MAX_ANSWER_COUNT, stored_number
from cdnpurge.core.models import Escalation, Plan, PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import can_express, plan, router
from cdnpurge.core.plan.coverage import TAG_COVERABLE, unserved
from cdnpurge.core.spec import ProviderSpec

FREE_PATHS_PER_MONTH = 1000
PRICE_PER_PATH_USD = 0.005
COUNTER_PREFIX = "cdnpurge#paths"
TOTAL = "total"
PATHS = "paths"  # the counter's attribute
# Counters outlive their month by a year (the table's TTL attribute), for looking back at a bill.
COUNTER_KEPT_SECONDS = 400 * 86_400


def month_of(epoch_seconds: float) -> str:
    """The calendar month (UTC, as AWS bills) of a moment: `2026-11`."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m")


def counter_key(month: str, billing_key: str) -> str:
    return f"{COUNTER_PREFIX}#{month}#{billing_key}"


def billed_paths(requests: Iterable[PurgeRequest], specs: Mapping[str, ProviderSpec]) -> dict[str, int]:
    """Billed items per billing key (distribution) that these requests send; providers not billed per item
    are left out."""
    counts: Counter[str] = Counter()
    for request in requests:
        spec = specs.get(request.provider)
        if spec is not None and spec.billing_key is not None:
            counts[spec.billing_key] += len(request.targets)
    return dict(counts)


def charge_usd(month_so_far: int, added: int) -> float:
    """What `added` paths cost on top of `month_so_far` this month, the free 1,000 taken into account."""
    beyond = max(0, month_so_far + added - FREE_PATHS_PER_MONTH) - max(0, month_so_far - FREE_PATHS_PER_MONTH)
    return round(beyond * PRICE_PER_PATH_USD, 3)


class PathBill(msgspec.Struct, frozen=True):
    """What a plan bills this month: its paths per distribution, the month so far (None: not known), the
    budget (None: none), whether the plan was made to economise, and whether it crosses the budget anyway."""

    month: str
    paths: Mapping[str, int]
    month_so_far: int | None = None
    budget: int | None = None
    economised: bool = False

    @property
    def total(self) -> int:
        return sum(self.paths.values())

    @property
    def exceeded(self) -> bool:
        return self.budget is not None and (self.month_so_far or 0) + self.total > self.budget

    def describe(self) -> str:
        so_far = "unknown" if self.month_so_far is None else f"{self.month_so_far:,}"
        charge = charge_usd(self.month_so_far or 0, self.total)
        text = f"{self.total:,} billed path(s) (month {self.month} so far: {so_far}; about ${charge:.2f}"
        text += " beyond the free 1,000)" if self.month_so_far is not None else " if the free 1,000 are used up)"
        if self.budget is not None:
            text += f"; budget {self.budget:,}" + (": EXCEEDED" if self.exceeded else "")
        return text


def budgeted_plan(
    routed: Sequence[RoutedTarget],
    specs: Mapping[str, ProviderSpec],
    *,
    month: str,
    budget: int | None,
    month_so_far: int | None,
    tag_covered: Collection[str] = frozenset(),
) -> tuple[Plan, PathBill]:
    """The plan, and its bill; under a budget the plan would cross, the economical plan (see the module
    docstring) with the escalations that made it so. `tag_covered`: the changes whose keys are declared to
    tag the objects their other targets name (a rule's `keys_cover`)."""
    the_plan = plan(routed, specs)
    bill = PathBill(month, billed_paths(the_plan.requests, specs), month_so_far, budget)
    if not bill.exceeded:
        return the_plan, bill
    tagged, by_tags = _covered_by_tags(routed, specs, tag_covered)
    cheaper = _serving_everything(routed, tagged, specs, tag_covered) or the_plan
    escalations = _tag_escalations(by_tags, the_plan, cheaper) if cheaper is not the_plan else []
    cheaper = msgspec.structs.replace(cheaper, escalations=(*escalations, *cheaper.escalations))
    return cheaper, msgspec.structs.replace(bill, paths=billed_paths(cheaper.requests, specs), economised=True)


def _serving_everything(
    routed: Sequence[RoutedTarget],
    tagged: list[RoutedTarget],
    specs: Mapping[str, ProviderSpec],
    tag_covered: Collection[str],
) -> Plan | None:
    """The economical plan of `tagged`, with whatever of `routed` it would leave unserved added back as it
    was (`cdnpurge.core.plan.coverage`); None if even that leaves something unserved (the caller then sends
    the plan it would have sent without a budget)."""
    cheap_specs = _wildcards_wherever_cheaper(specs)
    destinations = router(specs)
    cheaper = plan(tagged, cheap_specs)
    missing = unserved(routed, cheaper, specs, destinations, tag_covered=tag_covered)
    if not missing:
        return cheaper
    cheaper = plan([*tagged, *missing], cheap_specs)
    return None if unserved(routed, cheaper, specs, destinations, tag_covered=tag_covered) else cheaper


def _covered_by_tags(
    routed: Sequence[RoutedTarget], specs: Mapping[str, ProviderSpec], tag_covered: Collection[str]
) -> tuple[list[RoutedTarget], dict[str, tuple[set[str], int]]]:
    """Drop, at each billed provider, the paths, URLs and prefixes of every change declared tag-covered
    (`tag_covered`) that sends that provider a cache tag; returns the kept targets and, per provider, (the
    tags, the targets dropped)."""
    destinations = router(specs)
    billed = {name for name, spec in specs.items() if spec.billing_key is not None}
    tags_of: dict[tuple[str, str], set[str]] = defaultdict(set)  # (provider, change) -> its tags there
    for item in routed:
        if item.target.kind is TargetKind.KEY and item.change_id in tag_covered:
            for name in billed.intersection(destinations(item.providers, TargetKind.KEY)):
                if _sendable(specs[name], item.target):  # a refused tag covers nothing
                    tags_of[(name, item.change_id)].add(item.target.value.lower())
    if not tags_of:
        return list(routed), {}
    kept: list[RoutedTarget] = []
    dropped: dict[str, tuple[set[str], int]] = {}
    for item in routed:
        if item.target.kind not in TAG_COVERABLE:
            kept.append(item)
            continue
        going = destinations(item.providers, item.target.kind)
        covered = {name for name in going if (name, item.change_id) in tags_of}
        for name in covered:
            tags, count = dropped.get(name, (set(), 0))
            dropped[name] = (tags | tags_of[(name, item.change_id)], count + 1)
        rest = frozenset(going) - covered
        if rest or not going:
            kept.append(item._replace(providers=rest) if covered else item)
    return kept, dropped


def _sendable(spec: ProviderSpec, target: Target) -> bool:
    """Whether the provider can express and render `target` (a tag it refuses is a plan error instead)."""
    if not can_express(spec, target.kind):
        return False
    try:
        spec.render(target)
    except ValueError:
        return False
    return True


def _wildcards_wherever_cheaper(specs: Mapping[str, ProviderSpec]) -> dict[str, ProviderSpec]:
    """Billed providers able to purge prefixes escalate every directory of 2+ paths to a wildcard where the
    planner finds that needs no more requests (the existing prefix escalation, at its lowest threshold)."""
    return {
        name: replace(spec, escalation=replace(spec.escalation, prefix_at=2))
        if spec.billing_key is not None and spec.capabilities.supports(TargetKind.PREFIX)
        else spec
        for name, spec in specs.items()
    }


def _tag_escalations(dropped: Mapping[str, tuple[set[str], int]], before: Plan, after: Plan) -> list[Escalation]:
    """One `Escalation` per provider whose paths its changes' cache tags now cover (logged and counted)."""

    def requests(the_plan: Plan, provider: str) -> int:
        return sum(1 for request in the_plan.requests if request.provider == provider)

    return [
        Escalation(
            provider=name,
            kind=TargetKind.KEY,
            targets=tuple(sorted(tags)),
            replaced=count,
            requests_before=requests(before, name),
            requests_after=requests(after, name),
        )
        for name, (tags, count) in sorted(dropped.items())
    ]


class PathCounter(Protocol):
    """The month's billed paths, per billing key and in total."""

    def add(self, month: str, paths: Mapping[str, int]) -> None: ...

    def month_so_far(self, month: str) -> int: ...


class DynamoDBPathCounter:
    """Atomic monthly counters in the idempotency table (key attribute `id`, TTL attribute `expiration`).

    `UpdateItem ADD` is atomic, so concurrent invocations never lose a count; one call per distribution
    and one for the total, per batch. Read with a consistent `GetItem` of the total.
    """

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def add(self, month: str, paths: Mapping[str, int]) -> None:
        counts = {key: count for key, count in paths.items() if count}
        if not counts:
            return
        expires = str(int(self._clock()) + COUNTER_KEPT_SECONDS)
        for key, count in {**counts, TOTAL: sum(counts.values())}.items():
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": counter_key(month, key)}},
                UpdateExpression="ADD #paths :count SET #expiration = if_not_exists(#expiration, :expires)",
                ExpressionAttributeNames={"#paths": PATHS, "#expiration": "expiration"},
                ExpressionAttributeValues={":count": {"N": str(count)}, ":expires": {"N": expires}},
            )

    def month_so_far(self, month: str) -> int:
        return self.count(month, TOTAL)

    def count(self, month: str, billing_key: str) -> int:
        item = self._client.get_item(
            TableName=self._table, Key={"id": {"S": counter_key(month, billing_key)}}, ConsistentRead=True
        ).get("Item")
        return int(stored_number(item, PATHS, low=0, high=MAX_ANSWER_COUNT) or 0) if item else 0
