"""The function's role as AWS would apply it, for the local stand-ins that apply none (moto, DynamoDB Local).

moto answers every call whatever the caller may do, so a permission the template forgets passes every test
and fails in AWS. The worst case is S3's: without `s3:ListBucket` on the bucket, HeadObject of a missing
key is refused with 403 Forbidden, not 404 ("If you don't have the s3:ListBucket permission, Amazon S3
returns an HTTP status code 403"), so verification could never see a deleted object gone.

`RolePolicy.of_function` reads the statements of a function's role from template.yaml and evaluates their
resources (`cdnpurge_local.cfn`); `enforce_role` makes a boto3 client refuse, before it reaches the
stand-in, every call the policy does not allow, with the answer AWS gives (`AccessDenied`, HTTP 403), and
turns S3's 404 for a missing key into 403 when the policy lacks `s3:ListBucket` on its bucket. Each call is
mapped to the IAM actions and resource ARNs AWS authorises it by (`required`): TransactWriteItems per item,
SendMessageBatch as SendMessage, HeadObject as s3:GetObject; a DynamoDB call's partition keys meet a
statement's `ForAllValues:StringLike` `dynamodb:LeadingKeys` condition. A call this module cannot map is
refused too: the function's calls are few, and an unknown one is a permission to review. A statement whose
resource cannot be evaluated locally (a resource not provisioned), or with a condition this module does not
evaluate, grants nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from botocore.exceptions import ClientError

from cdnpurge_local.cfn import Evaluator, TemplateError, parameter_values

ACCESS_DENIED: Final = "AccessDenied"
FORBIDDEN: Final = 403
# DynamoDB's transaction items and the per-item action each needs.
_TRANSACT_ACTIONS: Final = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_MISSING: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_BUCKET: Final = "cdnpurge_local.iam.bucket"


@dataclass(frozen=True)
class Statement:
    """One Allow statement: its actions and resource patterns (IAM wildcards `*` and `?`), and the
    `dynamodb:LeadingKeys` patterns its `ForAllValues:StringLike` condition allows (None: no condition)."""

    actions: frozenset[str]
    resources: tuple[str, ...]
    leading_keys: tuple[str, ...] | None = None

    def allows(self, action: str, resource: str, keys: tuple[str, ...] = ()) -> bool:
        if action.lower() not in self.actions or not any(_pattern(r).fullmatch(resource) for r in self.resources):
            return False
        if self.leading_keys is None:
            return True
        return all(any(_pattern(p).fullmatch(key) for p in self.leading_keys) for key in keys)


@dataclass(frozen=True)
class RolePolicy:
    """The Allow statements of one role (nothing is allowed that no statement names)."""

    statements: tuple[Statement, ...]

    def allows(self, action: str, resource: str, keys: tuple[str, ...] = ()) -> bool:
        """Whether a statement allows `action` on `resource` for items with partition keys `keys`."""
        return any(statement.allows(action, resource, keys) for statement in self.statements)

    @classmethod
    def of_function(cls, template: Mapping[str, Any], function: str, evaluator: Evaluator) -> RolePolicy:
        """The inline policies of `function`'s role in `template`, resources evaluated by `evaluator`."""
        resources = template["Resources"]
        role_id = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = []
        for policy in resources[role_id]["Properties"].get("Policies", []):
            for listed in policy["PolicyDocument"]["Statement"]:
                try:
                    # A statement under a condition (`!If [HasTrail, {...}, !Ref AWS::NoValue]`) is the branch the
                    # stack's parameters choose, or nothing at all.
                    chosen = evaluator.resolve([listed])
                except TemplateError:
                    continue  # not evaluable locally: grants nothing
                if not chosen or chosen[0].get("Effect") != "Allow":
                    continue
                raw = chosen[0]
                patterns = tuple(str(r) for r in _flat(raw["Resource"]))
                actions = frozenset(str(a).lower() for a in _flat(raw["Action"]))
                condition = raw.get("Condition")
                if condition is None:
                    statements.append(Statement(actions, patterns))
                elif set(condition) == {"ForAllValues:StringLike"} and set(condition["ForAllValues:StringLike"]) == {
                    "dynamodb:LeadingKeys"
                }:
                    keys = tuple(str(k) for k in _flat(condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]))
                    statements.append(Statement(actions, patterns, keys))
                # any other condition is not evaluated here: the statement grants nothing
        return cls(tuple(statements))


def function_role(
    template: Mapping[str, Any],
    *,
    parameters: Mapping[str, str],
    region: str,
    account: str,
    attributes: Mapping[str, Mapping[str, str]] | None = None,
    function: str = "PurgeFunction",
) -> RolePolicy:
    """`function`'s role in a stack of `template` deployed in `account`/`region` with `parameters`;
    `attributes` are the GetAtt values of its resources (`{"PurgeQueue": {"Arn": ...}}`)."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account}
    evaluator = Evaluator(
        parameters={**parameter_values(template, parameters), **pseudo},
        condition_definitions=template.get("Conditions", {}),
        attributes={name: dict(values) for name, values in (attributes or {}).items()},
    )
    return RolePolicy.of_function(template, function, evaluator)


def leading_keys(operation: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The partition keys (attribute `id`, the key of the template's tables) a DynamoDB call touches."""
    items: list[Mapping[str, Any]] = []
    if operation == "TransactWriteItems":
        items = [
            body.get("Item") or body.get("Key") or {} for item in params["TransactItems"] for body in item.values()
        ]
    elif operation == "BatchWriteItem":
        for requests in params["RequestItems"].values():
            for request in requests:
                for body in request.values():
                    items.append(body.get("Item") or body.get("Key") or {})
    else:
        items = [params.get("Item") or params.get("Key") or {}]
    return tuple(str(item["id"]["S"]) for item in items if "id" in item and "S" in item["id"])


def required(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs AWS authorises a call by; raises KeyError for a call not mapped."""
    if service == "s3":
        bucket = params["Bucket"]
        if operation in ("HeadObject", "GetObject"):
            return [("s3:GetObject", f"arn:aws:s3:::{bucket}/{params['Key']}")]
        if operation in ("ListObjects", "ListObjectsV2"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    if service == "dynamodb":

        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"

        if operation == "TransactWriteItems":
            return [
                (f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table(body["TableName"]))
                for item in params["TransactItems"]
                for kind, body in item.items()
            ]
        if operation == "BatchWriteItem":
            return [("dynamodb:BatchWriteItem", table(name)) for name in params["RequestItems"]]
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
            return [(f"dynamodb:{operation}", table(params["TableName"]))]
    if service == "sqs" and operation in (
        "SendMessage",
        "SendMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    ):
        queue = str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
        return [(f"sqs:{operation.removesuffix('Batch')}", f"arn:aws:sqs:{region}:{account}:{queue}")]
    if service == "ssm" and operation == "GetParameter":
        name = str(params["Name"])
        return [("ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}")]
    if service == "secretsmanager" and operation == "GetSecretValue":
        secret = str(params["SecretId"])
        arn = secret if secret.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"
        return [("secretsmanager:GetSecretValue", arn)]
    if service == "cloudfront" and operation in ("CreateInvalidation", "GetInvalidation"):
        return [(f"cloudfront:{operation}", f"arn:aws:cloudfront::{account}:distribution/{params['DistributionId']}")]
    if service == "cloudfront" and operation == "GetDistribution":
        return [("cloudfront:GetDistribution", f"arn:aws:cloudfront::{account}:distribution/{params['Id']}")]
    raise KeyError(f"{service}:{operation}")


def enforce_role(client: Any, policy: RolePolicy, *, region: str, account: str) -> Any:
    """Make `client` refuse what `policy` does not allow, as AWS would; returns the client."""
    service = client.meta.service_model.service_name

    def check(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if service == "s3" and "Bucket" in params:
            context[_BUCKET] = params["Bucket"]  # read back after the call (same context)
        try:
            needed = required(service, model.name, params, region, account)
        except KeyError:
            needed = [(f"{service}:{model.name}", "(not mapped by cdnpurge_local.iam)")]
        keys = leading_keys(model.name, params) if service == "dynamodb" else ()
        for action, resource in needed:
            if not policy.allows(action, resource, keys):
                raise _denied(model.name, f"not authorized to perform: {action} on resource: {resource}")

    def missing_key_is_forbidden(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """S3 without s3:ListBucket: a missing key is 403 Forbidden, not 404."""
        code = str(parsed.get("Error", {}).get("Code", ""))
        if http_response.status_code != 404 or code not in _MISSING:
            return
        bucket = context.get(_BUCKET, "")
        if policy.allows("s3:ListBucket", f"arn:aws:s3:::{bucket}"):
            return
        parsed["Error"] = {"Code": str(FORBIDDEN), "Message": "Forbidden"}
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = FORBIDDEN
        http_response.status_code = FORBIDDEN

    client.meta.events.register(f"before-parameter-build.{service}", check)
    if service == "s3":
        for operation in ("HeadObject", "GetObject"):
            client.meta.events.register(f"after-call.s3.{operation}", missing_key_is_forbidden)
    return client


def _denied(operation: str, message: str) -> ClientError:
    response: Any = {
        "Error": {"Code": ACCESS_DENIED, "Message": f"User: the function's role is {message}"},
        "ResponseMetadata": {"HTTPStatusCode": FORBIDDEN},
    }
    return ClientError(response, operation)


def _flat(value: Any) -> Iterable[Any]:
    for item in value if isinstance(value, list) else [value]:
        yield from _flat(item) if isinstance(item, list) else (item,)


@cache
def _pattern(resource: str) -> re.Pattern[str]:
    """An IAM resource pattern as a regex: `*` any characters, `?` one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource))
