"""The local stack as CloudFormation reports it: a stack on moto server that `cdnpurge doctor`, `pause` and
`canary` read with DescribeStacks and ListStackResources, exactly as they read a deployed one.

``provision`` creates the data flow itself (queues, topics, rules, tables on moto and DynamoDB Local). This
module then creates a CloudFormation stack of the same name on moto whose resources *are* those: a queue,
topic or rule named as an existing one is adopted (CreateQueue and CreateTopic are idempotent for an existing
name; PutRule with the same name and pattern changes nothing), so ListStackResources reports the physical ids
the data flow uses. The pieces the data flow does not need but an operator's tools do are created by the
stack itself: the purge function (code never run locally), its SQS event source mapping and its log group.
The stack's parameters are the template's, resolved; its outputs are the template's outputs that name
resources known locally.

moto's CloudFormation has no AWS::CloudWatch::Alarm: the alarms are created with PutMetricAlarm under the
name CloudFormation gives an unnamed alarm (``<stack>-<logical id>-<suffix>``), with the template's actions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from cdnpurge_local.cfn import Evaluator, TemplateError

#: SAM names the event source mapping of event `PurgeQueueEvent` on `PurgeFunction` like this.
EVENT_SOURCE_MAPPING: Final = "PurgeFunctionPurgeQueueEvent"
FUNCTION: Final = "PurgeFunction"
LOG_GROUP: Final = "PurgeFunctionLogGroup"
ROLE: Final = "PurgeFunctionRole"
#: The template's functions as the stack reports them: (function, its role, its log group).
FUNCTIONS: Final = (
    (FUNCTION, ROLE, LOG_GROUP),
    ("WebhookFunction", "WebhookFunctionRole", "WebhookFunctionLogGroup"),
)
_ADOPTED_TYPES: Final = {"AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::Events::Rule"}
_ALARM_PROPERTIES: Final = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "OKActions",
    "Metrics",
)


def _function_resources(
    template: Mapping[str, Any], evaluator: Evaluator, stack_name: str, ids: tuple[str, str, str]
) -> dict[str, Any]:
    """A function of the template as the stack reports it: its role, its log group, and the function with the
    template's runtime, handler, timeout and memory (its code is never run locally). `ids`: the logical ids of
    the function, its role and its log group."""
    function_id, role_id, log_group_id = ids
    function = template["Resources"][function_id]["Properties"]
    return {
        role_id: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": f"{stack_name}-{role_id}",
                "AssumeRolePolicyDocument": evaluator.resolve(
                    template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
                ),
            },
        },
        log_group_id: {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": f"{stack_name}-{log_group_id}"}},
        function_id: {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": f"{stack_name}-{function_id}",
                "Runtime": function["Runtime"],
                "Handler": function["Handler"],
                "Timeout": function["Timeout"],
                "MemorySize": function["MemorySize"],
                "Role": {"Fn::GetAtt": [role_id, "Arn"]},
                "Code": {"ZipFile": "def lambda_handler(event, context):\n    raise NotImplementedError\n"},
            },
        },
    }


def registration_template(
    template: Mapping[str, Any], evaluator: Evaluator, *, stack_name: str, parameters: Mapping[str, str]
) -> dict[str, Any]:
    """A template whose resources are the local stack's (adopted by name) plus the functions, their roles and
    log groups and the purge function's event source mapping; its parameters and outputs are the real
    template's, resolved."""
    resources: dict[str, Any] = {}
    for logical_id, definition in template["Resources"].items():
        if definition.get("Type") not in _ADOPTED_TYPES or logical_id not in evaluator.attributes:
            continue
        physical = evaluator.attributes[logical_id]
        if definition["Type"] == "AWS::SQS::Queue":
            resources[logical_id] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": physical["QueueName"]}}
        elif definition["Type"] == "AWS::SNS::Topic":
            resources[logical_id] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": physical["TopicName"]}}
        else:
            pattern = evaluator.resolve(definition["Properties"]["EventPattern"])
            resources[logical_id] = {
                "Type": "AWS::Events::Rule",
                "Properties": {"Name": physical["Ref"], "EventPattern": pattern, "State": "ENABLED"},
            }
    for ids in FUNCTIONS:
        resources.update(_function_resources(template, evaluator, stack_name, ids))
    queue_event = template["Resources"][FUNCTION]["Properties"]["Events"]["PurgeQueueEvent"]["Properties"]
    resources[EVENT_SOURCE_MAPPING] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": FUNCTION},
            "EventSourceArn": evaluator.resolve(queue_event["Queue"]),
            "BatchSize": int(evaluator.resolve(queue_event["BatchSize"])),
            "Enabled": True,
        },
    }
    known = {
        **evaluator.attributes,
        **{
            logical_id: {"Ref": f"{stack_name}-{logical_id}"}
            for function_id, _, log_group_id in FUNCTIONS
            for logical_id in (function_id, log_group_id)
        },
    }
    outputs_evaluator = Evaluator(
        parameters=evaluator.parameters, condition_definitions=evaluator.condition_definitions, attributes=known
    )
    outputs: dict[str, Any] = {}
    for name, output in template.get("Outputs", {}).items():
        try:
            outputs[name] = {"Value": str(outputs_evaluator.resolve(output["Value"]))}
        except TemplateError:  # an output naming something with no local counterpart (the dashboard)
            continue
    return {
        "Parameters": {name: {"Type": "String"} for name in parameters},
        "Resources": resources,
        "Outputs": outputs,
    }


def register_stack(
    clients: Mapping[str, Any],
    template: Mapping[str, Any],
    evaluator: Evaluator,
    *,
    stack_name: str,
    parameters: Mapping[str, str],
) -> dict[str, str]:
    """Create the stack on moto's CloudFormation and the template's alarms on moto's CloudWatch; the
    physical ids of the function, its event source mapping and log group."""
    body = registration_template(template, evaluator, stack_name=stack_name, parameters=parameters)
    cloudformation = clients["cloudformation"]
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    created = {
        summary["LogicalResourceId"]: summary["PhysicalResourceId"]
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
    }
    _put_alarms(clients["cloudwatch"], template, evaluator, stack_name=stack_name, known=created)
    return {name: created[name] for name in (FUNCTION, EVENT_SOURCE_MAPPING, LOG_GROUP)}


def _put_alarms(
    cloudwatch: Any, template: Mapping[str, Any], evaluator: Evaluator, *, stack_name: str, known: Mapping[str, str]
) -> None:
    extended = Evaluator(
        parameters=evaluator.parameters,
        condition_definitions=evaluator.condition_definitions,
        attributes={
            **evaluator.attributes,
            **{k: {"Ref": v} for k, v in known.items() if k not in evaluator.attributes},
        },
    )
    for logical_id, definition in template["Resources"].items():
        if definition.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        if "Condition" in definition and not extended.condition(definition["Condition"]):
            continue
        properties = extended.resolve(definition["Properties"])
        alarm = {key: properties[key] for key in _ALARM_PROPERTIES if key in properties}
        # CloudFormation converts a template's strings (a parameter's value) to the API's numbers.
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in alarm:
                alarm[key] = int(alarm[key])
        alarm["Threshold"] = float(alarm["Threshold"])
        for query in alarm.get("Metrics", []):
            if "Period" in query:
                query["Period"] = int(query["Period"])
            if "MetricStat" in query:
                query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        cloudwatch.put_metric_alarm(AlarmName=f"{stack_name}-{logical_id}-LOCAL", **alarm)
