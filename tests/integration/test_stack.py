"""The local stack is the template, for real: DynamoDB Local and moto server on loopback, wired by
``template.yaml``, delivering S3 -> EventBridge -> SQS, SNS -> SQS and ``put_events`` -> SQS.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3
import pytest

from cdnpurge_local.cfn import TemplateError, load_template
from cdnpurge_local.provision import provision
from cdnpurge_local.servers import (
    DynamoDBLocal,
    DynamoDBLocalNotInstalledError,
    ServerStartError,
    locate_dynamodb_local,
)
from cdnpurge_local.stack import TEMPLATE_PATH, LocalStack

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

RECEIVE_TIMEOUT_SECONDS = 15.0


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(bucket_name="cdnpurge-it-stack") as local_stack:
        yield local_stack


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def receive_matching(sqs: SQSClient, queue_url: str, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Receive (and delete) messages until one whose JSON body ``matches``; others are discarded."""
    deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
    seen: list[str] = []
    while time.monotonic() < deadline:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body: dict[str, Any] = json.loads(message["Body"])
            if matches(body):
                return body
            seen.append(message["Body"])
    raise AssertionError(f"no matching message within {RECEIVE_TIMEOUT_SECONDS} s; other messages: {seen}")


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of LISTEN sockets on ``port``, read from /proc/net/tcp and tcp6 (Linux)."""
    addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address_hex)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            addresses.add(ipaddress.ip_address(words))
    return addresses


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_idempotency_table_has_key_id_and_ttl_on_expiration(stack: LocalStack, template: dict[str, Any]) -> None:
    # Given the table the template defines (Powertools Idempotency defaults)
    declared = properties(template, "IdempotencyTable")
    dynamodb = stack.client("dynamodb")

    # When DynamoDB Local describes it
    table = dynamodb.describe_table(TableName=stack.resources.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.resources.table_name)["TimeToLiveDescription"]

    # Then key, billing and TTL are the template's, and those are Powertools' defaults
    assert table["KeySchema"] == declared["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert declared["BillingMode"] == {"Ref": "TableCapacityMode"}  # a cost switch, on demand by default
    assert table.get("BillingModeSummary", {}).get("BillingMode") == stack.resources.parameters["TableCapacityMode"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}
    assert stack.resources.skipped_properties == ("IdempotencyTable.PointInTimeRecoverySpecification",)


def test_queue_redrives_to_dead_letter_queue_as_the_template_says(stack: LocalStack, template: dict[str, Any]) -> None:
    # Given the queue properties in the template
    declared = properties(template, "PurgeQueue")
    declared_dlq = properties(template, "PurgeDeadLetterQueue")
    sqs = stack.client("sqs")

    # When moto reports the queues' attributes
    queue = sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=stack.resources.dead_letter_queue_url, AttributeNames=["All"])["Attributes"]

    # Then redrive, visibility and retention match the template
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.resources.dead_letter_queue_arn,
        "maxReceiveCount": declared["RedrivePolicy"]["maxReceiveCount"],
    }
    assert declared["RedrivePolicy"]["maxReceiveCount"] == 5
    assert queue["VisibilityTimeout"] == str(declared["VisibilityTimeout"])
    assert dlq["MessageRetentionPeriod"] == str(declared_dlq["MessageRetentionPeriod"])
    assert dlq["QueueArn"] == stack.resources.dead_letter_queue_arn
    policy = json.loads(queue["Policy"])
    principals = {statement["Principal"]["Service"] for statement in policy["Statement"]}
    assert principals == {"sns.amazonaws.com", "events.amazonaws.com"}


def test_undeliverable_events_dead_letter_to_the_delivery_queue_as_the_template_says(stack: LocalStack) -> None:
    # Given the provisioned delivery dead-letter queue
    delivery_dlq = stack.resources.physical_ids["DeliveryDeadLetterQueue"]
    sqs, events, sns = stack.client("sqs"), stack.client("events"), stack.client("sns")
    attributes = sqs.get_queue_attributes(QueueUrl=delivery_dlq, AttributeNames=["QueueArn", "Policy"])["Attributes"]

    # Then both rules' targets retry, then dead-letter there; so does the SNS subscription
    for rule in (stack.resources.object_changed_rule_name, stack.resources.content_published_rule_name):
        (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": attributes["QueueArn"]}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    subscription = sns.get_subscription_attributes(SubscriptionArn=stack.resources.subscription_arn)["Attributes"]
    assert json.loads(subscription["RedrivePolicy"]) == {"deadLetterTargetArn": attributes["QueueArn"]}
    # And only those senders may use it
    policy = json.loads(attributes["Policy"])
    assert {s["Principal"]["Service"] for s in policy["Statement"]} == {"sns.amazonaws.com", "events.amazonaws.com"}
    # And the topic is encrypted with the stack's key
    topic = sns.get_topic_attributes(TopicArn=stack.resources.topic_arn)["Attributes"]
    key = stack.client("kms").describe_key(KeyId=topic["KmsMasterKeyId"])["KeyMetadata"]
    assert key["KeyId"] == stack.resources.physical_ids["TopicKey"]


def test_s3_put_reaches_queue_as_eventbridge_object_created(stack: LocalStack) -> None:
    # Given a key with a space and a plus (URL-encoded in the event, as S3 notifications are)
    key = f"articles/hello world+{uuid.uuid4().hex[:8]}.html"

    # When the object is written to the content bucket
    stack.client("s3").put_object(Bucket=stack.resources.bucket_name, Key=key, Body=b"<html></html>")

    # Then the ObjectChangedRule delivers the EventBridge event itself (no envelope) to the queue
    body = receive_matching(
        stack.client("sqs"),
        stack.resources.queue_url,
        lambda b: b.get("detail", {}).get("object", {}).get("key") == quote_plus(key, safe="/"),
    )
    assert body["source"] == "aws.s3"
    assert body["detail-type"] == "Object Created"
    assert body["detail"]["bucket"]["name"] == stack.resources.bucket_name
    assert body["detail"]["reason"] == "ObjectCreated"
    assert body["resources"] == [f"arn:aws:s3:::{stack.resources.bucket_name}"]


def test_s3_delete_reaches_queue_as_eventbridge_object_deleted(stack: LocalStack) -> None:
    # Given an existing object
    key = f"articles/gone-{uuid.uuid4().hex[:8]}.html"
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.resources.bucket_name, Key=key, Body=b"x")

    # When it is deleted
    s3.delete_object(Bucket=stack.resources.bucket_name, Key=key)

    # Then an "Object Deleted" event for it arrives
    body = receive_matching(
        stack.client("sqs"),
        stack.resources.queue_url,
        lambda b: b.get("detail-type") == "Object Deleted" and b["detail"]["object"]["key"] == key,
    )
    assert body["detail"]["reason"] == "ObjectRemoved"


def test_sns_publish_reaches_queue_as_notification_envelope(stack: LocalStack) -> None:
    # Given a "content published" message
    message = json.dumps({"paths": ["/articles/hello"], "marker": uuid.uuid4().hex})

    # When it is published on the topic
    published = stack.client("sns").publish(TopicArn=stack.resources.topic_arn, Message=message)

    # Then the queue receives the SNS envelope (RawMessageDelivery false), whose MessageId is the publish id
    body = receive_matching(stack.client("sqs"), stack.resources.queue_url, lambda b: b.get("Message") == message)
    assert body["Type"] == "Notification"
    assert body["MessageId"] == published["MessageId"]
    assert body["TopicArn"] == stack.resources.topic_arn
    assert {"Timestamp", "Signature", "SignatureVersion", "SigningCertURL"} <= body.keys()


def test_put_events_content_published_reaches_queue(stack: LocalStack) -> None:
    # Given a CMS event with the template's source and detail-type
    detail = {"paths": ["/articles/hello"], "marker": uuid.uuid4().hex}

    # When it is put on the default bus
    response = stack.client("events").put_events(
        Entries=[
            {
                "Source": stack.resources.published_event_source,
                "DetailType": "Content Published",
                "Detail": json.dumps(detail),
            }
        ]
    )

    # Then ContentPublishedRule delivers the event to the queue, with the id put_events returned
    assert response["FailedEntryCount"] == 0
    body = receive_matching(stack.client("sqs"), stack.resources.queue_url, lambda b: b.get("detail") == detail)
    assert body["source"] == stack.resources.published_event_source == "cms.content"
    assert body["detail-type"] == "Content Published"
    assert body["id"] == response["Entries"][0]["EventId"]


def test_events_the_rules_do_not_match_stay_off_the_queue(stack: LocalStack) -> None:
    # Given events from another source and another bucket, then a matching sentinel
    events = stack.client("events")
    marker = uuid.uuid4().hex
    events.put_events(
        Entries=[
            {"Source": "other.app", "DetailType": "Content Published", "Detail": json.dumps({"m": marker})},
            {
                "Source": stack.resources.published_event_source,
                "DetailType": "Content Drafted",
                "Detail": json.dumps({"m": marker}),
            },
        ]
    )
    stack.client("s3").create_bucket(Bucket="cdnpurge-it-other-bucket")
    stack.client("s3").put_bucket_notification_configuration(
        Bucket="cdnpurge-it-other-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    stack.client("s3").put_object(Bucket="cdnpurge-it-other-bucket", Key=marker, Body=b"x")
    sentinel = {"sentinel": marker}
    events.put_events(
        Entries=[
            {
                "Source": stack.resources.published_event_source,
                "DetailType": "Content Published",
                "Detail": json.dumps(sentinel),
            }
        ]
    )

    # When the queue is read up to the sentinel
    seen: list[dict[str, Any]] = []

    def record(body: dict[str, Any]) -> bool:
        seen.append(body)
        return body.get("detail") == sentinel

    receive_matching(stack.client("sqs"), stack.resources.queue_url, record)

    # Then none of the non-matching events got there
    assert not [body for body in seen if marker in json.dumps(body) and body.get("detail") != sentinel]


def test_parameter_overrides_reach_rules_and_function_environment(stack: LocalStack) -> None:
    # When the template is provisioned again with overrides, as `sam deploy --parameter-overrides` would
    resources = provision(
        TEMPLATE_PATH,
        moto_endpoint=stack.moto.endpoint,
        dynamodb_endpoint=stack.dynamodb.endpoint,
        bucket_name="cdnpurge-it-overrides",
        region=stack.region,
        parameters={"PublishedEventSource": "cms.other", "LogLevel": "DEBUG"},
        stack_name="overrides",
    )

    # Then the rule pattern and the function's environment use them
    rule = stack.client("events").describe_rule(Name=resources.content_published_rule_name)
    assert json.loads(rule["EventPattern"]) == {"source": ["cms.other"], "detail-type": ["Content Published"]}
    bucket_rule = stack.client("events").describe_rule(Name=resources.object_changed_rule_name)
    assert json.loads(bucket_rule["EventPattern"])["detail"] == {"bucket": {"name": ["cdnpurge-it-overrides"]}}
    assert resources.function_environment["LOG_LEVEL"] == "DEBUG"
    assert resources.function_environment["IDEMPOTENCY_TABLE_NAME"] == "overrides-IdempotencyTable"


def test_a_template_property_the_provisioner_does_not_reproduce_is_an_error(stack: LocalStack, tmp_path: Path) -> None:
    # Given a template whose queue gained a property the local stack does not know
    original = TEMPLATE_PATH.read_text(encoding="utf-8")
    changed = original.replace("      VisibilityTimeout: 720\n", "      VisibilityTimeout: 720\n      Fancy: 1\n")
    assert changed != original
    template_path = tmp_path / "template.yaml"
    template_path.write_text(changed, encoding="utf-8")

    # When it is provisioned, then the drift is reported instead of silently ignored
    with pytest.raises(TemplateError, match=r"PurgeQueue: properties \['Fancy'\]"):
        provision(
            template_path,
            moto_endpoint=stack.moto.endpoint,
            dynamodb_endpoint=stack.dynamodb.endpoint,
            bucket_name="cdnpurge-it-drift",
            region=stack.region,
            stack_name="drift",
        )


def test_servers_listen_on_loopback_only(stack: LocalStack) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads /proc/net/tcp (Linux)")
    for server in (stack.dynamodb, stack.moto):
        addresses = listening_addresses(server.port)
        assert addresses, f"{server.name} is not listening on {server.port}"
        assert all(is_loopback(address) for address in addresses), (server.name, addresses)


def test_lambda_environment_points_boto3_at_the_local_stack(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the handler's environment applied to the process
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in stack.lambda_environment().items():
        monkeypatch.setenv(key, value)

    # When plain boto3 clients are built from it, as the handler does
    table_name = os.environ["IDEMPOTENCY_TABLE_NAME"]
    table = boto3.client("dynamodb").describe_table(TableName=table_name)["Table"]
    queues = boto3.client("sqs").list_queues()["QueueUrls"]

    # Then they reach DynamoDB Local and moto, and the template's variables are resolved locally
    assert table["TableName"] == stack.resources.table_name
    assert stack.resources.queue_url in queues
    assert os.environ["PURGE_CONFIG"] == "ssm:/cdnpurge/core/config"
    assert os.environ["POWERTOOLS_SERVICE_NAME"] == "cdnpurge"


def test_stop_closes_the_ports_and_ends_the_processes() -> None:
    # Given a running stack of its own
    with LocalStack(bucket_name="cdnpurge-it-lifecycle") as own:
        ports = [own.dynamodb.port, own.moto.port]
        pids = [own.dynamodb.pid, own.moto.pid]
        assert all(port_is_open(port) for port in ports)

    # When it has exited, then nothing listens and the processes are gone
    assert not any(port_is_open(port) for port in ports)
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_server_that_dies_at_start_reports_its_output(tmp_path: Path) -> None:
    # Given a DynamoDB Local "install" without the jar's libraries
    (tmp_path / "DynamoDBLocal.jar").write_bytes(b"not a jar")
    server = DynamoDBLocal(install_dir=tmp_path, startup_timeout=30)

    # When it is started, then the error quotes the process output and nothing is left running
    with pytest.raises(ServerStartError, match=r"(?s)exited with status \d+.*output:\n.*\S") as error, server:
        pass
    assert "DynamoDB Local" in str(error.value)
    assert server.pid is None


def test_missing_dynamodb_local_says_to_run_make_install(tmp_path: Path) -> None:
    with pytest.raises(DynamoDBLocalNotInstalledError, match="make install"):
        locate_dynamodb_local(tmp_path)
