"""The real flow on the local stack: S3 / SNS / EventBridge -> SQS -> handler -> DynamoDB Local -> fake CDN."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
from helpers import FASTLY_PROVIDERS, fastly_deployment

from cdnpurge.cli.main import main as cli
from cdnpurge_local.fakecdn.server import Fault
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("flow")]

CONFIG = (
    FASTLY_PROVIDERS
    + """\
rules:
  - bucket: {bucket}
    match: "articles/{{slug}}.html"
    keys: ["article-{{slug}}"]
  - bucket: {bucket}
    match: "{{key*}}"
    paths: ["/{{key}}"]
allowed_hosts: [www.example.com]
"""
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with fastly_deployment(
        CONFIG,
        bucket_name="cdnpurge-it-flow",
        environment={"POWERTOOLS_METRICS_DISABLED": "true"},
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(deployment: Deployment) -> None:
    deployment.event_source().drain()
    deployment.cdn.reset()


def test_s3_upload_is_purged_once_and_redelivery_is_skipped(deployment: Deployment) -> None:
    # Given
    slug = uuid.uuid4().hex[:8]
    s3 = deployment.stack.client("s3")
    # When: an article is uploaded and the queue drained through the handler
    s3.put_object(Bucket="cdnpurge-it-flow", Key=f"articles/{slug}.html", Body=b"<p>")
    source = deployment.event_source()
    (invocation,) = source.drain()
    # Then
    assert invocation.response == {"batchItemFailures": []}
    assert deployment.cdn.purged("fastly") == [f"key:article-{slug} (hard)"]
    assert deployment.queue_depth() == 0
    # When: the same message is delivered again (SQS at-least-once)
    body = invocation.event["Records"][0]["body"]
    deployment.stack.client("sqs").send_message(QueueUrl=deployment.stack.resources.queue_url, MessageBody=body)
    source.drain()
    # Then: the idempotency table in DynamoDB Local skips it
    assert len(deployment.cdn.received_by("fastly")) == 1


def test_cdnpurge_status_reads_the_local_stacks_trail_from_the_environment(deployment: Deployment) -> None:
    # Given: an upload purged through the handler, which wrote the purge trail to the stack's table
    key = f"docs/{uuid.uuid4().hex[:8]}.html"
    deployment.stack.client("s3").put_object(Bucket="cdnpurge-it-flow", Key=key, Body=b"<p>")
    deployment.event_source().drain()
    # When: `cdnpurge status` with nothing but the stack's environment (TRAIL_TABLE_NAME and
    # AWS_ENDPOINT_URL_DYNAMODB, as `python -m cdnpurge_local.stack` exports them)
    out = io.StringIO()
    code = cli(["status", "--bucket", "cdnpurge-it-flow", "--key", key, "--format", "json"], out=out)
    # Then
    assert code == 0
    [change] = json.loads(out.getvalue())["changes"]
    assert change["source"]["bucket"] == "cdnpurge-it-flow" and change["source"]["key"] == key
    assert change["rule"] == {"index": 1, "match": "{key*}", "bucket": "cdnpurge-it-flow"}
    [fastly] = change["providers"]
    assert fastly["targets"] == [f"path:/{key}"] and fastly["accepted_at"] and fastly["attempts"] == 1


def test_a_new_upload_of_the_same_object_is_purged_again(deployment: Deployment) -> None:
    s3 = deployment.stack.client("s3")
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket="cdnpurge-it-flow", Key="articles/twice.html", Body=body)
        deployment.event_source().drain()
    assert deployment.cdn.purged("fastly") == ["key:article-twice (hard)"] * 2


def test_publish_events_through_sns_and_eventbridge(deployment: Deployment) -> None:
    # Given
    resources = deployment.stack.resources
    deployment.stack.client("sns").publish(TopicArn=resources.topic_arn, Message=json.dumps({"keys": ["home"]}))
    deployment.stack.client("events").put_events(
        Entries=[
            {
                "Source": resources.published_event_source,
                "DetailType": "Content Published",
                "Detail": json.dumps({"urls": ["https://www.example.com/feed.xml"]}),
            }
        ]
    )
    # When
    deployment.event_source().drain()
    # Then
    assert sorted(deployment.cdn.purged("fastly")) == ["key:home (hard)", "url:www.example.com/feed.xml (hard)"]


def test_key_with_space_and_plus_is_decoded_exactly_once(deployment: Deployment) -> None:
    deployment.stack.client("s3").put_object(Bucket="cdnpurge-it-flow", Key="docs/a b+c%.pdf", Body=b"x")
    deployment.event_source().drain()
    assert deployment.cdn.purged("fastly") == ["url:www.example.com/docs/a%20b%2Bc%25.pdf (hard)"]


def test_malformed_message_fails_alone_and_goes_to_the_dlq_with_its_reason(deployment: Deployment) -> None:
    # Given: one poison message next to a good one
    sqs, resources = deployment.stack.client("sqs"), deployment.stack.resources
    sqs.send_message(QueueUrl=resources.queue_url, MessageBody="{this is not json")
    deployment.stack.client("sns").publish(TopicArn=resources.topic_arn, Message=json.dumps({"keys": ["good"]}))
    # When: one poll (retrying a record that cannot be decoded could never help)
    source = deployment.event_source(batching_window_seconds=0.2)
    first = source.poll_once()
    # Then: both acknowledged, the good one purged, the poison one dead-lettered with the reason
    assert first is not None and first.failed == () and first.deleted == 2
    assert deployment.cdn.purged("fastly") == ["key:good (hard)"]
    assert deployment.queue_depth() == 0
    (dead,) = deployment.dead_letters()
    assert dead["Body"] == "{this is not json"
    assert "body is not JSON" in dead["MessageAttributes"]["cdnpurge-error"]["StringValue"]


def test_provider_outage_returns_the_record_and_a_retry_purges_it(deployment: Deployment) -> None:
    # Given: Fastly answers 503 to every attempt of the first invocation
    deployment.cdn.inject("fastly", Fault(status=503, count=6))
    deployment.stack.client("sns").publish(
        TopicArn=deployment.stack.resources.topic_arn, Message=json.dumps({"keys": ["flaky"]})
    )
    source = deployment.event_source()
    # When
    first = source.poll_once()
    source.drain()
    # Then: the first invocation reported it failed; the redelivery purged it
    assert first is not None and len(first.failed) == 1
    assert deployment.cdn.purged("fastly") == ["key:flaky (hard)"]
