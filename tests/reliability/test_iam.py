"""Least privilege, read from template.yaml: every statement of every function names its actions one by
one (no `*`, no `service:*`) on specific resources, and the settings the reliability policy depends on
(dead-letter queue, receive count) are wired to the resources they describe.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cdnpurge_local.provision import load_template
from cdnpurge_local.stack import TEMPLATE_PATH

ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
# Secrets Manager appends "-" and six random characters to every secret ARN, so a name prefix needs a
# trailing wildcard; it is the only wildcard allowed, and only after the configured prefix.
ALLOWED_WILDCARD_RESOURCES = {
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}*"
}


def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_statements() -> list[dict[str, Any]]:
    """Every inline policy statement of every function: sid, function, actions, resources (unresolved)."""
    statements = []
    for logical_id, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            assert isinstance(policy, dict), f"{logical_id}: managed or SAM-template policy {policy!r} grants more"
            for statement in policy["Statement"]:
                statements.append(
                    {
                        "function": logical_id,
                        "sid": statement.get("Sid"),
                        "effect": statement["Effect"],
                        "actions": as_list(statement["Action"]),
                        "resources": as_list(statement["Resource"]),
                    }
                )
    return statements


@pytest.mark.parametrize("statement", function_statements(), ids=lambda s: f"{s['function']}.{s['sid']}")
def test_each_statement_names_its_actions_and_resources(statement: dict[str, Any]) -> None:
    assert statement["effect"] == "Allow"
    for action in statement["actions"]:
        assert isinstance(action, str) and ACTION.fullmatch(action), f"not one explicit action: {action!r}"
    for resource in statement["resources"]:
        assert resource not in ("*", "arn:aws:*"), "a statement on every resource"
        if isinstance(resource, dict) and "Fn::Sub" in resource:
            text = resource["Fn::Sub"]
            assert "*" not in text or text in ALLOWED_WILDCARD_RESOURCES, f"wildcard resource {text!r}"
        else:
            assert isinstance(resource, dict) and set(resource) & {"Ref", "Fn::GetAtt"}, f"unnamed {resource!r}"


def test_queue_sends_are_limited_to_the_dead_letter_queue_and_the_purge_queue() -> None:
    sends = [s for s in function_statements() if "sqs:SendMessage" in s["actions"]]
    assert [s["actions"] for s in sends] == [["sqs:SendMessage"]]
    assert sends[0]["resources"] == [
        {"Fn::GetAtt": ["PurgeDeadLetterQueue", "Arn"]},
        {"Fn::GetAtt": ["PurgeQueue", "Arn"]},
    ]


def test_the_function_knows_the_dead_letter_queue_and_the_receive_limit_sqs_applies() -> None:
    resources = template()["Resources"]
    environment = resources["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    redrive = resources["PurgeQueue"]["Properties"]["RedrivePolicy"]
    assert environment["DEAD_LETTER_QUEUE_URL"] == {"Ref": "PurgeDeadLetterQueue"}
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["PurgeDeadLetterQueue", "Arn"]}
    assert environment["PURGE_QUEUE_URL"] == {"Ref": "PurgeQueue"}
    assert int(environment["MAX_RECEIVE_COUNT"]) == int(redrive["maxReceiveCount"])


def test_queue_policies_only_let_named_sources_send() -> None:
    for logical_id, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert as_list(statement["Action"]) == ["sqs:SendMessage"], logical_id
            assert "aws:SourceArn" in statement["Condition"]["ArnEquals"], f"{logical_id}: any sender allowed"
