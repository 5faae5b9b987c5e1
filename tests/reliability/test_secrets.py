"""Credentials never leave: not in logs, exceptions, metrics, plan output, CLI output or DLQ payloads,
even when a CDN echoes the key back in its error. (Every reliability test is also scanned by the
autouse witness in conftest.py.) Plus least privilege at run time: the handler only calls AWS actions
its policy in template.yaml grants, on the resources it names.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import msgspec
import pytest
from aws_lambda_powertools.utilities import parameters
from helpers import FASTLY_SERVICE, FASTLY_TOKEN
from reliability import tally
from reliability.support import (
    Witness,
    reset,
    send,
    source,
    unique,
)
from reliability.test_iam import function_statements

from cdnpurge.cli.main import main as cli
from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, FakeRequest, FakeResponse, Fault
from cdnpurge_local.harness import Deployment

BUCKET = "cdnpurge-rel-secrets"
stack = pytest.mark.xdist_group("reliability-secrets")


class EchoingFastly(FastlyBehaviour):
    """A Fastly fake that, like some real APIs, quotes the key it was given in its error messages, in a
    long plain-text page (where any cut at a fixed length once fell inside the key), or as a purge id."""

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        key = request.headers.get("fastly-key", "")
        if "refuse" in request.path:
            return FakeResponse(403, {"msg": f"token {key} may not purge this service"}), []
        if "cut-" in request.path:
            padding = int(request.path.split("cut-")[1].split("-")[0])
            page = f"{'=' * padding} key {key} is not allowed here".encode()
            return FakeResponse(403, page, content_type="text/plain"), []
        if "echo-id" in request.path:
            _, purged = super().route(request)
            return FakeResponse(200, {"status": "ok", "id": f"purge-{key}"}), purged
        if "flaky" in request.path and not getattr(self, "flaked", False):
            self.flaked = True
            return FakeResponse(500, {"msg": f"backend error for Fastly-Key={key}"}), []
        return super().route(request)


@pytest.fixture
def echoing(deployment: Deployment) -> Iterator[Deployment]:
    reset(deployment)
    original = deployment.cdn.behaviours["fastly"]
    deployment.cdn.behaviours["fastly"] = EchoingFastly(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)
    try:
        yield deployment
    finally:
        deployment.cdn.behaviours["fastly"] = original


@stack
def test_an_echoed_token_is_redacted_everywhere(echoing: Deployment, witness: Witness) -> None:
    # Given: fastly quotes the token in a 403 (permanent) and in a 500 (retried)
    refused, flaky = f"/refuse-{unique()}.html", f"/flaky-{unique()}.html"
    send(echoing, sns_envelope({"paths": [refused]}), sns_envelope({"paths": [flaky]}))
    tally.add(faults=2)
    # When
    source(echoing).drain()
    # Then: the refusal is dead-lettered with the provider's message, token redacted
    (dead,) = echoing.dead_letters()
    witness.see(dead, [r.__dict__ for r in echoing.cdn.received])
    reason = dead["MessageAttributes"]["cdnpurge-error"]["StringValue"]
    assert "fastly: failed: token <redacted> may not purge this service" in reason
    # and the retried 500 was logged with the token redacted too, then purged
    (attempt,) = [r for r in witness.logs.messages("provider attempt failed") if r.__dict__["status"] == 500]
    assert attempt.__dict__["provider_message"] == "backend error for Fastly-Key=<redacted>"
    assert f"url:www.example.com{flaky} (hard)" in echoing.cdn.purged("fastly")
    # (the autouse witness scans every log line, EMF document and the DLQ message for the token)


@stack
def test_an_echoed_token_leaves_no_fragment_wherever_a_cut_falls_or_as_a_purge_id(
    echoing: Deployment, witness: Witness
) -> None:
    # Given: refusals quoting the token after every padding around the old 300-character cut, and a
    # purge accepted with the token as its id
    paddings = range(260, 310, 3)
    refused = [f"/cut-{padding}-{unique()}.html" for padding in paddings]
    echoed = f"/echo-id-{unique()}.html"
    send(echoing, *(sns_envelope({"paths": [path]}) for path in refused), sns_envelope({"paths": [echoed]}))
    tally.hostile("secrets", len(refused) + 1)
    # When
    source(echoing).drain()
    # Then: every refusal is dead-lettered, its reason redacted before it was bounded
    dead = echoing.dead_letters()
    witness.see(dead)
    assert len(dead) == len(refused)
    reasons = [message["MessageAttributes"]["cdnpurge-error"]["StringValue"] for message in dead]
    assert all("fastly: failed: " in reason for reason in reasons)
    assert any("key <redacted> is not allowed here" in reason for reason in reasons)  # the short paddings
    # and the accepted purge's id was logged redacted
    ids = [
        r.__dict__["provider_id"] for r in witness.logs.messages("purge accepted") if r.__dict__["provider"] == "fastly"
    ]
    assert ids == ["purge-<redacted>"]
    assert f"url:www.example.com{echoed} (hard)" in echoing.cdn.purged("fastly")
    # (the autouse witness scans every output for any 12-character piece of the token)


@stack
def test_the_cli_redacts_an_echoed_token(echoing: Deployment, witness: Witness, tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(
        textwrap.dedent(f"""
        providers:
          - name: fastly
            kind: fastly
            service_id: {FASTLY_SERVICE}
            endpoint: {echoing.cdn.endpoint("fastly")}
            hosts: [www.example.com]
            credentials: {{token: {{env: CDNPURGE_TEST_FASTLY_TOKEN}}}}
        """)
    )
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDNPURGE_TEST_FASTLY_TOKEN", FASTLY_TOKEN)
        code = cli(["purge", "-c", str(config), "-p", "fastly", "--path", "/refuse.html"], out=out)
    witness.see(out.getvalue())
    assert code == 1
    assert "AuthError: fastly: HTTP 403: token <redacted> may not purge this service" in out.getvalue()


INLINE = """
providers:
  - name: fastly
    kind: fastly
    service_id: {service}
    hosts: [www.example.com]
    credentials: {{token: {{value: {token}}}}}
{allow}
"""


def test_inline_secrets_are_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(ConfigError, match="inline secret values are refused") as refused:
        parse_config(INLINE.format(service=FASTLY_SERVICE, token=FASTLY_TOKEN, allow=""))
    assert FASTLY_TOKEN not in str(refused.value)
    config = parse_config(INLINE.format(service=FASTLY_SERVICE, token=FASTLY_TOKEN, allow="allow_inline_secrets: true"))
    assert FASTLY_TOKEN not in repr(config) + str(config)
    assert FASTLY_TOKEN.encode() not in msgspec.json.encode(config, enc_hook=str)  # a Secret encodes as its str


def test_plan_validate_and_dry_run_output_carry_no_token(witness: Witness, tmp_path: Path) -> None:
    # Given: a local config with the token inline (allowed), and an event
    config = tmp_path / "purge.yaml"
    config.write_text(INLINE.format(service=FASTLY_SERVICE, token=FASTLY_TOKEN, allow="allow_inline_secrets: true"))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(s3_notification(s3_record("example-site-content", "docs/a.html"))))
    # When
    outputs = []
    for argv in (
        ["validate", "-c", str(config)],
        ["plan", "-c", str(config), "-e", str(event), "-f", "json"],
        ["plan", "-c", str(config), "-e", str(event)],
        ["purge", "-c", str(config), "-p", "fastly", "--key", "k", "--all", "--dry-run"],
    ):
        out = io.StringIO()
        cli(argv, out=out)
        outputs.append(out.getvalue())
    # Then (the witness also scans stdout/stderr)
    witness.see(*outputs)
    assert all(output and FASTLY_TOKEN not in output for output in outputs)


def iam_actions(action: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions one API call needs: TransactWriteItems is authorised per item (a Put needs PutItem,
    a ConditionCheck ConditionCheckItem); SendMessageBatch needs SendMessage."""
    if action == "dynamodb:TransactWriteItems":
        return {f"dynamodb:{operation}Item" for item in params["TransactItems"] for operation in item}
    return {action.replace("MessageBatch", "Message")}


def dynamodb_tables(action: str, params: dict[str, Any]) -> set[str]:
    """The tables one DynamoDB call touches."""
    if action == "dynamodb:TransactWriteItems":
        return {next(iter(item.values()))["TableName"] for item in params["TransactItems"]}
    if action == "dynamodb:BatchWriteItem":
        return set(params["RequestItems"])
    return {params["TableName"]}


def granted_on(action: str, table: str) -> bool:
    """Whether a statement of the function's role grants `action` on the table with logical id `table`."""
    arn = {"Fn::GetAtt": [table, "Arn"]}
    return any(action in s["actions"] and arn in s["resources"] for s in purge_function_statements())


def purge_function_statements() -> list[dict[str, Any]]:
    """The statements for the purge function's own calls (the webhook function has a role of its own)."""
    return [statement for statement in function_statements() if statement["role"] == "PurgeFunctionRole"]


@stack
def test_the_handler_only_calls_what_its_policy_grants(
    deployment: Deployment, witness: Witness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: every AWS call the handler makes is recorded, from a cold start on
    reset(deployment)
    calls: list[tuple[str, dict[str, Any]]] = []
    recording = {"on": False}
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def record(client: Any, operation: str, api_params: dict[str, Any]) -> Any:
        if recording["on"]:
            calls.append((f"{client.meta.service_model.signing_name}:{operation}", api_params))
        return original(client, operation, api_params)

    def handler(event: dict[str, Any], context: Any) -> Any:
        recording["on"] = True
        try:
            return deployment.app.lambda_handler(event, context)
        finally:
            recording["on"] = False

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    deployment.app.service.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    # When: a cold start, a purge, a refusal (claim released) and a poison record (dead-lettered)
    deployment.cdn.inject("medianova", Fault(status=401))
    send(deployment, s3_notification(s3_record(BUCKET, f"{unique('iam')}.html")), "{poison")
    deployment.event_source(handler=handler, batching_window_seconds=0.1).drain()
    # Then
    resources = deployment.stack.resources
    granted = {action for statement in purge_function_statements() for action in statement["actions"]}
    used = {needed for action, params in calls for needed in iam_actions(action, params)}
    assert used == {
        "ssm:GetParameter",
        "secretsmanager:GetSecretValue",
        "dynamodb:PutItem",  # claims: the Puts of TransactWriteItems
        "dynamodb:BatchWriteItem",  # completions and releases; the purge trail
        "dynamodb:UpdateItem",  # the shared rate meter's reservations (one conditional update, no read)
        "sqs:SendMessage",
    }
    assert used <= granted
    # granted but not exercised here: CloudFront (only with a cloudfront provider configured), the content
    # bucket's object versions (only with a provider's verify: block), and the visibility change for
    # throttled or deferred records (tests/reliability/test_visibility.py)
    assert granted - used <= {
        "cloudfront:CreateInvalidation",
        "cloudfront:GetInvalidation",
        "s3:GetObject",
        "s3:ListBucket",
        "sqs:ChangeMessageVisibility",
        # the month's billed-path counters and coalescing windows (GetItem under monthly_path_budget, or
        # reading a window): only with a cloudfront provider or coalesce_seconds
        "dynamodb:GetItem",
    }
    # Each DynamoDB call is granted by a statement naming the very table it touched: claims, completions
    # and releases (and the rate meter's reservations) on the idempotency table; the purge trail's puts on its
    # own table, and nothing else.
    tables = {physical: logical for logical, physical in resources.physical_ids.items()}
    touched: dict[str, set[str]] = defaultdict(set)
    for action, params in calls:
        if action.startswith("dynamodb:"):
            for table in (tables[name] for name in dynamodb_tables(action, params)):
                for needed in iam_actions(action, params):
                    assert granted_on(needed, table), f"{needed} on {table} is not granted"
                    touched[table].add(needed)
        elif action.startswith("sqs:"):
            assert params["QueueUrl"] in {resources.dead_letter_queue_url, resources.queue_url}
        elif action.startswith("ssm:"):
            assert params["Name"] == resources.parameters["ConfigParameterName"]
        elif action.startswith("secretsmanager:"):
            assert params["SecretId"].startswith(resources.parameters["SecretsPrefix"])
    assert touched == {
        "IdempotencyTable": {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"},
        "PurgeTrailTable": {"dynamodb:BatchWriteItem"},
    }
    witness.see(calls)


def test_a_fake_cdn_record_never_holds_the_token(witness: Witness) -> None:
    # The fakes' own records redact auth headers, so tests may print them (sanity check of the scanner)
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        import httpx

        httpx.post(f"{cdn.endpoint('fastly')}/service/{FASTLY_SERVICE}/purge/k", headers={"Fastly-Key": FASTLY_TOKEN})
        witness.see([r.__dict__ for r in cdn.received])
        assert cdn.received and cdn.received[0].headers["fastly-key"] == "<redacted>"
