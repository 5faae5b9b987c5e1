"""Recreate the messaging and storage resources of ``template.yaml`` on moto server and DynamoDB Local.

Everything is read from the template (properties, parameter defaults, intrinsic functions), so the local
stack cannot drift from what ``sam deploy`` creates: a property this module does not know is an error,
not a silent difference. Supported resource types are the ones the data flow needs (SQS queues and queue
policies, the SNS topic and subscription, EventBridge rules and targets, the DynamoDB table); the others
(function, layer, log group, alarms) have no local counterpart and are skipped.

The content bucket is a parameter in the template (an existing bucket); it is created here with
EventBridge notifications enabled, which is the prerequisite the template documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import boto3
import yaml
from botocore.config import Config

from cdnpurge.notifications import set_eventbridge

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
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

# Logical ids the application and the local tooling rely on (see template.yaml).
QUEUE: Final = "PurgeQueue"
DEAD_LETTER_QUEUE: Final = "PurgeDeadLetterQueue"
TABLE: Final = "IdempotencyTable"
TOPIC: Final = "ContentPublishedTopic"
SUBSCRIPTION: Final = "ContentPublishedSubscription"
OBJECT_CHANGED_RULE: Final = "ObjectChangedRule"
CONTENT_PUBLISHED_RULE: Final = "ContentPublishedRule"
FUNCTION: Final = "PurgeFunction"
BUCKET_PARAMETER: Final = "ContentBucketName"
EVENT_SOURCE_PARAMETER: Final = "PublishedEventSource"


class TemplateError(Exception):
    """The template uses something this module cannot evaluate or provision faithfully."""


class ProvisionError(Exception):
    """A local service rejected a resource created from the template."""


# --------------------------------------------------------------------------------------------------
# Loading: CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...) as their long-form mappings.


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": "x"}`` and ``!Fn x`` into ``{"Fn::Fn": x}``."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{suffix}")
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, short-form intrinsic tags included."""
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document


# --------------------------------------------------------------------------------------------------
# Evaluating intrinsic functions against local physical ids.


class _NoValue:
    """``AWS::NoValue``: the property or list item disappears."""


_NO_VALUE: Final = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass
class _Evaluator:
    """Resolves intrinsic functions; ``attributes[logical_id]`` holds ``Ref`` and ``GetAtt`` values."""

    parameters: dict[str, str | list[str]]
    condition_definitions: dict[str, Any]
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    _conditions: dict[str, bool] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = self._FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic function {key} is not supported locally")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.condition_definitions:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self.condition_definitions[name]))
        return self._conditions[name]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        return self._attribute(name, "Ref")

    def _get_att(self, argument: list[Any]) -> str:
        logical_id, attribute = (self.resolve(part) for part in argument)
        return self._attribute(str(logical_id), str(attribute))

    def _attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            what = logical_id if attribute == "Ref" else f"{logical_id}.{attribute}"
            raise TemplateError(f"{what} is not available locally (unknown, or not provisioned yet)") from None

    def _sub(self, argument: str | list[Any]) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, variables = argument[0], self.resolve(argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return self._attribute(logical_id, attribute)
            value = self._ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _select(self, argument: list[Any]) -> Any:
        index, items = (self.resolve(part) for part in argument)
        return items[int(index)]

    def _split(self, argument: list[Any]) -> list[str]:
        delimiter, text = (self.resolve(part) for part in argument)
        return str(text).split(str(delimiter))

    def _equals(self, argument: list[Any]) -> bool:
        left, right = (self.resolve(part) for part in argument)
        return bool(left == right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _and(self, argument: list[Any]) -> bool:
        return all(self.resolve(part) for part in argument)

    def _or(self, argument: list[Any]) -> bool:
        return any(self.resolve(part) for part in argument)

    _FUNCTIONS: ClassVar[Mapping[str, Callable[[_Evaluator, Any], Any]]] = {
        "Ref": _ref,
        "Condition": condition,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
    }


def _references(value: Any) -> Iterator[str]:
    """Logical ids (or parameter names) that ``value`` refers to through Ref, GetAtt or Sub."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                yield argument
            elif key == "Fn::GetAtt" and isinstance(argument, list) and argument:
                yield str(argument[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith("!"):
                        yield name.split(".", 1)[0]
                if isinstance(argument, list):
                    yield from _references(argument[1:])
            else:
                yield from _references(argument)


def _creation_order(resources: Mapping[str, Any], wanted: set[str]) -> list[str]:
    """``wanted`` logical ids, each after the wanted resources it references (template order otherwise)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular reference through {logical_id}")
        visiting.add(logical_id)
        definition = resources[logical_id]
        depends_on = definition.get("DependsOn", [])
        for name in [
            *_references(definition.get("Properties", {})),
            *([depends_on] if isinstance(depends_on, str) else depends_on),
        ]:
            if name in wanted:
                visit(name)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        if logical_id in wanted:
            visit(logical_id)
    return order


def _parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str | list[str]]:
    declared: Mapping[str, Any] = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameters not declared in the template: {sorted(unknown)}")
    values: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no Default and no value was given")
        kind = str(spec.get("Type", "String"))
        is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
        values[name] = [item.strip() for item in raw.split(",")] if is_list else raw
    return values


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
# DynamoDB Local has no backups (UpdateContinuousBackups is an unknown operation), encryption or tags.
_TABLE_NOT_LOCAL: Final = {
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "Tags",
    "DeletionProtectionEnabled",
}


class _Provisioner:
    """Creates one supported resource type per ``_create_<type>`` method and records its attributes."""

    def __init__(self, clients: _Clients, evaluator: _Evaluator, *, stack_name: str) -> None:
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

    def _create_queue(self, logical_id: str, properties: dict[str, Any]) -> dict[str, str]:
        _check_properties(logical_id, properties, _SQS_QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
        name = properties.get("QueueName") or self._physical_name(logical_id)
        if properties.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
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
        name = properties.get("TopicName") or self._physical_name(logical_id)
        if properties.get("FifoTopic") and not name.endswith(".fifo"):
            name += ".fifo"
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

    _CREATORS: ClassVar[Mapping[str, Callable[[_Provisioner, str, dict[str, Any]], dict[str, str]]]] = {
        "AWS::SQS::Queue": _create_queue,
        "AWS::SQS::QueuePolicy": _create_queue_policy,
        "AWS::SNS::Topic": _create_topic,
        "AWS::SNS::Subscription": _create_subscription,
        "AWS::Events::Rule": _create_rule,
        "AWS::DynamoDB::Table": _create_table,
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
    # The template's documented prerequisite, done the README's way: S3 -> EventBridge on the content bucket.
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
    values = _parameter_values(template, {**(parameters or {}), BUCKET_PARAMETER: bucket_name})

    session = boto3.session.Session()

    def moto(service: str) -> Any:
        return local_client(session, service, endpoint=moto_endpoint, region=region)

    clients = _Clients(
        sqs=moto("sqs"),
        sns=moto("sns"),
        events=moto("events"),
        s3=moto("s3"),
        dynamodb=local_client(session, "dynamodb", endpoint=dynamodb_endpoint, region=region),
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
    evaluator = _Evaluator(parameters={**values, **pseudo}, condition_definitions=template.get("Conditions", {}))
    provisioner = _Provisioner(clients, evaluator, stack_name=stack_name)

    _create_bucket(clients.s3, bucket_name, region)
    supported = {
        logical_id
        for logical_id, definition in resources.items()
        if definition.get("Type") in _Provisioner._CREATORS
        and ("Condition" not in definition or evaluator.condition(definition["Condition"]))
    }
    for logical_id in _creation_order(resources, supported):
        definition = resources[logical_id]
        try:
            provisioner.create(logical_id, definition["Type"], definition.get("Properties", {}))
        except TemplateError:
            raise
        except Exception as exc:
            raise ProvisionError(f"{logical_id} ({definition['Type']}): {exc}") from exc

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
        parameters={name: ",".join(v) if isinstance(v, list) else v for name, v in values.items()},
        function_environment={key: str(value) for key, value in environment.items()},
        physical_ids={logical_id: attrs["Ref"] for logical_id, attrs in attributes.items()},
        skipped_properties=tuple(provisioner.skipped),
    )
