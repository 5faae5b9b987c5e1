"""Verification with CloudFront on moto: the invalidation in progress is waited for, then the edge probed.

The real CloudFront adapter creates the invalidation on moto server; the fake edge in front of the moto
bucket applies it 20 s later on a manual clock (`CloudFrontWatcher`), and `get_invalidation` answers
`InProgress` until then (`WatchedCloudFront`: moto alone reports every invalidation `Completed` at once).
The origin's version is read with the production `S3Versions` (HEAD on the moto bucket).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from helpers import MemoryLedger, RecordingSqs, SimulatedClock, Trail, TrailListener, config_from

from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.providers.cloudfront import CloudFrontProvider
from cdnpurge.runtime.redaction import RedactingProvider
from cdnpurge.runtime.service import PurgeService, Queues, Verification, VerificationWiring
from cdnpurge.runtime.verification.origin import S3Versions
from cdnpurge.runtime.verification.report import Tally
from cdnpurge_local.cfn import load_template
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.fakecdn.clock import ManualClock
from cdnpurge_local.fakecdn.cloudfront_watch import CloudFrontWatcher, WatchedCloudFront
from cdnpurge_local.fakecdn.edge import Edge, EdgeFault, EdgeServer
from cdnpurge_local.fakecdn.origin import S3Origin
from cdnpurge_local.iam import RolePolicy, enforce_role, function_role
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DEFAULT_REGION, MotoServer
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("moto-verification")]

WWW, BUCKET, KEY = "www.example.com", "verify-cloudfront-origin", "articles/a.html"
URL = f"https://{WWW}/{KEY}"
START = 1_764_000_000.0
PURGE_QUEUE = "https://sqs.local/purge"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@dataclass
class Verified:
    """What one S3 upload's purge and its verification checks did on moto and the fake edge."""

    tallies: list[Tally]
    trail: Trail
    invalidations: int
    served: str
    uploaded: str


def purge_and_verify(
    moto: MotoServer,
    *,
    fault: EdgeFault | None = None,
    delete: bool = False,
    role: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Verified:
    """Upload version 2 (or, with `delete`, delete the object) behind an edge caching version 1, handle the
    S3 event, then deliver every check once its delay has passed (the edge misbehaving as `fault` says on
    the first purge it learns). With `role`, the function's S3 and CloudFront calls are authorised as AWS
    would by the template's role policy (`role` may edit the template first)."""
    session = boto3.session.Session()
    s3 = local_client(session, "s3", endpoint=moto.endpoint, region=DEFAULT_REGION)
    cloudfront = local_client(session, "cloudfront", endpoint=moto.endpoint, region=DEFAULT_REGION)
    bucket = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    distribution_id = s3_distribution(cloudfront, bucket, comment="cdnpurge verification test")
    functions_s3, functions_cloudfront = s3, cloudfront
    if role is not None:
        policy = function_policy(role(load_template(TEMPLATE_PATH)), bucket, distribution_id)
        functions_s3, functions_cloudfront = (
            enforce_role(
                local_client(session, service, endpoint=moto.endpoint, region=DEFAULT_REGION),
                policy,
                region=DEFAULT_REGION,
                account=ACCOUNT,
            )
            for service in ("s3", "cloudfront")
        )
    clock = ManualClock(START)
    edge = Edge("cloudfront", S3Origin(s3, bucket), clock, hosts=frozenset({WWW}))
    watcher = CloudFrontWatcher(cloudfront, distribution_id, completion_delay=20)
    watcher.watch(edge)
    if fault is not None:
        edge.inject(fault)
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"version 1")
    with EdgeServer(edge) as server:
        address, headers = server.address(URL)
        assert httpx.get(address, headers=headers).content == b"version 1"
        if delete:
            s3.delete_object(Bucket=bucket, Key=KEY)
            new_etag = "(deleted)"
        else:
            new_etag = s3.put_object(Bucket=bucket, Key=KEY, Body=b"version 2")["ETag"]
        config = config_from(
            f"""
            providers:
              - name: cloudfront
                kind: cloudfront
                distribution_id: {distribution_id}
                hosts: [{WWW}]
                verify: {{probe_endpoint: "{server.endpoint}", interval_seconds: 10, deadline_seconds: 120}}
            """
        )
        (settings,) = config.providers
        watched = WatchedCloudFront(functions_cloudfront, watcher)
        adapter = CloudFrontProvider(settings, {}, client=watched)  # type: ignore[arg-type]
        providers = {"cloudfront": RedactingProvider(adapter, ())}
        pacing = SimulatedClock()
        sqs, trail = RecordingSqs(), Trail()
        service = PurgeService(
            config=config,
            providers=providers,
            ledger=MemoryLedger(),
            executor=Executor(providers, clock=pacing, sleep=pacing.sleep),
            queues=Queues(purge_url=PURGE_QUEUE),
            sqs_factory=lambda: sqs,
        )
        service.verification = Verification(
            service, VerificationWiring(listener=TrailListener(trail), origin=S3Versions(functions_s3), clock=clock)
        )
        when = datetime.fromtimestamp(START, UTC).isoformat()

        event_name = "ObjectRemoved:Delete" if delete else "ObjectCreated:Put"
        service.handle(sqs_event(s3_notification(s3_record(bucket, KEY, event_name=event_name, event_time=when))))
        reports = []
        for message in sqs.sent:  # grows as checks are rescheduled
            clock.advance(message.delay)
            reports.append(service.handle(sqs_event(message.body)))
        service.verification.verifier.close()
        answer = httpx.get(address, headers=headers)
        served = answer.headers.get("ETag", f"HTTP {answer.status_code}")
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    return Verified(
        [report.verification.tallies["cloudfront"] for report in reports], trail, listed["Quantity"], served, new_etag
    )


def test_an_invalidation_in_progress_is_waited_for_then_the_edge_is_seen_fresh(moto: MotoServer) -> None:
    # Given a distribution on moto, an edge in front of its bucket caching version 1, and version 2 uploaded
    # When the S3 event is handled, and each check delivered once its delay has passed
    verified = purge_and_verify(moto)
    # Then the first check found the invalidation in progress and probed nothing; a later one saw the
    # edge serve version 2, with no purge sent again
    tallies = verified.tallies
    assert (tallies[0].waiting, tallies[0].probes) == (1, 0)
    assert [url for _, _, _, url in verified.trail.fresh] == [URL]
    assert verified.trail.stale == [] and verified.trail.failed == []
    assert sum(t.repurged for t in tallies) == 0
    assert verified.invalidations == 1
    (fresh_after,) = [seconds for t in tallies for seconds in t.time_to_fresh]
    assert fresh_after >= 20
    assert verified.served == verified.uploaded


def test_a_verification_re_purge_creates_a_second_invalidation(moto: MotoServer) -> None:
    # Given an edge that accepts the first invalidation and never applies it (the moto server follows
    # CloudFront's CallerReference rule: a repeated reference would return the first invalidation)
    # When the upload is purged and verified
    verified = purge_and_verify(moto, fault=EdgeFault.SILENT)
    # Then the check saw the URL stale, purged it again as a new attempt, and CloudFront created a second
    # invalidation, which made the edge serve the new version
    assert {stale[2] for stale in verified.trail.stale} == {URL}
    assert sum(t.repurged for t in verified.tallies) == 1
    assert verified.invalidations == 2
    assert [url for _, _, _, url in verified.trail.fresh] == [URL]
    assert verified.trail.failed == []
    assert verified.served == verified.uploaded


def function_policy(template: Mapping[str, Any], bucket: str, distribution_id: str) -> RolePolicy:
    """The purge function's role policy from `template`, for this test's bucket and distribution."""
    parameters = {
        "ContentBucketName": bucket,
        "CloudFrontDistributionArns": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution_id}",
    }
    return function_role(template, parameters=parameters, region=DEFAULT_REGION, account=ACCOUNT)


def without_statement(sid: str) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """A template edit: the purge function's role without the statement `sid`."""

    def edit(template: Mapping[str, Any]) -> Mapping[str, Any]:
        edited = copy.deepcopy(dict(template))
        for policy in edited["Resources"]["PurgeFunctionRole"]["Properties"]["Policies"]:
            statements = policy["PolicyDocument"]["Statement"]
            policy["PolicyDocument"]["Statement"] = [s for s in statements if s.get("Sid") != sid]
        return edited

    return edit


def test_a_deleted_object_is_verified_absent_under_the_templates_policy(moto: MotoServer) -> None:
    # Given the function's S3 and CloudFront calls authorised by the template's role, as AWS would
    # When an object the edge caches is deleted, purged and verified
    verified = purge_and_verify(moto, delete=True, role=lambda template: template)
    # Then the origin reads "gone" (HeadObject 404: the role may list the content bucket), the edge answers
    # 404 once the invalidation is applied, and the deletion is seen live
    assert [url for _, _, _, url in verified.trail.fresh] == [URL]
    assert verified.trail.failed == [] and verified.served == "HTTP 404"


def test_without_list_bucket_a_deleted_object_cannot_be_verified(moto: MotoServer) -> None:
    # Given the same role without s3:ListBucket: S3 answers HeadObject on the missing key with 403
    # When the deleted object is purged and verified
    verified = purge_and_verify(moto, delete=True, role=without_statement("ListContentBucket"))
    # Then verification cannot tell it is gone: never seen fresh, dead-lettered as unreadable at its deadline
    assert verified.trail.fresh == []
    assert [reason for _, _, reason in verified.trail.failed] == [
        reason for _, _, reason in verified.trail.failed if "origin unreadable" in reason and "403" in reason
    ]
    assert verified.trail.failed
