"""Recreate the messaging and storage resources of ``template.yaml`` on moto server and DynamoDB Local.

Everything is read from the template (properties, parameter defaults, intrinsic functions), so the local
stack cannot drift from what ``sam deploy`` creates: a property this module does not know is an error,
not a silent difference. Supported resource types are the ones the data flow needs (SQS queues and queue
policies, the SNS topic and subscription, EventBridge rules and targets, the DynamoDB table, the KMS key
the topic is encrypted with); the layer, dashboard and topic policy have no local counterpart and are
skipped. The function (never run by moto: tests run the handler in-process), its event source mapping, log
group and alarms exist on moto for the operator's tools, in a CloudFormation stack of the stack's name
(``cdnpurge_local.cfn_stack``).

The content bucket is a parameter in the template (an existing bucket); it is created here with
EventBridge notifications enabled, which is the prerequisite the template documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import boto3
from botocore.config import Config

from cdnpurge.cli.deployed import DEAD_LETTER_QUEUE, FUNCTION, OBJECT_CHANGED_RULE, QUEUE
from cdnpurge.cli.notifications import set_eventbridge
from cdnpurge_local.cfn import Evaluator, TemplateError, creation_order, load_template, parameter_values
from cdnpurge_local.cfn_stack import register_stack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import TagTypeDef as KmsTagTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "DEFAULT_STACK_NAME",
    "DUMMY_CREDENTIALS",
    "LocalResources",
    "ProvisionError",
    "TemplateError",
    "load_template",
    "local_client",
    "provision",
]

DEFAULT_STACK_NAME: Final = "cdnpurge-local"
#: Credentials moto and DynamoDB Local accept; never valid anywhere else.
DUMMY_CREDENTIALS: Final[Mapping[str, str]] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}

# Logical ids the application and the local tooling rely on (see template.yaml); those the operator's tools
# read too come from `cdnpurge.cli.deployed`.
TABLE: Final = "IdempotencyTable"
TOPIC: Final = "ContentPublishedTopic"
SUBSCRIPTION: Final = "ContentPublishedSubscription"
CONTENT_PUBLISHED_RULE: Final = "ContentPublishedRule"
BUCKET_PARAMETER: Final = "ContentBucketName"
EVENT_SOURCE_PARAMETER: Final = "PublishedEventSource"


class ProvisionError(Exception):
    """A local service rejected a resource created from the template."""


# --------------------------------------------------------------------------------------------------
# Provisioning.


@dataclass(frozen=True)
class LocalResources:
    """Physical ids of what :func:`provision` created, keyed the way the template names things."""

    region: str
    account_id: str
    stack_name: str
    bucket_name: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    table_name: str
    topic_arn: str
    subscription_arn: str
    object_changed_rule_name: str
    content_published_rule_name: str
    published_event_source: str
    #: Resolved template parameters (lists joined with commas, as ``--parameter-overrides`` takes them).
    parameters: Mapping[str, str]
    #: ``PurgeFunction``'s ``Environment.Variables`` resolved against the local resources.
    function_environment: Mapping[str, str]
    #: ``Ref`` value of every provisioned logical id.
    physical_ids: Mapping[str, str]
    #: Template properties that have no local equivalent and were skipped, as ``Logical.Property``.
    skipped_properties: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Clients:
    sqs: SQSClient
    sns: SNSClient
    events: EventBridgeClient
    s3: S3Client
    dynamodb: DynamoDBClient
    kms: KMSClient


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _check_properties(logical_id: str, properties: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(properties) - known
    if unknown:
        raise TemplateError(
            f"{logical_id}: properties {sorted(unknown)} are not reproduced locally; "
            "teach cdnpurge_local.provision about them so the local stack keeps matching the template"
        )


_SQS_QUEUE_ATTRIBUTES: Final = {
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
}
_SNS_TOPIC_ATTRIBUTES: Final = {
    "ContentBasedDeduplication",
    "DisplayName",
    "FifoTopic",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
}
_SNS_SUBSCRIPTION_ATTRIBUTES: Final = {
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
}
_RULE_PROPERTIES: Final = {
    "Description",
    "EventBusName",
    "EventPattern",
    "Name",
    "RoleArn",
    "State",
    "Targets",
}
_TABLE_CREATE_PROPERTIES: Final = {
    "AttributeDefinitions",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "KeySchema",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
}
_KMS_KEY_PROPERTIES: Final = {"Description", "EnableKeyRotation", "KeyPolicy", "KeySpec", "KeyUsage", "Tags"}
# DynamoDB Local has no backups (UpdateContinuousBackups is an unknown operation), encryption or tags.
_TABLE_NOT_LOCAL: Final = {
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "Tags",
    "DeletionProtectionEnabled",
}


class _Provisioner:
    """Creates one supported resource type per ``_create_<type>`` method and records its attributes."""

    def __init__(self, clients: _Clients, evaluator: Evaluator, *, stack_name: str) -> None:
        self._clients = clients
        self._evaluator = evaluator
        self._stack_name = stack_name
        self.skipped: list[str] = []

    def create(self, logical_id: str, resource_type: str, raw_properties: Mapping[str, Any]) -> None:
        properties: dict[str, Any] = self._evaluator.resolve(dict(raw_properties))
        create = self._CREATORS[resource_type]
        self._evaluator.attributes[logical_id] = create(self, logical_id, properties)

    def _physical_name(self, logical_id: str) -> str:
        # CloudFormation appends a random suffix; locally one stack per server makes it unnecessary.
        return f"{self._stack_name}-{logical_id}"

    def _name(self, logical_id: str, properties: Mapping[str, Any], name_property: str, fifo_property: str) -> str:
        """The given name, else the physical name; a FIFO queue's or topic's name ends in ``.fifo``."""
        name = str(properties.get(name_property) or self._physical_name(logical_id))
        return f"{name}.fifo" if properties.get(fifo_property) and not name.endswith(".fifo") else name

    def _create_queue(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _SQS_QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
        name = self._name(logical_id, properties, "QueueName", "FifoQueue")
        attributes = {key: _attribute_text(value) for key, value in properties.items() if key in _SQS_QUEUE_ATTRIBUTES}
        tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
        sqs = self._clients.sqs
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]  # type: ignore[arg-type]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _create_queue_policy(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, {"PolicyDocument", "Queues"})
        policy = json.dumps(properties["PolicyDocument"])
        for queue_url in properties["Queues"]:
            self._clients.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})
        return {"Ref": self._physical_name(logical_id)}

    def _create_topic(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _SNS_TOPIC_ATTRIBUTES | {"TopicName", "Tags"})
        name = self._name(logical_id, properties, "TopicName", "FifoTopic")
        attributes = {key: _attribute_text(value) for key, value in properties.items() if key in _SNS_TOPIC_ATTRIBUTES}
        arn = self._clients.sns.create_topic(Name=name, Attributes=attributes, Tags=properties.get("Tags", []))[
            "TopicArn"
        ]
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _create_subscription(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _SNS_SUBSCRIPTION_ATTRIBUTES | {"TopicArn", "Protocol", "Endpoint"})
        attributes = {
            key: _attribute_text(value) for key, value in properties.items() if key in _SNS_SUBSCRIPTION_ATTRIBUTES
        }
        arn = self._clients.sns.subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=properties["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return {"Ref": arn, "Arn": arn}

    def _create_rule(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _RULE_PROPERTIES)
        name = properties.get("Name") or self._physical_name(logical_id)
        bus = properties.get("EventBusName", "default")
        optional = {key: properties[key] for key in ("Description", "RoleArn", "State") if key in properties}
        events = self._clients.events
        arn = events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(properties["EventPattern"]), **optional
        )["RuleArn"]
        targets = properties.get("Targets", [])
        if targets:
            failed = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
            if failed["FailedEntryCount"]:
                raise ProvisionError(f"{logical_id}: targets rejected: {failed['FailedEntries']}")
        return {"Ref": name, "Arn": arn}

    def _create_table(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        known = _TABLE_CREATE_PROPERTIES | _TABLE_NOT_LOCAL | {"TableName", "TimeToLiveSpecification"}
        _check_properties(logical_id, properties, known)
        name = properties.get("TableName") or self._physical_name(logical_id)
        dynamodb = self._clients.dynamodb
        create = {key: value for key, value in properties.items() if key in _TABLE_CREATE_PROPERTIES}
        table = dynamodb.create_table(TableName=name, **create)["TableDescription"]
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ttl = properties.get("TimeToLiveSpecification")
        if ttl is not None:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )
        self.skipped.extend(f"{logical_id}.{key}" for key in sorted(properties.keys() & _TABLE_NOT_LOCAL))
        # DynamoDB Local reports a fixed fake region/account in ARNs; keep the ARN it gives.
        return {"Ref": name, "Arn": table["TableArn"]}

    def _create_key(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _KMS_KEY_PROPERTIES)
        optional = {key: properties[key] for key in ("Description", "KeySpec", "KeyUsage") if key in properties}
        tags: list[KmsTagTypeDef] = [
            {"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])
        ]
        kms = self._clients.kms
        key = kms.create_key(Policy=json.dumps(properties["KeyPolicy"]), Tags=tags, **optional)["KeyMetadata"]
        if properties.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        return {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}

    _CREATORS: ClassVar[Mapping[str, Callable[[_Provisioner, str, dict[str, Any]], dict[str, str]]]] = {
        "AWS::SQS::Queue": _create_queue,
        "AWS::SQS::QueuePolicy": _create_queue_policy,
        "AWS::SNS::Topic": _create_topic,
        "AWS::SNS::Subscription": _create_subscription,
        "AWS::Events::Rule": _create_rule,
        "AWS::DynamoDB::Table": _create_table,
        "AWS::KMS::Key": _create_key,
    }


def local_client(
    session: boto3.session.Session, service: str, *, endpoint: str, region: str, config: Config | None = None
) -> Any:
    """A boto3 client for ``service`` at a local ``endpoint`` with the dummy credentials.

    Typed ``Any`` on purpose: callers annotate the variable with the service's client type.
    """
    factory: Callable[..., Any] = session.client
    return factory(
        service,
        endpoint_url=endpoint,
        region_name=region,
        config=config,
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
    )


def _create_bucket(s3: S3Client, bucket_name: str, region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket_name)
    else:
        s3.create_bucket(Bucket=bucket_name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    # The template's documented prerequisite, done the deploy guide's way: S3 -> EventBridge on the content bucket.
    set_eventbridge(s3, bucket_name, enabled=True)


def provision(
    template_path: Path,
    *,
    moto_endpoint: str,
    dynamodb_endpoint: str,
    bucket_name: str,
    region: str,
    parameters: Mapping[str, str] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
) -> LocalResources:
    """Create the template's queues, topic, subscription, rules, queue policy and table, plus the bucket.

    ``parameters`` override the template's defaults (as ``--parameter-overrides`` would);
    ``ContentBucketName`` is always ``bucket_name``.
    """
    template = load_template(template_path)
    resources: Mapping[str, Any] = template["Resources"]
    values = parameter_values(template, {**(parameters or {}), BUCKET_PARAMETER: bucket_name})

    session = boto3.session.Session()

    def moto(service: str) -> Any:
        return local_client(session, service, endpoint=moto_endpoint, region=region)

    clients = _Clients(
        sqs=moto("sqs"),
        sns=moto("sns"),
        events=moto("events"),
        s3=moto("s3"),
        dynamodb=local_client(session, "dynamodb", endpoint=dynamodb_endpoint, region=region),
        kms=moto("kms"),
    )
    account_id: str = moto("sts").get_caller_identity()["Account"]
    pseudo: dict[str, str | list[str]] = {
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::Region": region,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
        "AWS::URLSuffix": "amazonaws.com",
    }
    evaluator = Evaluator(parameters={**values, **pseudo}, condition_definitions=template.get("Conditions", {}))
    provisioner = _Provisioner(clients, evaluator, stack_name=stack_name)

    _create_bucket(clients.s3, bucket_name, region)
    supported = {
        logical_id
        for logical_id, definition in resources.items()
        if definition.get("Type") in _Provisioner._CREATORS
        and ("Condition" not in definition or evaluator.condition(definition["Condition"]))
    }
    for logical_id in creation_order(resources, supported):
        definition = resources[logical_id]
        try:
            provisioner.create(logical_id, definition["Type"], definition.get("Properties", {}))
        except TemplateError:
            raise
        except Exception as exc:
            raise ProvisionError(f"{logical_id} ({definition['Type']}): {exc}") from exc

    resolved = {name: ",".join(v) if isinstance(v, list) else v for name, v in values.items()}
    # What CloudFormation reports for the stack (`cdnpurge doctor`, `pause`, `canary` read it).
    operated = register_stack(
        {"cloudformation": moto("cloudformation"), "cloudwatch": moto("cloudwatch")},
        template,
        evaluator,
        stack_name=stack_name,
        parameters=resolved,
    )
    environment = evaluator.resolve(
        resources[FUNCTION].get("Properties", {}).get("Environment", {}).get("Variables", {})
    )
    attributes = evaluator.attributes
    return LocalResources(
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        bucket_name=bucket_name,
        queue_url=attributes[QUEUE]["QueueUrl"],
        queue_arn=attributes[QUEUE]["Arn"],
        dead_letter_queue_url=attributes[DEAD_LETTER_QUEUE]["QueueUrl"],
        dead_letter_queue_arn=attributes[DEAD_LETTER_QUEUE]["Arn"],
        table_name=attributes[TABLE]["Ref"],
        topic_arn=attributes[TOPIC]["TopicArn"],
        subscription_arn=attributes[SUBSCRIPTION]["Arn"],
        object_changed_rule_name=attributes[OBJECT_CHANGED_RULE]["Ref"],
        content_published_rule_name=attributes[CONTENT_PUBLISHED_RULE]["Ref"],
        published_event_source=str(values[EVENT_SOURCE_PARAMETER]),
        parameters=resolved,
        function_environment={key: str(value) for key, value in environment.items()},
        physical_ids={**{logical_id: attrs["Ref"] for logical_id, attrs in attributes.items()}, **operated},
        skipped_properties=tuple(provisioner.skipped),
    )
