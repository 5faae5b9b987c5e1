"""Several buckets and another account's bucket on the local stack: the template's ObjectChangedRule (on
moto's EventBridge) follows AdditionalContentBucketNames, and a change forwarded from a member account is
purged with its account in its id and shown by `cdnpurge status`."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
from helpers import FASTLY_PROVIDERS, fastly_deployment

from cdnpurge.cli.main import main as cli
from cdnpurge.cli.notifications import set_eventbridge
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sources")]

FIRST, SECOND, UNLISTED = "cdnpurge-it-sources", "cdnpurge-it-sources-2", "cdnpurge-it-unlisted"
MEMBER_ACCOUNT = "210987654321"
CONFIG = (
    FASTLY_PROVIDERS
    + """\
rules:
  - bucket: cdnpurge-it-sources-2
    match: "{{key*}}"
    paths: ["/second/{{key}}"]
  - match: "{{key*}}"
    paths: ["/{{key}}"]
"""
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with fastly_deployment(
        CONFIG,
        bucket_name=FIRST,
        environment={"POWERTOOLS_METRICS_DISABLED": "true"},
        template_parameters={"AdditionalContentBucketNames": SECOND},
    ) as running:
        s3 = running.stack.client("s3")
        for bucket in (SECOND, UNLISTED):
            s3.create_bucket(Bucket=bucket)
            set_eventbridge(s3, bucket, enabled=True)
        yield running


@pytest.fixture(autouse=True)
def clean(deployment: Deployment) -> None:
    deployment.event_source().drain()
    deployment.cdn.reset()


def test_one_stack_purges_every_listed_bucket_and_no_other(deployment: Deployment) -> None:
    # Given
    s3 = deployment.stack.client("s3")
    key = f"{uuid.uuid4().hex[:8]}.html"
    # When: the same key changes in the stack's bucket, the additional one and one not listed
    for bucket in (FIRST, SECOND, UNLISTED):
        s3.put_object(Bucket=bucket, Key=key, Body=b"<p>")
    deployment.event_source().drain()
    # Then: the rules tell the two listed buckets apart; the unlisted bucket's event never matched the rule
    assert sorted(deployment.cdn.purged("fastly")) == sorted(
        [f"url:www.example.com/second/{key} (hard)", f"url:www.example.com/{key} (hard)"]
    )


def test_another_accounts_change_is_purged_with_its_account_and_shown_by_status(deployment: Deployment) -> None:
    # Given: a member account's S3 event as the member-account template forwards it to this bus (its own account)
    key = f"member/{uuid.uuid4().hex[:8]}.html"
    sequencer = "0062E99A88DC407460"
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": MEMBER_ACCOUNT,
        "time": "2026-12-05T10:00:00Z",
        "region": deployment.stack.region,
        "resources": [f"arn:aws:s3:::{SECOND}"],
        "detail": {"bucket": {"name": SECOND}, "object": {"key": key, "size": 3, "sequencer": sequencer}},
    }
    sqs = deployment.stack.client("sqs")
    # When
    sqs.send_message(QueueUrl=deployment.stack.resources.queue_url, MessageBody=json.dumps(event))
    deployment.event_source().drain()
    # Then
    assert deployment.cdn.purged("fastly") == [f"url:www.example.com/second/{key} (hard)"]
    change_id = f"s3:{MEMBER_ACCOUNT}:{SECOND}/{key}@{sequencer}"
    out = io.StringIO()
    assert cli(["status", "--change-id", change_id, "--format", "json"], out=out) == 0
    [change] = json.loads(out.getvalue())["changes"]
    assert change["source"]["account"] == MEMBER_ACCOUNT
    text = io.StringIO()
    assert cli(["status", "--change-id", change_id], out=text) == 0
    assert f"account {MEMBER_ACCOUNT} s3://{SECOND}/{key}" in text.getvalue()
