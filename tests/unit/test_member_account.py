"""The member-account template forwards exactly its content buckets' object changes to the central bus, with a
role that may do nothing but put events there; and it passes cfn-lint (when the SAM tools are installed)."""

from __future__ import annotations

import subprocess

import pytest

from cdnpurge_local.cfn import Evaluator, load_template, parameter_values
from cdnpurge_local.servers import REPO_ROOT

TEMPLATE = REPO_ROOT / "examples" / "member-account" / "template.yaml"
CFN_LINT = REPO_ROOT / ".tools" / "sam" / "bin" / "cfn-lint"
CENTRAL_BUS = "arn:aws:events:us-east-1:123456789012:event-bus/default"


def resolved() -> dict[str, object]:
    document = load_template(TEMPLATE)
    values = parameter_values(document, {"CentralEventBusArn": CENTRAL_BUS, "ContentBucketNames": "site-a,site-b"})
    pseudo: dict[str, str | list[str]] = {"AWS::AccountId": "210987654321", "AWS::Partition": "aws"}
    evaluator = Evaluator(parameters={**values, **pseudo}, condition_definitions={})
    evaluator.attributes["ForwardRole"] = {"Arn": "arn:aws:iam::210987654321:role/forward"}
    result: dict[str, object] = evaluator.resolve(document["Resources"])
    return result


def test_the_rule_forwards_the_listed_buckets_object_changes_to_the_central_bus() -> None:
    rule = resolved()["ForwardContentChangesRule"]["Properties"]  # type: ignore[index]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": ["site-a", "site-b"]}},
    }
    assert rule["Targets"] == [
        {"Id": "CdnpurgeCentralBus", "Arn": CENTRAL_BUS, "RoleArn": "arn:aws:iam::210987654321:role/forward"}
    ]


def test_the_role_may_only_put_events_on_the_central_bus() -> None:
    role = resolved()["ForwardRole"]["Properties"]  # type: ignore[index]
    [policy] = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": CENTRAL_BUS}
    ]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "210987654321"}}


@pytest.mark.skipif(not CFN_LINT.exists(), reason="the SAM tools (make sam-validate) are not installed")
def test_the_template_passes_cfn_lint() -> None:
    completed = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
