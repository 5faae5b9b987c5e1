"""A deployed cdnpurge stack as CloudFormation reports it, and the pause record the operator's tools share.

`cdnpurge doctor`, `pause`, `resume` and `canary` all start from the stack's name: DescribeStacks gives its
region (the stack id is an ARN), parameters and outputs; ListStackResources the physical id of each logical
id of template.yaml. Nothing is guessed from naming conventions.

The pause record: `cdnpurge pause` disables the function's SQS event source mapping (changes wait in the
queue, up to its retention) and writes why, who and when into the SSM parameter `/cdnpurge/<stack>/paused`;
`resume` enables the mapping and deletes it. `doctor` and `status --stack` show it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cdnpurge.cli.output import external

if TYPE_CHECKING:
    from cdnpurge.cli.command import Context

# Logical ids of template.yaml the tools read.
FUNCTION: Final = "PurgeFunction"
WEBHOOK_FUNCTION: Final = "WebhookFunction"
QUEUE: Final = "PurgeQueue"
DEAD_LETTER_QUEUE: Final = "PurgeDeadLetterQueue"
OBJECT_CHANGED_RULE: Final = "ObjectChangedRule"
ALARM_EMAIL_TOPIC: Final = "AlarmEmailTopic"
LOG_GROUP: Final = "PurgeFunctionLogGroup"
TRAIL_TABLE_OUTPUT: Final = "PurgeTrailTableName"
# Stack statuses in which the stack's resources exist as its template says.
_SETTLED: Final = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
REASON_MAX_CHARS: Final = 500


class StackReadError(Exception):
    """The stack cannot be read or is not a cdnpurge stack; the message says which and what to do."""


@dataclass(frozen=True)
class DeployedStack:
    """What CloudFormation says about one stack."""

    name: str
    region: str
    status: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]
    physical_ids: Mapping[str, str]

    @property
    def settled(self) -> bool:
        return self.status in _SETTLED

    def physical(self, logical_id: str) -> str:
        """The physical id of `logical_id`; a one-line error when the stack has no such resource."""
        try:
            return self.physical_ids[logical_id]
        except KeyError:
            raise StackReadError(f"stack {self.name} has no {logical_id}: is it a cdnpurge stack?") from None


def client_in(context: Context, service: str, region: str | None = None) -> Any:
    """The client the context injects for `service` (tests), else boto3's in `region` (the stack's own: its
    resources are there whatever the caller's default region)."""
    injected = getattr(context, service, None)
    if injected is not None:
        return injected
    import boto3

    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def read_stack(cloudformation: Any, name: str) -> DeployedStack:
    """DescribeStacks and ListStackResources for `name` (an unknown stack is a StackReadError)."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise StackReadError(
                f"no stack {name!r} in this account and region (set AWS_REGION or --region to the stack's)"
            ) from None
        raise
    stack = stacks[0]
    region = str(stack["StackId"]).split(":")[3]
    resources = {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name)
        for summary in page["StackResourceSummaries"]
    }
    return DeployedStack(
        name=name,
        region=region,
        status=str(stack["StackStatus"]),
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        physical_ids=resources,
    )


def queue_arn(sqs: Any, queue_url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def event_source_mapping(lambda_client: Any, function_name: str, source_arn: str) -> dict[str, Any]:
    """The function's event source mapping from `source_arn` (the purge queue)."""
    found = [
        mapping
        for page in lambda_client.get_paginator("list_event_source_mappings").paginate(
            FunctionName=function_name, EventSourceArn=source_arn
        )
        for mapping in page["EventSourceMappings"]
    ]
    if not found:
        raise StackReadError(f"{function_name} has no event source mapping from {source_arn}: redeploy the stack")
    return dict(found[0])


# --- the pause record ------------------------------------------------------------------------------


def pause_parameter(stack_name: str) -> str:
    return f"/cdnpurge/{stack_name}/paused"


@dataclass(frozen=True)
class PauseRecord:
    """Why purging is paused, who paused it, when (ISO 8601 UTC)."""

    reason: str
    by: str
    at: str

    def describe(self) -> str:
        """One line for doctor, status and pause. The record is read back from SSM, where anyone allowed to
        write the parameter (the console, a script) may have put anything: each part is one bounded field."""
        reason = external(self.reason, REASON_MAX_CHARS)
        return f"paused since {external(self.at, 40)} by {external(self.by, 100)}: {reason}"


def read_pause(ssm: Any, stack_name: str) -> PauseRecord | None:
    """The stack's pause record, None when none is kept (purging runs, or was paused by hand)."""
    from botocore.exceptions import ClientError

    try:
        value = ssm.get_parameter(Name=pause_parameter(stack_name))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    try:
        document = json.loads(value)
        return PauseRecord(str(document["reason"]), str(document["by"]), str(document["at"]))
    except (ValueError, KeyError, TypeError):
        return PauseRecord(reason=value[:REASON_MAX_CHARS], by="?", at="?")


def write_pause(ssm: Any, stack_name: str, record: PauseRecord) -> None:
    document = json.dumps({"reason": record.reason, "by": record.by, "at": record.at})
    ssm.put_parameter(Name=pause_parameter(stack_name), Value=document, Type="String", Overwrite=True)


def clear_pause(ssm: Any, stack_name: str) -> None:
    from botocore.exceptions import ClientError

    try:
        ssm.delete_parameter(Name=pause_parameter(stack_name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
