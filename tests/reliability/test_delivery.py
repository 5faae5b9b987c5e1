"""At-least-once delivery, effectively once: duplicates, redeliveries, races and partial progress.

On the real stack (DynamoDB Local for the idempotency table, moto for SQS/S3/SNS/EventBridge, two fake
CDNs). Every test ends with an audit of what each CDN purged: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from reliability import tally
from reliability.support import (
    Witness,
    assert_exactly,
    purged_entries,
    send,
    source,
    unique,
)

from cdnpurge_local.event_builders import (
    eventbridge_published,
    eventbridge_s3,
    new_sequencer,
    s3_notification,
    s3_record,
    sns_envelope,
)
from cdnpurge_local.event_source import LocalLambdaContext
from cdnpurge_local.fakecdn.server import Fault
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-delivery")]
BUCKET = "cdnpurge-rel-delivery"


def same_change_twice(shape: str, path: str) -> list[dict[str, Any]]:
    """Two documents that describe one change, as each producer would redeliver it."""
    key = path.lstrip("/")
    if shape == "s3 sequencer (notification, and again through SNS)":
        seq = new_sequencer()
        return [
            s3_notification(s3_record(BUCKET, key, sequencer=seq)),
            sns_envelope(s3_notification(s3_record(BUCKET, key, sequencer=seq))),
        ]
    if shape == "s3 sequencer (EventBridge, two event ids)":
        seq = new_sequencer()
        return [eventbridge_s3(BUCKET, key, sequencer=seq), eventbridge_s3(BUCKET, key, sequencer=seq)]
    if shape == "SNS MessageId":
        envelope = sns_envelope({"paths": [path]})
        return [envelope, envelope]
    if shape == "EventBridge id":
        event = eventbridge_published({"paths": [path]})
        return [event, event]
    raise AssertionError(shape)


SHAPES = (
    "s3 sequencer (notification, and again through SNS)",
    "s3 sequencer (EventBridge, two event ids)",
    "SNS MessageId",
    "EventBridge id",
)


@pytest.mark.parametrize("shape", SHAPES)
def test_duplicated_and_redelivered_messages_make_one_call(deployment: Deployment, shape: str) -> None:
    # Given: one change sent as two SQS messages in one batch, then once more a batch later
    path = f"/{unique('dup')}.html"
    first, second = same_change_twice(shape, path)
    send(deployment, first, second)
    poller = source(deployment)
    # When
    (batch,) = poller.drain()
    send(deployment, second)
    (later,) = poller.drain()
    # Then: one call per provider; every record acknowledged; nothing else enqueued (re-purge is off)
    assert len(batch.event["Records"]) == 2 and batch.failed == () and later.failed == ()
    assert_exactly(deployment, [path])
    assert deployment.queue_depth() == 0 and deployment.queue_depth(dead_letter=True) == 0


def test_a_new_upload_or_a_new_publish_is_purged_again(deployment: Deployment) -> None:
    # Given: the same object uploaded twice (new sequencer each time), the same content published twice
    key = f"{unique('again')}.html"
    s3 = deployment.stack.client("s3")
    topic = deployment.stack.resources.topic_arn
    for body in (b"v1", b"v2"):
        # When
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        deployment.stack.client("sns").publish(TopicArn=topic, Message=json.dumps({"paths": ["/feed.xml"]}))
        source(deployment).drain()
    # Then: purged twice each: a later change is a new change, not a duplicate
    assert_exactly(deployment, {f"/{key}": 2, "/feed.xml": 2})


def test_partial_progress_survives_a_retry_calls_only_the_provider_that_failed(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: medianova is down for the first invocation; fastly is fine
    path = f"/{unique('partial')}.html"
    deployment.cdn.inject("medianova", Fault(status=503, count=1000))
    tally.add(faults=1)
    send(deployment, s3_notification(s3_record(BUCKET, path.lstrip("/"))))
    poller = source(deployment, timeout_seconds=14.0)  # 14 - 10 - 1 (provider timeout) = 3 s of purge budget
    # When
    first = poller.poll_once()
    fastly_before = deployment.cdn.purged("fastly")
    medianova_attempts = len(deployment.cdn.received_by("medianova"))
    deployment.cdn.reset()  # medianova is back
    poller.drain()
    # Then: the record failed once; the retry called medianova only
    assert first is not None and len(first.failed) == 1
    assert fastly_before == [purged_entries(path)["fastly"]]
    assert medianova_attempts >= 1
    assert deployment.cdn.received_by("fastly") == []
    assert deployment.cdn.purged("medianova") == [purged_entries(path)["medianova"]]
    duplicates = len(deployment.cdn.purged("fastly"))
    tally.add(changes=1, lost=0, duplicates=duplicates)
    # And: the fault was logged and counted
    assert witness.logs.messages("provider attempt failed")
    assert witness.metrics()[("Retries", "medianova")] >= 1 or witness.metrics()[("Deferred", "medianova")] >= 1


def concurrent_message(deployment: Deployment, shape: str) -> tuple[dict[str, Any], str]:
    """Produce one message through the real wiring and receive it (without deleting it)."""
    resources, key = deployment.stack.resources, f"{unique('race')}.html"
    if shape == "S3 upload via EventBridge":
        deployment.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x")
    elif shape == "SNS publish":
        deployment.stack.client("sns").publish(TopicArn=resources.topic_arn, Message=json.dumps({"paths": [f"/{key}"]}))
    else:
        deployment.stack.client("events").put_events(
            Entries=[
                {
                    "Source": resources.published_event_source,
                    "DetailType": "Content Published",
                    "Detail": json.dumps({"paths": [f"/{key}"]}),
                }
            ]
        )
    sqs = deployment.stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=resources.queue_url, WaitTimeSeconds=2, AttributeNames=["All"])
    (message,) = messages["Messages"]
    return {"Records": [source(deployment)._record(message)]}, f"/{key}"


@pytest.mark.parametrize("shape", ["S3 upload via EventBridge", "SNS publish", "EventBridge put_events"])
def test_ten_concurrent_invocations_with_the_same_message_make_one_call(deployment: Deployment, shape: str) -> None:
    # Given: ten Lambda invocations racing on the same SQS message
    event, path = concurrent_message(deployment, shape)
    barrier = threading.Barrier(10)
    responses: list[Any] = []

    def invoke() -> None:
        barrier.wait()
        responses.append(deployment.app.lambda_handler(event, LocalLambdaContext()))

    # When
    threads = [threading.Thread(target=invoke) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then: one call per provider. Each invocation claims (provider, change) pairs on its own, so two of
    # them may each win one provider: then every invocation reports the record for redelivery.
    assert len(responses) == 10
    assert_exactly(deployment, [path])
    # When: SQS redelivers it once the race is over
    again = deployment.app.lambda_handler(event, LocalLambdaContext())
    # Then: it is acknowledged without a further call
    assert again == {"batchItemFailures": []}
    assert_exactly(deployment, [path])


def test_removed_then_created_in_one_batch_purge_once_after_both(deployment: Deployment) -> None:
    # Given: a delete and a later re-upload of one key, in the same batch
    key = f"{unique('order')}.html"
    removed = s3_notification(s3_record(BUCKET, key, sequencer="0001", event_name="ObjectRemoved:Delete"))
    created = s3_notification(s3_record(BUCKET, key, sequencer="0002", event_name="ObjectCreated:Put"))
    send(deployment, removed, created)
    # When
    (batch,) = source(deployment).drain()
    # Then: one invocation saw both, and purged each target once, after both changes had arrived
    assert len(batch.event["Records"]) == 2 and batch.failed == ()
    assert_exactly(deployment, [f"/{key}"])


def test_removed_and_created_in_separate_batches_each_purge_after_their_change(deployment: Deployment) -> None:
    # Given: the delete is processed before the re-upload arrives
    key = f"{unique('order')}.html"
    send(deployment, s3_notification(s3_record(BUCKET, key, sequencer="0001", event_name="ObjectRemoved:Delete")))
    source(deployment).drain()
    send(deployment, s3_notification(s3_record(BUCKET, key, sequencer="0002", event_name="ObjectCreated:Put")))
    source(deployment).drain()
    # Then: two changes, two purges: the last one follows the last change
    assert_exactly(deployment, {f"/{key}": 2})
