"""The template's `RateMeter` switch: "off" sets RATE_METER=off for the function and drops the meter's DynamoDB
permission from its role, and the function still purges, every AWS call it makes authorised as AWS would by
that role (`cdnpurge_local.iam`) on the local stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest
from aws_lambda_powertools.utilities import parameters
from helpers import FASTLY_PROVIDERS, fastly_deployment

from cdnpurge_local.harness import Deployment
from cdnpurge_local.iam import RolePolicy, function_role, leading_keys, required
from cdnpurge_local.provision import load_template
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("flow")]

BUCKET = "cdnpurge-it-meter-off"
METER_KEY = "cdnpurge#meter#fastly"
CONFIG = (
    FASTLY_PROVIDERS
    + """\
allowed_hosts: [www.example.com]
"""
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with fastly_deployment(
        CONFIG,
        bucket_name=BUCKET,
        template_parameters={"RateMeter": "off"},
    ) as app:
        yield app


def role(deployment: Deployment, **overrides: str) -> RolePolicy:
    """The purge function's role in the deployed stack, as CloudFormation resolves it for its parameters."""
    resources = deployment.stack.resources

    def table(logical_id: str) -> dict[str, str]:
        name = resources.physical_ids[logical_id]
        return {"Ref": name, "Arn": f"arn:aws:dynamodb:{resources.region}:{resources.account_id}:table/{name}"}

    return function_role(
        load_template(TEMPLATE_PATH),
        parameters={**resources.parameters, **overrides},
        region=resources.region,
        account=resources.account_id,
        attributes={
            "IdempotencyTable": table("IdempotencyTable"),
            "PurgeTrailTable": table("PurgeTrailTable"),
            "PurgeQueue": {"Arn": resources.queue_arn},
            "PurgeDeadLetterQueue": {"Arn": resources.dead_letter_queue_arn},
        },
    )


def meter_update_allowed(deployment: Deployment, policy: RolePolicy) -> bool:
    resources = deployment.stack.resources
    arn = f"arn:aws:dynamodb:{resources.region}:{resources.account_id}:table/{resources.table_name}"
    return policy.allows("dynamodb:UpdateItem", arn, (METER_KEY,))


def test_off_sets_the_environment_and_drops_the_meters_permission(deployment: Deployment) -> None:
    assert deployment.stack.resources.function_environment["RATE_METER"] == "off"
    assert not meter_update_allowed(deployment, role(deployment))
    # The same stack with the meter on (the default) is granted it: the switch is what took it away.
    assert meter_update_allowed(deployment, role(deployment, RateMeter="on"))


def test_with_the_meter_off_the_function_purges_within_its_role(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every AWS call the handler makes authorised by the role of a stack deployed with RateMeter "off"
    policy, resources = role(deployment), deployment.stack.resources
    denied: list[str] = []
    keys_touched: list[str] = []
    inside = {"handler": False}
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def authorised(client: Any, operation: str, api_params: dict[str, Any]) -> Any:
        if inside["handler"]:
            service = client.meta.service_model.service_name
            keys = leading_keys(operation, api_params) if service == "dynamodb" else ()
            keys_touched.extend(keys)
            try:
                needed = required(service, operation, api_params, resources.region, resources.account_id)
            except KeyError:
                needed = [(f"{service}:{operation}", "(not mapped)")]
            denied.extend(
                f"{action} {resource}" for action, resource in needed if not policy.allows(action, resource, keys)
            )
        return original(client, operation, api_params)

    def handler(event: dict[str, Any], context: Any) -> Any:
        inside["handler"] = True
        try:
            return deployment.app.lambda_handler(event, context)
        finally:
            inside["handler"] = False

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", authorised)
    deployment.app.service.cache_clear()  # a cold start, reading RATE_METER=off
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    deployment.stack.client("sqs").send_message(
        QueueUrl=resources.queue_url, MessageBody=json.dumps({"id": "meter-off-1", "paths": ["/news/meter-off.html"]})
    )
    # When the function handles it
    deployment.event_source(handler=handler, batching_window_seconds=0.1).drain()
    # Then it purged, with no call its role refuses and none to the meter
    assert "url:www.example.com/news/meter-off.html (hard)" in deployment.cdn.purged("fastly")
    assert denied == []
    assert not [key for key in keys_touched if key.startswith("cdnpurge#meter#")]
    assert deployment.queue_depth(dead_letter=True) == 0
