"""Least privilege, read from template.yaml: every function runs with an explicit role (no SAM `Policies`,
so no AWS managed policies), whose statements name their actions one by one (no `*`, no `service:*`) on
specific resources, X-Ray's two write actions being the one documented exception on "*"; and the
settings the reliability policy depends on (dead-letter queue, receive count) are wired to the resources
they describe. The SAM transform itself is run too, so what CloudFormation receives is checked, not only
what the template says.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from reliability import tally

from cdnpurge_local.cfn import Evaluator, load_template, parameter_values
from cdnpurge_local.iam import RolePolicy, enforce_role, function_role, leading_keys, required
from cdnpurge_local.servers import REPO_ROOT
from cdnpurge_local.stack import TEMPLATE_PATH

ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
# Secrets Manager appends "-" and six random characters to every secret ARN, so a name prefix needs a
# trailing wildcard; it is the only wildcard allowed, and only after the configured prefix.
# The content bucket's objects ("/*") are the other: verification reads an object's current version.
CONTENT_OBJECTS = "arn:${AWS::Partition}:s3:::${ContentBucketName}/*"
CONTENT_BUCKET = "arn:${AWS::Partition}:s3:::${ContentBucketName}"
ALLOWED_WILDCARD_RESOURCES = {
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}*",
    CONTENT_OBJECTS,
}
# X-Ray has no resource-level permissions: these two actions can only be granted on "*". Nothing else may.
XRAY_WRITE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# The SQS event source mapping polls with the function's role; this is all it needs.
SQS_EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Used by the Lambda service with the function's role, never by the function's code.
LAMBDA_SERVICE_ACTIONS = SQS_EVENT_SOURCE_ACTIONS | XRAY_WRITE_ACTIONS | {"logs:CreateLogStream", "logs:PutLogEvents"}
SAM_PYTHON = REPO_ROOT / ".tools" / "sam" / "bin" / "python"


def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(logical_id: str, function: dict[str, Any], resources: dict[str, Any]) -> str:
    """The logical id of the template's `AWS::IAM::Role` that ``function`` runs with."""
    role = function["Properties"].get("Role")
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{logical_id}: no explicit role"
    role_id, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn"
    assert resources[role_id]["Type"] == "AWS::IAM::Role", f"{logical_id}: {role_id} is not a role"
    return str(role_id)


def statement_branches(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement, or each statement a conditional (`Fn::If`) may put in its place (AWS::NoValue: none)."""
    if "Fn::If" not in statement:
        return [statement]
    return [branch for branch in statement["Fn::If"][1:] if isinstance(branch, dict) and "Effect" in branch]


def role_statements(role_id: str, role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the role's inline policies: sid, role, effect, actions, resources (unresolved)."""
    statements = []
    for policy in role["Properties"].get("Policies", []):
        for statement in (s for listed in policy["PolicyDocument"]["Statement"] for s in statement_branches(listed)):
            statements.append(
                {
                    "role": role_id,
                    "sid": statement.get("Sid"),
                    "effect": statement["Effect"],
                    "actions": as_list(statement["Action"]),
                    "resources": as_list(statement["Resource"]),
                }
            )
    return statements


def execution_role_statements() -> list[dict[str, Any]]:
    """Every statement of every function's explicit role."""
    resources = template()["Resources"]
    statements = []
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            role_id = role_of(logical_id, resource, resources)
            statements.extend(role_statements(role_id, resources[role_id]))
    return statements


def function_statements() -> list[dict[str, Any]]:
    """The statements for the calls the functions' own code makes (test_secrets records them all): the
    role minus what the Lambda service does with it on the function's behalf (polling the queue, sending
    logs and traces)."""
    return [s for s in execution_role_statements() if not set(s["actions"]) <= LAMBDA_SERVICE_ACTIONS]


def test_functions_have_an_explicit_role_and_no_sam_policies() -> None:
    resources = template()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions
    for logical_id, function in functions.items():
        properties = function["Properties"]
        assert "Policies" not in properties, f"{logical_id}: SAM Policies add AWS managed policies on '*'"
        role = resources[role_of(logical_id, function, resources)]["Properties"]
        assert "ManagedPolicyArns" not in role, f"{logical_id}: managed policies grant more than it uses"
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]


@pytest.mark.parametrize("statement", execution_role_statements(), ids=lambda s: f"{s['role']}.{s['sid']}")
def test_each_statement_names_its_actions_and_resources(statement: dict[str, Any]) -> None:
    assert statement["effect"] == "Allow"
    for action in statement["actions"]:
        assert isinstance(action, str) and ACTION.fullmatch(action), f"not one explicit action: {action!r}"
    if statement["resources"] == ["*"]:
        assert set(statement["actions"]) == XRAY_WRITE_ACTIONS, "only X-Ray's write actions may be on '*'"
        return
    for resource in statement["resources"]:
        assert resource not in ("*", "arn:aws:*"), "a statement on every resource"
        if isinstance(resource, dict) and "Fn::Split" in resource:
            # A list built from a parameter: each ARN it gives must name one listed bucket or its objects.
            for arn in resolve(resource, AdditionalContentBucketNames="site-a,site-b"):
                assert re.fullmatch(r"arn:aws:s3:::site-[ab](/\*)?", arn), f"resolved to {arn!r}"
        elif isinstance(resource, dict) and "Fn::Sub" in resource:
            text = resource["Fn::Sub"]
            assert "*" not in text or text in ALLOWED_WILDCARD_RESOURCES, f"wildcard resource {text!r}"
        else:
            assert isinstance(resource, dict) and set(resource) & {"Ref", "Fn::GetAtt"}, f"unnamed {resource!r}"


def test_queue_sends_are_limited_to_the_dead_letter_queue_and_the_purge_queue() -> None:
    sends = {s["role"]: s for s in execution_role_statements() if "sqs:SendMessage" in s["actions"]}
    assert {role: s["actions"] for role, s in sends.items()} == {
        "PurgeFunctionRole": ["sqs:SendMessage"],
        "WebhookFunctionRole": ["sqs:SendMessage"],
    }
    assert sends["PurgeFunctionRole"]["resources"] == [
        {"Fn::GetAtt": ["PurgeDeadLetterQueue", "Arn"]},
        {"Fn::GetAtt": ["PurgeQueue", "Arn"]},
    ]
    # The webhook intake only enqueues publish messages: no dead-letter queue, no other queue.
    assert sends["WebhookFunctionRole"]["resources"] == [{"Fn::GetAtt": ["PurgeQueue", "Arn"]}]


def resolve(value: Any, **parameters: str) -> Any:
    """`value` with its intrinsic functions evaluated as CloudFormation would, for `parameters` (others at their
    defaults) in account 123456789012 of us-east-1 (partition aws)."""
    document = template()
    pseudo: dict[str, str | list[str]] = {
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": "cdnpurge",
    }
    values = {**parameter_values(document, {"ContentBucketName": "site", **parameters}), **pseudo}
    return Evaluator(parameters=values, condition_definitions=document["Conditions"]).resolve(value)


def test_s3_is_read_only_and_only_the_content_bucket() -> None:
    # Verification's HeadObject (authorised as s3:GetObject), and s3:ListBucket on the same bucket, without
    # which S3 answers 403 (not 404) for a missing key: nothing written, no other bucket.
    s3 = [s for s in execution_role_statements() if any(a.startswith("s3:") for a in s["actions"])]
    assert [s["actions"] for s in s3] == [["s3:GetObject"], ["s3:ListBucket"], ["s3:ListBucket"], ["s3:GetObject"]]
    assert s3[0]["resources"] == [{"Fn::Sub": CONTENT_OBJECTS}]
    assert s3[1]["resources"] == [{"Fn::Sub": CONTENT_BUCKET}]
    # The additional buckets' statement is there only when some are listed, and then names each one's objects.
    statements = template()["Resources"]["PurgeFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    last = statements["Statement"][-2:]
    assert resolve(last) == []
    assert resolve(last, AdditionalContentBucketNames="site-a, site-b") == [
        {
            "Sid": "ListAdditionalContentBuckets",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": ["arn:aws:s3:::site-a", "arn:aws:s3:::site-b"],
        },
        {
            "Sid": "ReadAdditionalContentVersions",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": ["arn:aws:s3:::site-a/*", "arn:aws:s3:::site-b/*"],
        },
    ]


def test_the_object_rule_follows_the_bucket_list() -> None:
    rule = template()["Resources"]["ObjectChangedRule"]["Properties"]["EventPattern"]
    assert resolve(rule)["detail"]["bucket"]["name"] == ["site"]
    assert resolve(rule, AdditionalContentBucketNames="site-a,site-b")["detail"]["bucket"]["name"] == [
        "site",
        "site-a",
        "site-b",
    ]


def test_other_accounts_may_only_put_events_on_the_default_bus() -> None:
    resources = template()["Resources"]
    policies = {k: v for k, v in resources.items() if v["Type"] == "AWS::Events::EventBusPolicy"}
    assert set(policies) == {"EventSourceAccountsPolicy", "EventSourceOrganizationPolicy"}
    by_accounts = resolve(policies["EventSourceAccountsPolicy"], EventSourceAccountIds="111111111111,222222222222")
    assert by_accounts["Properties"]["Statement"] == {
        "Effect": "Allow",
        "Principal": {"AWS": ["111111111111", "222222222222"]},
        "Action": "events:PutEvents",
        "Resource": "arn:aws:events:us-east-1:123456789012:event-bus/default",
    }
    by_organization = resolve(policies["EventSourceOrganizationPolicy"], EventSourceOrganizationId="o-a1b2c3d4e5")
    statement = by_organization["Properties"]["Statement"]
    assert (statement["Principal"], statement["Action"]) == ("*", "events:PutEvents")
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    assert {policy["Condition"] for policy in policies.values()} == {
        "HasEventSourceAccounts",
        "HasEventSourceOrganization",
    }


def test_the_event_source_reads_only_the_purge_queue() -> None:
    sqs = [s for s in execution_role_statements() if any(a.startswith("sqs:") for a in s["actions"])]
    reads = [s for s in sqs if not {"sqs:SendMessage", "sqs:ChangeMessageVisibility"} & set(s["actions"])]
    assert len(reads) == 1
    assert set(reads[0]["actions"]) == SQS_EVENT_SOURCE_ACTIONS
    assert reads[0]["resources"] == [{"Fn::GetAtt": ["PurgeQueue", "Arn"]}]


def test_visibility_changes_are_limited_to_the_purge_queue() -> None:
    changes = [s for s in execution_role_statements() if "sqs:ChangeMessageVisibility" in s["actions"]]
    assert [(s["actions"], s["resources"]) for s in changes] == [
        (["sqs:ChangeMessageVisibility"], [{"Fn::GetAtt": ["PurgeQueue", "Arn"]}])
    ]


@pytest.mark.parametrize("function", ["PurgeFunction", "WebhookFunction"])
def test_logs_go_only_to_the_functions_own_log_group(function: str) -> None:
    resources = template()["Resources"]
    properties = resources[function]["Properties"]
    log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[log_group]["Properties"]["RetentionInDays"] > 0
    role = role_of(function, resources[function], resources)
    writes = [s for s in role_statements(role, resources[role]) if any(a.startswith("logs:") for a in s["actions"])]
    assert len(writes) == 1
    assert set(writes[0]["actions"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    # The LogGroup's Arn attribute ends in ":*": the group's streams, and nothing else.
    assert writes[0]["resources"] == [{"Fn::GetAtt": [log_group, "Arn"]}]


def test_the_function_knows_the_dead_letter_queue_and_the_receive_limit_sqs_applies() -> None:
    resources = template()["Resources"]
    environment = resources["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    redrive = resources["PurgeQueue"]["Properties"]["RedrivePolicy"]
    assert environment["DEAD_LETTER_QUEUE_URL"] == {"Ref": "PurgeDeadLetterQueue"}
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["PurgeDeadLetterQueue", "Arn"]}
    assert environment["PURGE_QUEUE_URL"] == {"Ref": "PurgeQueue"}
    assert int(environment["MAX_RECEIVE_COUNT"]) == int(redrive["maxReceiveCount"])


def test_the_purge_trail_is_written_blind_and_only_to_its_own_table() -> None:
    # The trail's items are puts in BatchWriteItems: no read, no update, no delete, and not the ledger's table.
    trail = [s for s in execution_role_statements() if {"Fn::GetAtt": ["PurgeTrailTable", "Arn"]} in s["resources"]]
    assert [(s["actions"], s["resources"]) for s in trail] == [
        (["dynamodb:BatchWriteItem"], [{"Fn::GetAtt": ["PurgeTrailTable", "Arn"]}])
    ]
    environment = template()["Resources"]["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    # With TrailEnabled "false" the table is not created and the function is given no trail to write.
    assert environment["TRAIL_TABLE_NAME"] == {"Fn::If": ["HasTrail", {"Ref": "PurgeTrailTable"}, ""]}


def test_queue_policies_only_let_named_sources_send() -> None:
    for logical_id, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert as_list(statement["Action"]) == ["sqs:SendMessage"], logical_id
            assert "aws:SourceArn" in statement["Condition"]["ArnEquals"], f"{logical_id}: any sender allowed"


# --------------------------------------------------------------------------------------------------
# What CloudFormation receives: the template after the SAM transform (which is where SAM would add
# managed policies). samtranslator lives in .tools/sam (installed by `make sam-validate`), not in .venv.

_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    # Managed policy names in SAM `Policies` are resolved through IAM; the template must not need any.
    def load(self):
        return {}

request = json.load(sys.stdin)
json.dump(transform(request["template"], request["parameters"], NoManagedPolicies()), sys.stdout)
"""


@cache
def transformed() -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.skip(f"{SAM_PYTHON} is absent (run `make sam-validate` to install the SAM CLI and samtranslator)")
    sam_template = copy.deepcopy(template())
    for resource in sam_template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in properties:  # local paths until `sam package`; the translator wants an S3 URI
                properties[key] = f"s3://cdnpurge-test/{key}"
    request = {"template": sam_template, "parameters": {"ContentBucketName": "cdnpurge-test-content"}}
    environment = {
        **os.environ,
        # Offline: no real account, and the region only names the pseudo parameters.
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAM_CLI_TELEMETRY": "0",
    }
    completed = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSFORM],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"SAM transform failed:\n{completed.stderr}"
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_the_transformed_template_grants_no_managed_policy_and_no_wildcard_action() -> None:
    resources = transformed()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert functions
    roles = {k: v for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"}
    assert {role_of(k, f, resources) for k, f in functions.items()} == set(roles)
    # Policies can also live outside roles; this template keeps them inline.
    assert not [k for k, v in resources.items() if v["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")]
    for role_id, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], f"{role_id}: {role['Properties']['ManagedPolicyArns']}"
        statements = role_statements(role_id, role)
        assert statements
        for statement in statements:
            for action in statement["actions"]:
                assert ACTION.fullmatch(action), f"{role_id}.{statement['sid']}: wildcard action {action!r}"
            if "*" in statement["resources"]:
                assert statement["resources"] == ["*"]
                assert set(statement["actions"]) == XRAY_WRITE_ACTIONS, f"{role_id}.{statement['sid']} on '*'"


def test_the_transformed_event_source_can_poll_with_the_functions_role() -> None:
    resources = transformed()["Resources"]
    mappings = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mappings
    for mapping in mappings:
        function = mapping["FunctionName"]["Ref"]
        role_id = role_of(function, resources[function], resources)
        granted = [
            s
            for s in role_statements(role_id, resources[role_id])
            if set(s["actions"]) >= SQS_EVENT_SOURCE_ACTIONS and mapping["EventSourceArn"] in s["resources"]
        ]
        assert granted, f"{role_id} cannot poll {mapping['EventSourceArn']}"


# --------------------------------------------------------------------------------------------------
# The role applied as AWS would (`cdnpurge_local.iam`): what the template does not grant is refused.

ACCOUNT, REGION, BUCKET_NAME = "123456789012", "us-east-1", "site-content"


def applied_role(edit: Callable[[dict[str, Any]], None] | None = None) -> RolePolicy:
    """The purge function's role, evaluated for a stack in ACCOUNT/REGION (`edit` changes the template)."""
    raw = template()
    if edit is not None:
        edit(raw)
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
    attributes = {
        "PurgeQueue": {"Arn": queue + "purge"},
        "PurgeDeadLetterQueue": {"Arn": queue + "purge-dlq"},
        "IdempotencyTable": {"Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/idempotency"},
        "PurgeTrailTable": {"Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/trail"},
    }
    return function_role(
        raw, parameters={"ContentBucketName": BUCKET_NAME}, region=REGION, account=ACCOUNT, attributes=attributes
    )


def stubbed_s3(policy: RolePolicy) -> tuple[Any, Stubber]:
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    return enforce_role(client, policy, region=REGION, account=ACCOUNT), Stubber(client)


@pytest.mark.parametrize(
    ("service", "operation", "params", "allowed"),
    [
        ("s3", "HeadObject", {"Bucket": BUCKET_NAME, "Key": "a/b.html"}, True),
        ("s3", "HeadObject", {"Bucket": "another-bucket", "Key": "a/b.html"}, False),
        ("s3", "ListObjectsV2", {"Bucket": BUCKET_NAME}, True),
        ("s3", "ListObjectsV2", {"Bucket": "another-bucket"}, False),
        ("sqs", "SendMessageBatch", {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/purge"}, True),
        ("sqs", "SendMessage", {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/other"}, False),
        ("dynamodb", "BatchWriteItem", {"RequestItems": {"trail": []}}, True),
        ("dynamodb", "DeleteItem", {"TableName": "trail"}, False),
        ("dynamodb", "TransactWriteItems", {"TransactItems": [{"Update": {"TableName": "idempotency"}}]}, True),
        ("ssm", "GetParameter", {"Name": "/cdnpurge/other"}, False),
        (
            "dynamodb",
            "UpdateItem",
            {"TableName": "idempotency", "Key": {"id": {"S": "cdnpurge#paths#2026-11#E1"}}},
            True,
        ),
        (
            "dynamodb",
            "UpdateItem",
            {"TableName": "idempotency", "Key": {"id": {"S": "cdnpurge#provider-change#x"}}},
            False,
        ),
    ],
)
def test_the_applied_role_allows_what_the_template_grants_and_nothing_else(
    service: str, operation: str, params: dict[str, Any], allowed: bool
) -> None:
    policy = applied_role()
    needed = required(service, operation, params, REGION, ACCOUNT)
    keys = leading_keys(operation, params) if service == "dynamodb" else ()
    assert all(policy.allows(action, resource, keys) for action, resource in needed) is allowed
    tally.hostile("iam")


def test_a_call_the_role_does_not_allow_is_refused_before_it_is_sent() -> None:
    s3, stubber = stubbed_s3(applied_role())
    stubber.add_response("head_object", {})  # what the bucket would answer: never reached
    with stubber, pytest.raises(ClientError) as refused:
        s3.head_object(Bucket="another-bucket", Key="a.html")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(AssertionError):  # the stubbed answer was never taken: the call was not sent
        stubber.assert_no_pending_responses()
    tally.hostile("iam")


@pytest.mark.parametrize("with_list_bucket", [True, False])
def test_a_missing_key_is_404_only_with_list_bucket(with_list_bucket: bool) -> None:
    # S3: "If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status code 403"
    def drop_list_bucket(raw: dict[str, Any]) -> None:
        for policy in raw["Resources"]["PurgeFunctionRole"]["Properties"]["Policies"]:
            statements = policy["PolicyDocument"]["Statement"]
            policy["PolicyDocument"]["Statement"] = [s for s in statements if s.get("Sid") != "ListContentBucket"]

    s3, stubber = stubbed_s3(applied_role(None if with_list_bucket else drop_list_bucket))
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    with stubber, pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=BUCKET_NAME, Key="deleted.html")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == (404 if with_list_bucket else 403)
    tally.hostile("iam")
