"""Escalation and dedupe across a batch: prefixes and purge-all only where configured and cheaper, each
recorded in `Plan.escalations`; planned prefixes and purge-alls serve what lies beneath them."""

from __future__ import annotations

from functools import partial

import pytest
from helpers import config_from

from cdnpurge.core.config import ConfigError
from cdnpurge.core.models import Escalation, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.registry import specs
from cdnpurge.core.spec import Capabilities, EscalationPolicy, ProviderSpec
from cdnpurge.runtime.providers.http import HttpProvider


def spec(
    max_targets: dict[TargetKind, int],
    *,
    prefix_at: int | None = None,
    purge_all_over: int | None = None,
    host_qualified: bool = False,
    hosts: tuple[str, ...] = ("www.example.com",),
    soft_purge: bool = False,
    hard_only: frozenset[TargetKind] = frozenset(),
) -> dict[str, ProviderSpec]:
    capabilities = Capabilities(
        max_targets=max_targets,
        soft_purge=soft_purge,
        hard_only=hard_only,
        host_qualified=frozenset({TargetKind.PREFIX}) if host_qualified else frozenset(),
    )
    render = partial(HttpProvider.render, None)  # type: ignore[arg-type]
    return {"cdn": ProviderSpec("cdn", capabilities, hosts, False, render, EscalationPolicy(prefix_at, purge_all_over))}


MEDIANOVA_LIKE = {TargetKind.PATH: 100, TargetKind.PREFIX: 100}


def routed(kind: TargetKind, values: list[str], change: str = "c1", soft: bool | None = None) -> list[RoutedTarget]:
    return [RoutedTarget(change, Target(kind, value), None, soft) for value in values]


def test_many_paths_in_one_directory_become_one_prefix_when_that_saves_requests() -> None:
    # Given: 250 images and 10 pages; without escalation ceil(260 / 100) = 3 calls
    items = routed(TargetKind.PATH, [f"/img/{i:03d}.jpg" for i in range(250)], "c1")
    items += routed(TargetKind.PATH, [f"/p{i}.html" for i in range(10)], "c2")
    # When
    result = plan(items, spec(MEDIANOVA_LIKE, prefix_at=10))
    # Then: one prefix call and one path call, serving both changes; the escalation is recorded
    assert [(r.kind, len(r.targets)) for r in result.requests] == [(TargetKind.PATH, 10), (TargetKind.PREFIX, 1)]
    prefix = result.requests[1]
    assert prefix.targets == ("/img/",) and prefix.change_ids == {"c1"}
    assert result.escalations == (
        Escalation("cdn", TargetKind.PREFIX, ("/img/",), replaced=250, requests_before=3, requests_after=2),
    )
    assert result.escalations[0].describe() == "cdn: 250 targets -> 1 prefix (3 -> 2 requests)"


def test_no_escalation_when_it_would_not_save_a_request() -> None:
    # Given: 50 images and 40 pages fit one call of 90 paths; a prefix would make it two
    items = routed(TargetKind.PATH, [f"/img/{i}.jpg" for i in range(50)] + [f"/p{i}" for i in range(40)])
    # When
    result = plan(items, spec(MEDIANOVA_LIKE, prefix_at=10))
    # Then
    assert [r.kind for r in result.requests] == [TargetKind.PATH] and not result.escalations


def test_no_escalation_below_the_threshold_or_when_not_configured() -> None:
    items = routed(TargetKind.PATH, [f"/img/{i}.jpg" for i in range(9)])
    one_per_call = {TargetKind.PATH: 1, TargetKind.PREFIX: 1}
    assert len(plan(items, spec(one_per_call, prefix_at=10)).requests) == 9
    assert len(plan(items, spec(one_per_call)).requests) == 9
    assert len(plan(items, spec(one_per_call, prefix_at=9)).requests) == 1


def test_the_largest_directories_are_collapsed_first_and_only_as_many_as_pay() -> None:
    # Given: one target per call (F5 XC-like); three directories of 5, 4 and 2 files
    items = routed(TargetKind.PATH, [f"/a/{i}" for i in range(5)] + [f"/b/{i}" for i in range(4)] + ["/c/1", "/c/2"])
    # When
    result = plan(items, spec({TargetKind.PATH: 1, TargetKind.PREFIX: 1}, prefix_at=3))
    # Then: /a/ and /b/ collapse (2 requests instead of 9); /c/ is under the threshold
    assert sorted(r.targets[0] for r in result.requests) == ["/a/", "/b/", "/c/1", "/c/2"]
    assert result.escalations[0].targets == ("/a/", "/b/") and result.escalations[0].replaced == 9


def test_files_at_the_root_never_escalate_to_the_whole_site() -> None:
    items = routed(TargetKind.PATH, [f"/{i}.html" for i in range(20)])
    result = plan(items, spec({TargetKind.PATH: 1, TargetKind.PREFIX: 1}, prefix_at=2))
    assert len(result.requests) == 20 and not result.escalations


def test_urls_escalate_to_host_qualified_prefixes_per_host() -> None:
    # Given: a Cloudflare-like provider (URLs, prefixes as host/path), URLs on two hosts
    urls = [f"https://{host}/img/{i}.png" for host in ("www.example.com", "m.example.com") for i in range(40)]
    capabilities = {TargetKind.URL: 30, TargetKind.PREFIX: 30}
    # When
    result = plan(routed(TargetKind.URL, urls), spec(capabilities, prefix_at=20, host_qualified=True))
    # Then
    assert [(r.kind, r.targets) for r in result.requests] == [
        (TargetKind.PREFIX, ("m.example.com/img/", "www.example.com/img/"))
    ]


def test_over_the_budget_the_provider_gets_one_purge_all_hard_when_it_cannot_be_soft() -> None:
    # Given: Fastly-like (one URL per call, purge_all always hard) with a budget of 5 requests
    fastly_like = {TargetKind.URL: 1, TargetKind.KEY: 256, TargetKind.ALL: 1}
    items = routed(TargetKind.URL, [f"https://www.example.com/{i}" for i in range(6)], "c1", soft=True)
    items += routed(TargetKind.KEY, ["k"], "c2")
    cdn = spec(fastly_like, purge_all_over=5, soft_purge=True, hard_only=frozenset({TargetKind.ALL}))
    # When
    result = plan(items, cdn)
    # Then
    (request,) = result.requests
    assert (request.kind, request.targets, request.soft, request.change_ids) == (
        TargetKind.ALL,
        ("*",),
        False,
        frozenset({"c1", "c2"}),
    )
    assert result.escalations == (Escalation("cdn", TargetKind.ALL, ("*",), 7, 7, 1),)
    # At the budget: no escalation
    assert len(plan(items[2:], cdn).requests) == 5


def test_a_planned_prefix_serves_the_paths_under_it_and_respects_segment_boundaries() -> None:
    items = routed(TargetKind.PREFIX, ["/img"], "c1") + routed(TargetKind.PATH, ["/img/a.jpg", "/imgs/b.jpg"], "c2")
    result = plan(items, spec(MEDIANOVA_LIKE))
    assert [(r.kind, r.targets, r.change_ids) for r in result.requests] == [
        (TargetKind.PATH, ("/imgs/b.jpg",), frozenset({"c2"})),
        (TargetKind.PREFIX, ("/img",), frozenset({"c1", "c2"})),
    ]
    assert not result.escalations  # dedupe, not escalation: nothing more is purged than was asked


def test_nested_prefixes_and_a_purge_all_collapse() -> None:
    items = routed(TargetKind.PREFIX, ["/a/", "/a/b/"], "c1") + routed(TargetKind.PATH, ["/a/b/c"], "c2")
    assert [r.targets for r in plan(items, spec(MEDIANOVA_LIKE)).requests] == [("/a/",)]
    with_all = items + routed(TargetKind.ALL, ["*"], "c3")
    result = plan(with_all, spec({**MEDIANOVA_LIKE, TargetKind.ALL: 1}))
    assert [(r.kind, r.change_ids) for r in result.requests] == [(TargetKind.ALL, frozenset({"c1", "c2", "c3"}))]


def test_a_value_wanted_soft_and_hard_is_purged_once_hard() -> None:
    items = routed(TargetKind.KEY, ["k1", "k2"], "c1", soft=True) + routed(TargetKind.KEY, ["k1"], "c2", soft=False)
    result = plan(items, spec({TargetKind.KEY: 10}, soft_purge=True))
    assert [(r.targets, r.soft, r.change_ids) for r in result.requests] == [
        (("k1",), False, frozenset({"c1", "c2"})),
        (("k2",), True, frozenset({"c1"})),
    ]


def test_escalation_settings_are_validated_against_the_provider() -> None:
    # Given / When / Then: Fastly cannot purge by prefix; Medianova cannot purge everything
    with pytest.raises(ConfigError, match="prefix_escalation_at: this provider cannot purge by prefix"):
        config_from(
            "providers: [{name: f, kind: fastly, service_id: S1, prefix_escalation_at: 10, "
            "credentials: {token: {env: T}}}]"
        )
    with pytest.raises(ConfigError, match="purge_all_over: this provider cannot purge everything"):
        config_from(
            "providers: [{name: m, kind: medianova, organization_uuid: o, resource_uuid: r, purge_all_over: 5, "
            "credentials: {token: {env: T}}}]"
        )
    with pytest.raises(ConfigError, match=r"providers\[0\]\.prefix_escalation_at: Expected `int` >= 2"):
        config_from(
            "providers: [{name: m, kind: medianova, organization_uuid: o, resource_uuid: r, "
            "prefix_escalation_at: 1, credentials: {token: {env: T}}}]"
        )


def test_configured_escalations_reach_the_planner() -> None:
    config = config_from(
        """
        providers:
          - {name: cf, kind: cloudfront, distribution_id: E1, prefix_escalation_at: 50, purge_all_over: 20}
          - {name: f, kind: fastly, service_id: S1, purge_all_over: 100, credentials: {token: {env: T}}}
        """
    )
    assert specs(config.providers)["cf"].escalation == EscalationPolicy(prefix_at=50, purge_all_over=20)
    assert specs(config.providers)["f"].escalation == EscalationPolicy(prefix_at=None, purge_all_over=100)
