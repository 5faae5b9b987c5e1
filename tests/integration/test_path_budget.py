"""Storms that cross `monthly_path_budget`, end to end: the pipeline on DynamoDB Local (ledger and the month's
billed-path counters, in the template's table) and CloudFront on moto server.

- a storm under one directory crosses the budget: it is purged by one wildcard, billed one path;
- a scattered storm crosses it with nothing to cover it: purged anyway path by path, and flagged;
- a storm whose uploads also carry a cache tag their rule declares covering their paths: purged by the
  distinct tags alone;
- concurrent invocations adding to the counters never lose a count (`UpdateItem ADD` is atomic).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from helpers import create_template_table

from cdnpurge.cli.main import main
from cdnpurge.core.config import parse_config
from cdnpurge.core.cost import TOTAL, DynamoDBPathCounter, month_of
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import TargetKind
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.report import BatchRun
from cdnpurge.runtime.service import PurgeService
from cdnpurge_local.cloudfront_tags import enforce_cache_tags
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.servers import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("path-budget")]

BUCKET = "example-site-content"
MONTH = "2026-11"
BUDGET = 50


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[Any, str]:
    """DynamoDB Local with the template's idempotency table: (client, table name)."""
    name = "cdnpurge-path-budget-test"
    create_template_table(dynamodb, "IdempotencyTable", name)
    return dynamodb, name


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as moto:
        yield moto.endpoint


@pytest.fixture
def cloudfront(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> CloudFrontClient:
    """A tag-aware client on moto (which knows no tags; see `cdnpurge_local.cloudfront_tags`)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    client = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    return enforce_cache_tags(client)


def new_distribution(cloudfront: CloudFrontClient) -> str:
    return s3_distribution(cloudfront, BUCKET, comment="cdnpurge path budget test")


def invalidated(cloudfront: CloudFrontClient, distribution_id: str) -> list[str]:
    """Every item of every invalidation the distribution received."""
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    items: list[str] = []
    for summary in listed:
        got = cloudfront.get_invalidation(DistributionId=distribution_id, Id=summary["Id"])
        items += got["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", [])
    return sorted(items)


class Storm:
    """The pipeline with the service's wiring (ledger and counters in one table), on one fresh distribution."""

    def __init__(self, table: tuple[Any, str], cloudfront: CloudFrontClient, rule: str) -> None:
        client, name = table
        self.cloudfront = cloudfront
        self.distribution_id = new_distribution(cloudfront)
        self.config = parse_config(
            f"providers: [{{name: cf, kind: cloudfront, distribution_id: {self.distribution_id}, cache_tags: true}}]\n"
            f"rules: [{rule}]\nmonthly_path_budget: {BUDGET}\n"
        )
        self.service = PurgeService.build(
            self.config, table_name=name, dynamodb_client=client, clients={"cf": cloudfront}
        )
        self.counter = DynamoDBPathCounter(client, name)
        self.month = f"{MONTH}-{self.distribution_id}"  # a month of its own per test: counters start at 0

    def run(self, keys: list[str]) -> BatchRun:
        event = sqs_event(
            *(s3_notification(s3_record(BUCKET, key, sequencer=f"{i:08X}")) for i, key in enumerate(keys))
        )
        return run_batch(
            event,
            config=self.config,
            specs=self.service.specs,
            ledger=self.service.ledger,
            executor=self.service.executor,
            deadline=Deadline.after(60, self.service.executor.clock),
            path_counter=self.service.path_counter,
            month=self.month,
        )

    def counted(self) -> tuple[int, int]:
        """(this distribution's count, the total) for the month."""
        return self.counter.count(self.month, self.distribution_id), self.counter.count(self.month, TOTAL)


def test_a_storm_under_one_directory_crossing_the_budget_is_purged_by_one_wildcard(
    table: tuple[Any, str], cloudfront: CloudFrontClient
) -> None:
    # Given a month already at 40 of 50 billed paths
    storm = Storm(table, cloudfront, '{match: "assets/{dir}/{name}", paths: ["/assets/{dir}/{name}"]}')
    storm.counter.add(storm.month, {storm.distribution_id: 40})
    # When 30 uploads under one directory arrive (30 paths would take the month to 70)
    run = storm.run([f"assets/d0/{i}.jpg" for i in range(30)])
    # Then one wildcard serves them all, billed as one path, and counted
    assert not run.failures.sources
    assert invalidated(cloudfront, storm.distribution_id) == ["/assets/d0/*"]
    assert run.bill is not None and run.bill.economised and not run.bill.exceeded
    assert run.billed_paths == {storm.distribution_id: 1}
    assert storm.counted() == (41, 41)
    assert [e.kind for e in run.plan.escalations] == [TargetKind.PREFIX]


def test_a_scattered_storm_crossing_the_budget_is_purged_anyway_and_flagged(
    table: tuple[Any, str], cloudfront: CloudFrontClient
) -> None:
    storm = Storm(table, cloudfront, '{match: "assets/{dir}/{name}", paths: ["/assets/{dir}/{name}"]}')
    storm.counter.add(storm.month, {storm.distribution_id: 40})
    # When 30 uploads in 30 directories arrive: no wildcard or tag covers them
    run = storm.run([f"assets/d{i}/x.jpg" for i in range(30)])
    # Then every path is purged all the same, the crossing flagged and every path counted
    assert not run.failures.sources
    assert invalidated(cloudfront, storm.distribution_id) == sorted(f"/assets/d{i}/x.jpg" for i in range(30))
    assert run.bill is not None and run.bill.exceeded and run.bill.month_so_far == 40
    assert storm.counted() == (70, 70)


def test_a_tagged_storm_crossing_the_budget_is_purged_by_its_distinct_tags(
    table: tuple[Any, str], cloudfront: CloudFrontClient
) -> None:
    # Given uploads tagged by section (the origin returns the tag; the rule names it and declares that it
    # covers the rule's paths) and a full month
    rule = '{match: "assets/{dir}/{name}", paths: ["/assets/{dir}/{name}"], keys: ["Section-{dir}"], keys_cover: true}'
    storm = Storm(table, cloudfront, rule)
    storm.counter.add(storm.month, {storm.distribution_id: BUDGET})
    # When 40 uploads in 4 sections (and 40 directories' worth of paths) arrive
    run = storm.run([f"assets/s{i % 4}/{i}.jpg" for i in range(40)])
    # Then CloudFront receives the 4 distinct tags only, billed 4 (still over the budget: flagged)
    assert not run.failures.sources
    assert invalidated(cloudfront, storm.distribution_id) == [
        "#section-s0",
        "#section-s1",
        "#section-s2",
        "#section-s3",
    ]
    assert run.billed_paths == {storm.distribution_id: 4}
    assert run.bill is not None and run.bill.exceeded
    assert storm.counted() == (BUDGET + 4, BUDGET + 4)


def test_concurrent_counting_loses_nothing(table: tuple[Any, str]) -> None:
    client, name = table
    counter = DynamoDBPathCounter(client, name)
    month = f"{MONTH}-concurrent"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: counter.add(month, {"E1": 1, "E2": i % 2}), range(64)))
    assert (counter.count(month, "E1"), counter.count(month, "E2"), counter.month_so_far(month)) == (64, 32, 96)


def test_plan_shows_the_bill_and_the_month_so_far_read_from_the_table(table: tuple[Any, str], tmp_path: Path) -> None:
    # Given a month at 990 billed paths and a storm of 20 uploads in 20 directories (no wildcard helps)
    client, name = table
    november = 1_795_000_000.0  # 2026-11-18T...Z
    DynamoDBPathCounter(client, name).add(month_of(november), {"E2QWRUHEXAMPLE": 990})
    config = tmp_path / "purge.yaml"
    config.write_text(
        "providers: [{name: cf, kind: cloudfront, distribution_id: E2QWRUHEXAMPLE}]\n"
        'rules: [{match: "{key*}", paths: ["/{key}"]}]\nmonthly_path_budget: 1000\n',
        encoding="utf-8",
    )
    event = tmp_path / "storm.json"
    uploads = (s3_notification(s3_record(BUCKET, f"d{i}/x.jpg", sequencer=f"{i:04X}")) for i in range(20))
    event.write_text(json.dumps(sqs_event(*uploads)), encoding="utf-8")
    arguments = ["plan", "-c", str(config), "-e", str(event), "--table", name]
    # When
    out = io.StringIO()
    code = main([*arguments, "-f", "json"], out=out, dynamodb=client, wall_clock=lambda: november)
    text = io.StringIO()
    main(arguments, out=text, dynamodb=client, wall_clock=lambda: november)
    # Then the plan bills 20 paths, 10 of them beyond the free 1,000, and crosses the budget
    assert code == 0
    billing = json.loads(out.getvalue())["billing"]
    assert billing == {
        "month": "2026-11",
        "paths": {"E2QWRUHEXAMPLE": 20},
        "total": 20,
        "month_so_far": 990,
        "estimated_usd": 0.05,
        "budget": 1000,
        "economised": True,
        "exceeded": True,
    }
    assert (
        "billing: 20 billed path(s) (month 2026-11 so far: 990; about $0.05 beyond the free 1,000); "
        "budget 1,000: EXCEEDED" in text.getvalue()
    )
