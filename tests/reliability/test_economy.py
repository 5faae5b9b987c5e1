"""Economising never drops: a budget or an escalation replaces targets only with targets that provably cover
them (`cdnpurge.core.plan.coverage`), the rest are purged as they are.

- property: over random mixes of targets, providers (some billed per item) and declarations (`keys_cover`),
  with the month's budget already spent, every target owed is sent, covered by a sent prefix, purge-all or
  declared cache tag of its change at the same provider, or named by a plan error (the oracle is the
  planner's own property check, written independently of `coverage`);
- fault: an economising step that drops targets (a tag standing in for paths it does not cover) is caught
  by the check, and its targets are purged as they were.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from reliability import tally
from unit.test_plan_properties import (
    check_every_target_is_covered_by_a_request_for_its_change_or_named_by_an_error,
    provider_specs,
    routed_targets,
)

from cdnpurge.core import cost
from cdnpurge.core.config import parse_config
from cdnpurge.core.cost import budgeted_plan
from cdnpurge.core.models import RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan, router
from cdnpurge.core.plan.coverage import unserved
from cdnpurge.core.registry import specs as specs_of
from cdnpurge.core.spec import ProviderSpec

CHANGES = [f"c{number}" for number in range(7)]


@st.composite
def billed_specs(draw: st.DrawFn) -> dict[str, ProviderSpec]:
    """Generated providers, some of them billed per item (as CloudFront), so the budget economises there."""
    specs = draw(provider_specs())
    return {name: replace(spec, billing_key=name) if draw(st.booleans()) else spec for name, spec in specs.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_targets(), billed_specs(), st.frozensets(st.sampled_from(CHANGES)))
def test_an_economised_plan_serves_every_target_it_was_given(
    items: list[RoutedTarget], specs: dict[str, ProviderSpec], tag_covered: frozenset[str]
) -> None:
    # Given a month whose budget is spent, and changes some of which declare their keys cover their paths
    # When the plan is economised
    the_plan, _ = budgeted_plan(items, specs, month="2026-11", budget=0, month_so_far=0, tag_covered=tag_covered)
    # Then every target is sent, provably covered, or named by a plan error
    check_every_target_is_covered_by_a_request_for_its_change_or_named_by_an_error(items, specs, the_plan, tag_covered)
    assert unserved(items, the_plan, specs, router(specs), tag_covered=tag_covered) == []
    tally.hostile("coverage")


def test_an_economy_that_drops_targets_is_caught_and_they_are_purged_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an economising step gone wrong: it drops every path in favour of any tag of the change
    specs = {"cf": _cloudfront_spec()}
    items = [
        RoutedTarget("pub:1", Target(TargetKind.KEY, "home"), None, None),
        RoutedTarget("pub:1", Target(TargetKind.PATH, "/news/"), None, None),
        RoutedTarget("pub:1", Target(TargetKind.PATH, "/feed.xml"), None, None),
    ]

    def dropping(routed: list[RoutedTarget], *_: object) -> tuple[list[RoutedTarget], dict[str, object]]:
        return [item for item in routed if item.target.kind is TargetKind.KEY], {}

    monkeypatch.setattr(cost, "_covered_by_tags", dropping)
    # When the plan is economised
    the_plan, _ = budgeted_plan(items, specs, month="2026-11", budget=0, month_so_far=0)
    # Then the dropped paths are found unserved and purged all the same
    sent = {(request.kind, value) for request in the_plan.requests for value in request.targets}
    assert sent == {(TargetKind.KEY, "home"), (TargetKind.PATH, "/news/"), (TargetKind.PATH, "/feed.xml")}
    missing = unserved(items, plan(items[:1], specs), specs, router(specs))
    assert [(item.target, item.providers) for item in missing] == [
        (item.target, frozenset({"cf"})) for item in items[1:]
    ]
    tally.hostile("coverage", 2)


def _cloudfront_spec() -> ProviderSpec:
    config = parse_config("providers: [{name: cf, kind: cloudfront, distribution_id: E1, cache_tags: true}]\n")
    return specs_of(config.providers)["cf"]
