"""The "provider attempt failed" log line names the request token the attempt really sent.

For CloudFront the token is the `CallerReference`, which hashes each change's purge generation (the ledger's
attempt) as well as the content; a line quoting the content-only token would point an operator at an
invalidation that never existed. A real moto server receives the purge; the answer to the first call is lost
on the way back (moto created the invalidation), so the attempt fails, is logged, and its retry continues it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ConnectionClosedError
from helpers import SimulatedClock

from cdnpurge.core.config import parse_config
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.registry import specs as specs_of
from cdnpurge.runtime.execute import Executor, request_token
from cdnpurge.runtime.observability import attempt_logger
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.providers.cloudfront import CloudFrontProvider, CloudFrontSettings
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.event_builders import sqs_event
from cdnpurge_local.memory_ledger import MemoryLedger
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DEFAULT_REGION, MotoServer

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

pytestmark = pytest.mark.xdist_group("moto-attempt-log")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def cloudfront_client(moto: MotoServer) -> CloudFrontClient:
    client: CloudFrontClient = local_client(
        boto3.session.Session(), "cloudfront", endpoint=moto.endpoint, region=DEFAULT_REGION
    )
    return client


def lose_the_first_answer(client: Any) -> None:
    """The first CreateInvalidation reaches moto (which creates the invalidation); its answer is lost."""
    lost = {"left": 1}

    def drop(**_: Any) -> None:
        if lost["left"]:
            lost["left"] -= 1
            raise ConnectionClosedError(endpoint_url="moto")

    client.meta.events.register("after-call.cloudfront.CreateInvalidation", drop)


def test_the_failed_attempts_log_line_names_the_caller_reference_cloudfront_received(moto: MotoServer) -> None:
    # Given a CloudFront provider on moto whose first answer is lost, and a logger capturing its lines
    admin = cloudfront_client(moto)
    distribution_id = s3_distribution(admin, "attempt-log-origin", comment="cdnpurge attempt log test")
    provider_entry = f"{{name: cf, kind: cloudfront, distribution_id: {distribution_id}, endpoint: '{moto.endpoint}'}}"
    config = parse_config(f"providers: [{provider_entry}]\n")
    (settings,) = config.providers
    assert isinstance(settings, CloudFrontSettings)
    client = cloudfront_client(moto)
    lose_the_first_answer(client)
    provider = CloudFrontProvider(settings, {}, client=client)
    lines = io.StringIO()
    logger = Logger(service="attempt-log-test", logger_handler=logging.StreamHandler(lines))
    clock = SimulatedClock()
    executor = Executor({"cf": provider}, clock=clock, sleep=clock.sleep, on_attempt=attempt_logger(logger))
    # When a published change is purged (a first attempt fails, its retry succeeds)
    run = run_batch(
        sqs_event(json.dumps({"id": "release-9", "paths": ["/news/today.html"]})),
        config=config,
        specs=specs_of(config.providers),
        ledger=MemoryLedger(),
        executor=executor,
        deadline=Deadline.after(60, clock),
    )
    # Then the failed attempt's line carries the CallerReference moto received, the attempt's own token
    (failed,) = [json.loads(line) for line in lines.getvalue().splitlines() if "provider attempt failed" in line]
    (summary,) = admin.list_invalidations(DistributionId=distribution_id)["InvalidationList"]["Items"]
    invalidation = admin.get_invalidation(DistributionId=distribution_id, Id=summary["Id"])["Invalidation"]
    received = invalidation["InvalidationBatch"]["CallerReference"]
    assert failed["request_token"] == received
    (outcome,) = run.outcomes
    assert outcome.ok and outcome.attempts == 2 and outcome.token == received
    # and not the token of the content alone, which names no invalidation CloudFront ever saw
    assert received != request_token(outcome.request)
