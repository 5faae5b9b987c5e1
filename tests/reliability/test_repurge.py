"""The optional delayed second purge (origin replication lag): `repurge_delay_seconds`, off by default.

After purging S3 changes the handler enqueues one marked message with that SQS delay; its changes carry
`#repurge` ids, so the ledger purges them once more (not "already done") and still skips a redelivery.
The default (off) is covered by test_delivery: nothing is left in the queue after a purge.
"""

from __future__ import annotations

import json

import pytest
from reliability.support import (
    Witness,
    assert_exactly,
    config_template,
    reset,
    send,
    source,
    unique,
)

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge_local.event_builders import sns_envelope
from cdnpurge_local.event_source import Invocation
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-repurge")]
BUCKET = "cdnpurge-rel-repurge"
DELAY = 1
EXTRA_CONFIG = f"repurge_delay_seconds: {DELAY}\n"  # read by the `deployment` fixture (conftest)


@pytest.fixture(autouse=True)
def clean(deployment: Deployment) -> None:
    if deployment.delayed_messages():  # a re-purge left by a test that failed before it arrived
        arrived(deployment)
    reset(deployment)


def arrived(deployment: Deployment) -> Invocation | None:
    """The next batch, waiting on SQS's long poll (not a sleep) for a delayed message to become visible."""
    return source(deployment, receive_wait_seconds=DELAY + 10).poll_once()


def test_an_upload_is_purged_again_after_the_delay_and_only_once_more(deployment: Deployment, witness: Witness) -> None:
    # Given
    key = f"{unique('lag')}.html"
    deployment.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x")
    # When: the upload is purged, then the delayed message arrives
    source(deployment).drain()
    assert_exactly(deployment, [f"/{key}"])
    assert deployment.queue_depth() == 0 and deployment.delayed_messages() == 1  # delayed: not visible yet
    second = arrived(deployment)
    # Then: purged a second time; the re-purge schedules nothing further
    assert second is not None and json.loads(second.event["Records"][0]["body"])["cdnpurge"] == "repurge"
    assert_exactly(deployment, {f"/{key}": 2})
    assert deployment.queue_depth() == 0 and deployment.delayed_messages() == 0
    assert witness.logs.messages("re-purge scheduled")
    assert witness.metrics()[("RepurgeScheduled", None)] == 1
    # And: a redelivered re-purge message is a duplicate like any other
    send(deployment, second.event["Records"][0]["body"])
    source(deployment).drain()
    assert_exactly(deployment, {f"/{key}": 2})


def test_published_targets_are_not_repurged(deployment: Deployment) -> None:
    path = f"/{unique('pub')}.html"
    send(deployment, sns_envelope({"paths": [path]}))
    source(deployment).drain()
    assert deployment.queue_depth() == 0 and deployment.delayed_messages() == 0
    assert_exactly(deployment, [path])


@pytest.mark.parametrize(("value", "problem"), [(901, "Expected `int` <= 900"), (-1, "Expected `int` >= 0")])
def test_the_delay_is_bounded_by_what_sqs_allows(value: int, problem: str) -> None:
    text = config_template(f"repurge_delay_seconds: {value}\n").format(
        fastly_endpoint="http://127.0.0.1:1/fastly", medianova_endpoint="http://127.0.0.1:1/medianova", bucket="b"
    )
    with pytest.raises(ConfigError, match=f"repurge_delay_seconds: {problem}"):
        parse_config(text)
