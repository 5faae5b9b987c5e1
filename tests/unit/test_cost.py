"""Cost awareness (`cdnpurge.core.cost`): what a plan bills at CloudFront, and holding it to a monthly budget."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Logger, Metrics

from cdnpurge.core.config import parse_config
from cdnpurge.core.cost import PathBill, billed_paths, budgeted_plan, charge_usd, counter_key, month_of
from cdnpurge.core.events import Decoded
from cdnpurge.core.models import Plan, RoutedTarget, Target, TargetKind
from cdnpurge.core.registry import specs
from cdnpurge.core.translate import Translation
from cdnpurge.runtime.observability import record
from cdnpurge.runtime.report import BatchReport, BatchRun

MONTH = "2026-11"
CONFIG = """
providers:
  - {name: cf, kind: cloudfront, distribution_id: E1TAGGED, cache_tags: true}
  - {name: cf2, kind: cloudfront, distribution_id: E2PLAIN}
  - {name: fastly, kind: fastly, service_id: SVC, hosts: [www.example.com], credentials: {token: {env: T}}}
"""


def routed(kind: TargetKind, values: list[str], providers: set[str], change: str | None = None) -> list[RoutedTarget]:
    return [RoutedTarget(change or f"c-{value}", Target(kind, value), frozenset(providers), None) for value in values]


def test_every_item_sent_to_a_distribution_is_billed_once_and_other_cdns_not_at_all() -> None:
    # Given paths, a prefix and tags for both distributions and Fastly
    items = [
        *routed(TargetKind.PATH, ["/a", "/b"], {"cf", "cf2", "fastly"}),
        *routed(TargetKind.PREFIX, ["/img/"], {"cf"}),
        *routed(TargetKind.KEY, ["Tag", "tag", "other"], {"cf", "fastly"}),
    ]
    # When
    the_plan, bill = budgeted_plan(
        items, specs(parse_config(CONFIG).providers), month=MONTH, budget=None, month_so_far=None
    )
    # Then the tagged distribution bills 2 paths + 1 wildcard + 2 distinct tags, the other 2 paths
    assert bill.paths == {"E1TAGGED": 5, "E2PLAIN": 2}
    assert billed_paths(the_plan.requests, specs(parse_config(CONFIG).providers)) == bill.paths
    assert (bill.total, bill.exceeded, bill.economised) == (7, False, False)


def test_under_the_budget_the_plan_is_left_alone() -> None:
    items = routed(TargetKind.PATH, [f"/d/{i}" for i in range(10)], {"cf"})
    the_plan, bill = budgeted_plan(
        items, specs(parse_config(CONFIG).providers), month=MONTH, budget=20, month_so_far=10
    )
    assert [len(r.targets) for r in the_plan.requests] == [10]
    assert not bill.exceeded and not bill.economised and not the_plan.escalations


def test_crossing_the_budget_purges_a_directory_by_wildcard() -> None:
    # Given 300 paths in 3 directories, with the month already at 995 of a 1,000 budget
    items = routed(TargetKind.PATH, [f"/d{i % 3}/{i}.jpg" for i in range(300)], {"cf"})
    # When
    the_plan, bill = budgeted_plan(
        items, specs(parse_config(CONFIG).providers), month=MONTH, budget=1000, month_so_far=995
    )
    # Then 3 wildcards serve every change, and the plan stays within the budget
    assert [(r.kind, r.targets) for r in the_plan.requests] == [(TargetKind.PREFIX, ("/d0/", "/d1/", "/d2/"))]
    assert the_plan.requests[0].change_ids == {item.change_id for item in items}
    assert (bill.paths, bill.economised, bill.exceeded) == ({"E1TAGGED": 3}, True, False)
    (escalation,) = the_plan.escalations
    assert (escalation.kind, escalation.targets, escalation.replaced) == (
        TargetKind.PREFIX,
        ("/d0/", "/d1/", "/d2/"),
        300,
    )


def test_crossing_the_budget_lets_a_declared_cache_tag_cover_its_changes_paths() -> None:
    # Given 100 uploads, each with a path and a shared section tag its rule declares covering the path
    # (`keys_cover`), for the tagged distribution and Fastly
    items = []
    for i in range(100):
        items += routed(TargetKind.PATH, [f"/p{i}/x.html"], {"cf", "fastly"}, change=f"c{i}")
        items += routed(TargetKind.KEY, [f"Section-{i % 4}"], {"cf", "fastly"}, change=f"c{i}")
    # When the month has no room left
    the_plan, bill = budgeted_plan(
        items,
        specs(parse_config(CONFIG).providers),
        month=MONTH,
        budget=1000,
        month_so_far=1000,
        tag_covered={f"c{i}" for i in range(100)},
    )
    # Then CloudFront gets the 4 tags only (billed 4), still serving all 100 changes; Fastly is untouched
    cloudfront = [r for r in the_plan.requests if r.provider == "cf"]
    assert [(r.kind, r.targets) for r in cloudfront] == [
        (TargetKind.KEY, ("section-0", "section-1", "section-2", "section-3"))
    ]
    assert cloudfront[0].change_ids == {f"c{i}" for i in range(100)}
    assert sum(len(r.targets) for r in the_plan.requests if r.provider == "fastly" and r.kind is TargetKind.URL) == 100
    (by_tags,) = [e for e in the_plan.escalations if e.kind is TargetKind.KEY]
    assert (by_tags.provider, by_tags.replaced, by_tags.requests_before, by_tags.requests_after) == ("cf", 100, 2, 1)
    # the budget is still crossed (1,000 + 4), so the bill says so: purged anyway, warned
    assert (bill.paths, bill.economised, bill.exceeded) == ({"E1TAGGED": 4}, True, True)


def test_nothing_covers_scattered_paths_so_they_are_purged_anyway_and_flagged() -> None:
    items = routed(TargetKind.PATH, [f"/d{i}/x" for i in range(20)], {"cf2"})
    the_plan, bill = budgeted_plan(items, specs(parse_config(CONFIG).providers), month=MONTH, budget=10, month_so_far=0)
    assert sum(len(r.targets) for r in the_plan.requests) == 20
    assert (bill.total, bill.exceeded) == (20, True)
    assert "budget 10: EXCEEDED" in bill.describe()


@pytest.mark.parametrize(
    ("so_far", "added", "usd"), [(0, 1000, 0.0), (0, 1001, 0.005), (990, 20, 0.05), (5000, 200, 1.0)]
)
def test_the_charge_counts_only_paths_beyond_the_free_thousand(so_far: int, added: int, usd: float) -> None:
    assert charge_usd(so_far, added) == usd


def test_months_are_utc_calendar_months_and_counter_keys_name_them() -> None:
    assert month_of(1_793_491_199) == "2026-10"  # 2026-10-31T23:59:59Z
    assert month_of(1_793_491_200) == "2026-11"
    assert counter_key(MONTH, "E1TAGGED") == "cdnpurge#paths#2026-11#E1TAGGED"


def test_billed_paths_are_counted_and_a_crossed_budget_is_logged_and_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch that billed 20 paths over a budget of 10
    bill = PathBill(MONTH, {"E2PLAIN": 20}, month_so_far=0, budget=10, economised=True)
    report = BatchReport(
        BatchRun(
            decoded=Decoded((), (), ()),
            translation=Translation((), (), ()),
            plan=Plan(()),
            bill=bill,
            billed_paths={"E2PLAIN": 20},
        )
    )
    metrics = Metrics(namespace="cdnpurge-test", service="cdnpurge-test")
    metrics.clear_metrics()
    # When
    record(report, Logger(service="cdnpurge-test-cost", level="INFO"), metrics)
    metrics.flush_metrics()
    # Then a warning naming the month, the bill and the budget, and the metrics for the alarm
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (warned,) = [d for d in documents if d.get("message") == "monthly path budget exceeded"]
    assert (warned["level"], warned["month"], warned["billed_paths"], warned["budget"]) == (
        "WARNING",
        MONTH,
        {"E2PLAIN": 20},
        10,
    )
    (emf,) = [d for d in documents if "_aws" in d and "InvalidationPaths" in d]
    assert (emf["InvalidationPaths"], emf["PathBudgetExceeded"]) == ([20.0], [1.0])


def test_a_refused_tag_covers_nothing_so_its_changes_paths_stay() -> None:
    # Given a change whose tag CloudFront would refuse, and a full month
    items = [
        *routed(TargetKind.PATH, ["/a/x.html"], {"cf"}, change="c1"),
        *routed(TargetKind.KEY, ["not,a,tag"], {"cf"}, change="c1"),
    ]
    # When
    the_plan, _ = budgeted_plan(items, specs(parse_config(CONFIG).providers), month=MONTH, budget=0, month_so_far=0)
    # Then its path is still purged, and the tag is its change's plan error
    assert [(r.kind, r.targets) for r in the_plan.requests] == [(TargetKind.PATH, ("/a/x.html",))]
    (error,) = the_plan.errors
    assert error.change_ids == frozenset({"c1"}) and "cache tag" in error.message


def test_an_undeclared_tag_replaces_nothing_so_a_published_changes_paths_are_purged() -> None:
    # Given a published change with keys [home], paths [/news/] and urls [.../feed.xml], and a full month
    items = [
        *routed(TargetKind.KEY, ["home"], {"cf"}, change="pub:1"),
        *routed(TargetKind.PATH, ["/news/"], {"cf"}, change="pub:1"),
        *routed(TargetKind.URL, ["https://www.example.com/feed.xml"], {"cf"}, change="pub:1"),
    ]
    # When the plan is economised (no rule declares that `home` tags those objects)
    the_plan, bill = budgeted_plan(items, specs(parse_config(CONFIG).providers), month=MONTH, budget=0, month_so_far=0)
    # Then the tag and both paths go to CloudFront: nothing is dropped in favour of the tag
    sent = sorted((r.kind, value) for r in the_plan.requests for value in r.targets)
    assert sent == [(TargetKind.KEY, "home"), (TargetKind.PATH, "/feed.xml"), (TargetKind.PATH, "/news/")]
    assert all(e.kind is not TargetKind.KEY for e in the_plan.escalations)
    assert (bill.economised, bill.exceeded) == (True, True)


def test_keys_cover_is_declared_per_rule_and_needs_keys() -> None:
    config = parse_config(
        CONFIG + 'rules: [{match: "a/{name}", paths: ["/a/{name}"], keys: ["a"], keys_cover: true}]\n'
    )
    assert config.rules[0].keys_cover
    with pytest.raises(ValueError, match="keys_cover is set but the rule has no keys"):
        parse_config(CONFIG + 'rules: [{match: "a/{name}", paths: ["/a/{name}"], keys_cover: true}]\n')
