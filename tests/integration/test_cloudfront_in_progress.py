"""CloudFront's limits in progress, shared by invocations through the rate meter, on the real pieces.

The real CloudFront adapter talks to moto server (with the local stack's `CallerReference` rule); the
watcher in front of it (`cdnpurge_local.fakecdn.cloudfront_watch`) keeps each invalidation `InProgress`
for 30 s on the test's clock and refuses, as CloudFront does, a batch that would pass the distribution's
15 wildcard paths in progress (moto alone completes everything at once and refuses nothing). The meter is
the production `DynamoDBMeter` on DynamoDB Local; one simulated clock drives the edge, the meter and the
executors, so nothing here waits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from helpers import SimulatedClock, create_template_table

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.spec import ProviderSettings
from cdnpurge.runtime.execute import Executor, Outcome
from cdnpurge.runtime.meter import in_progress_scope
from cdnpurge.runtime.meter_dynamodb import DynamoDBMeter
from cdnpurge.runtime.providers.cloudfront import IN_PROGRESS_HOLD_SECONDS, CloudFrontProvider, CloudFrontSettings
from cdnpurge.runtime.verification.jobs import job_pending
from cdnpurge.runtime.verification.verifier import Pacer
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.fakecdn.cloudfront_watch import CloudFrontWatcher, WatchedCloudFront
from cdnpurge_local.fakecdn.edge import Edge
from cdnpurge_local.fakecdn.origin import S3Origin
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DEFAULT_REGION, MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("moto-in-progress")]

START = 1_765_000_000.0
COMPLETES_AFTER = 30.0
WILDCARDS = 15


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[Any, str]:
    name = "cdnpurge-in-progress-test"
    create_template_table(dynamodb, "IdempotencyTable", name)
    return dynamodb, name


@dataclass
class Distribution:
    """One moto distribution behind a watcher, and invocations of the function purging it."""

    clock: SimulatedClock
    watcher: CloudFrontWatcher
    settings: ProviderSettings
    cloudfront: Any
    dynamodb: Any
    table: str

    def invocation(self) -> Executor:
        """A new invocation: its own adapter, executor and meter (an empty cache), the same table."""
        adapter = CloudFrontProvider(self.settings, {}, client=WatchedCloudFront(self.cloudfront, self.watcher))  # type: ignore[arg-type]
        meter = DynamoDBMeter(self.dynamodb, self.table, clock=self.clock)
        return Executor({"cloudfront": adapter}, clock=self.clock, sleep=self.clock.sleep, meter=meter)

    def deadline(self) -> Deadline:
        return Deadline(self.clock() + 600.0, self.clock)


@pytest.fixture
def distribution(moto: MotoServer, table: tuple[Any, str]) -> Distribution:
    session = boto3.session.Session()
    s3 = local_client(session, "s3", endpoint=moto.endpoint, region=DEFAULT_REGION)
    cloudfront = local_client(session, "cloudfront", endpoint=moto.endpoint, region=DEFAULT_REGION)
    bucket = f"in-progress-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    distribution_id = s3_distribution(cloudfront, bucket, comment="cdnpurge in-progress test")
    clock = SimulatedClock(START)
    watcher = CloudFrontWatcher(cloudfront, distribution_id, completion_delay=COMPLETES_AFTER)
    watcher.watch(Edge("cloudfront", S3Origin(s3, bucket), clock))
    settings = CloudFrontSettings(name="cloudfront", kind="cloudfront", distribution_id=distribution_id)
    return Distribution(clock, watcher, settings, cloudfront, *table)


def wildcards(count: int, tag: str) -> PurgeRequest:
    return PurgeRequest(
        "cloudfront", TargetKind.PREFIX, tuple(f"/{tag}/{n}/" for n in range(count)), False, frozenset({tag})
    )


def run(executor: Executor, request: PurgeRequest, deadline: Deadline) -> Outcome:
    return executor.run(request, deadline=deadline, idempotency_token=uuid.uuid4().hex)


def test_two_invocations_never_pass_the_wildcards_in_progress_and_reuse_them_once_complete(
    distribution: Distribution,
) -> None:
    clock, watcher = distribution.clock, distribution.watcher
    first, second = distribution.invocation(), distribution.invocation()
    # Given: one invocation has 12 wildcard paths in progress (3 invalidations of 4)
    assert all(run(first, wildcards(4, f"a{n}"), distribution.deadline()).ok for n in range(3))
    # When: another invocation wants 2 x 4 more (20 in all, over the distribution's 15)
    waiting = [run(second, wildcards(4, f"b{n}"), distribution.deadline()) for n in range(2)]
    # Then: it does not call, it is deferred: nothing complete yet, so at the latest until the holds' bound
    assert all(o.deferred and o.attempts == 0 for o in waiting)
    assert all(o.retry_in == pytest.approx(IN_PROGRESS_HOLD_SECONDS, abs=5.0) for o in waiting)
    assert watcher.refused == 0 and watcher.in_progress() == (0, 12)
    # When: the first invalidations complete (30 s, long before the bound) and the records come back
    clock.sleep(COMPLETES_AFTER)
    again = [run(second, wildcards(4, f"b{n}"), distribution.deadline()) for n in range(2)]
    # Then: the full distribution's oldest jobs were asked about, found complete and released: both go
    assert all(o.ok for o in again)
    assert watcher.refused == 0 and watcher.most_in_progress[1] <= WILDCARDS
    assert watcher.in_progress() == (0, 8)


def test_a_job_seen_complete_by_verification_releases_its_count_for_every_invocation(
    distribution: Distribution,
) -> None:
    purging = distribution.invocation()
    outcome = run(purging, wildcards(WILDCARDS, "full"), distribution.deadline())
    assert outcome.ok and outcome.result is not None and outcome.result.provider_id
    job = outcome.result.provider_id
    other = distribution.invocation()
    assert run(other, wildcards(1, "late"), distribution.deadline()).deferred
    # When: a later invocation's verification check polls the job (GetInvalidation) once it is complete
    distribution.clock.sleep(COMPLETES_AFTER)
    checking = distribution.invocation()
    (provider,) = checking.providers.values()
    pacer = Pacer(checking, "cloudfront", distribution.deadline())
    assert not job_pending(provider, job, pacer.next_call(), done=pacer.finished)
    # Then: the distribution's item holds nothing any more, whoever reads it
    reader = DynamoDBMeter(distribution.dynamodb, distribution.table, clock=distribution.clock)
    scope = in_progress_scope(provider.spec)
    assert scope is not None
    limits = {"paths": 3000, "wildcards": WILDCARDS}
    assert (
        reader.hold(scope, "tprobe", {"wildcards": WILDCARDS}, limits, seconds=1.0, deadline=distribution.deadline())
        == 0.0
    )


def test_a_refused_invalidation_releases_its_hold_at_once(distribution: Distribution) -> None:
    # Given: the distribution is full outside the meter (another tool's invalidations, running all along)
    distribution.watcher.completion_delay = 3600.0
    distribution.cloudfront.create_invalidation(
        DistributionId=distribution.watcher.distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": WILDCARDS, "Items": [f"/other/{n}/*" for n in range(WILDCARDS)]},
            "CallerReference": uuid.uuid4().hex,
        },
    )
    executor = distribution.invocation()
    # When: a call is refused by CloudFront (TooManyInvalidationsInProgress: a shared throttle)
    outcome = run(executor, wildcards(1, "refused"), Deadline(distribution.clock() + 100.0, distribution.clock))
    assert outcome.throttled >= 1 and not outcome.ok
    # Then: its count was released, not held for the bound
    (provider,) = executor.providers.values()
    scope = in_progress_scope(provider.spec)
    assert scope is not None
    assert executor.holds is not None
    reader = DynamoDBMeter(distribution.dynamodb, distribution.table, clock=distribution.clock)
    limits = {"paths": 3000, "wildcards": WILDCARDS}
    assert (
        reader.hold(scope, "tprobe", {"wildcards": WILDCARDS}, limits, seconds=1.0, deadline=distribution.deadline())
        == 0.0
    )
