"""Signed webhooks on the local stack: loopback client -> endpoint -> the real WebhookFunction handler ->
delivery record in DynamoDB Local -> purge queue (moto) -> the real purge handler -> fake Fastly.

Senders sign independently of cdnpurge's verifier: Standard Webhooks with its reference library, GitHub's
scheme written out from its documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.client
import httpx
import pytest
from helpers import FASTLY_PROVIDERS, fastly_deployment
from standardwebhooks.webhooks import Webhook

from cdnpurge_local.cfn import load_template
from cdnpurge_local.harness import Deployment
from cdnpurge_local.stack import TEMPLATE_PATH
from cdnpurge_local.webhook_gateway import load_webhook_handler, webhook_gateway

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhooks")]

NEW_SECRET = "whsec_" + base64.b64encode(b"the-new-standard-webhooks-key-32").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-old-standard-webhooks-key-32").decode()
FORGED_SECRET = "whsec_" + base64.b64encode(b"a-key-the-sender-does-not-hold!!").decode()
GITHUB_SECRET = "github-shared-secret-for-tests"
CONFIG = (
    FASTLY_PROVIDERS
    + """\
webhooks:
  - name: cms
    scheme: standard
    secret: {{secret: cdnpurge/webhooks/cms}}
    max_body_bytes: 2048
    map:
      keys: "data.tags"
      paths: "join('', ['/articles/', data.slug])"
      when: "type == 'entry.published'"
  - name: repo
    scheme: github
    secret: {{secret: cdnpurge/webhooks/repo, field: secret}}
    map: {{paths: "commits[].modified[] | map(&join('', ['/', @]), @)"}}
allowed_hosts: [www.example.com]
"""
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with fastly_deployment(
        CONFIG,
        secrets={
            # Mid-rotation: the new secret and the old one are both accepted.
            "cdnpurge/webhooks/cms": {"current": NEW_SECRET, "previous": OLD_SECRET},
            "cdnpurge/webhooks/repo": {"secret": GITHUB_SECRET},
        },
        bucket_name="cdnpurge-it-webhooks",
        environment={"POWERTOOLS_METRICS_DISABLED": "true"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint(deployment: Deployment) -> Iterator[str]:
    with webhook_gateway(load_webhook_handler().lambda_handler) as url:
        yield url


@pytest.fixture(autouse=True)
def clean(deployment: Deployment) -> None:
    deployment.event_source().drain()
    deployment.cdn.reset()


def standard_post(
    endpoint: str, payload: dict[str, object], *, secret: str = NEW_SECRET, msg_id: str = ""
) -> httpx.Response:
    body = json.dumps(payload).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(msg_id, datetime.now(UTC), body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return httpx.post(f"{endpoint}/webhooks/cms", content=body, headers=headers, timeout=30)


def published(slug: str) -> dict[str, object]:
    return {"type": "entry.published", "data": {"slug": slug, "tags": [f"article-{slug}"]}}


def test_a_signed_webhook_is_enqueued_and_purged_once_and_its_replay_is_refused(
    deployment: Deployment, endpoint: str
) -> None:
    # Given
    slug = uuid.uuid4().hex[:8]
    msg_id = f"msg_{slug}"
    # When
    first = standard_post(endpoint, published(slug), msg_id=msg_id)
    # Then: accepted, and the purge function purges what it names
    assert first.status_code == 202, first.text
    assert first.json()["change_id"] == f"pub:webhook:cms:{msg_id}"
    deployment.event_source().drain()
    assert sorted(deployment.cdn.purged("fastly")) == sorted(
        [f"key:article-{slug} (hard)", f"url:www.example.com/articles/{slug} (hard)"]
    )
    # When: the same delivery again (a replay, or the sender's retry after a lost answer)
    again = standard_post(endpoint, published(slug), msg_id=msg_id)
    # Then: remembered in the table, nothing enqueued
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert deployment.queue_depth() == 0


def test_the_previous_secret_is_accepted_while_rotating(deployment: Deployment, endpoint: str) -> None:
    response = standard_post(endpoint, published(uuid.uuid4().hex[:8]), secret=OLD_SECRET)
    assert response.status_code == 202
    assert deployment.queue_depth() == 1


def test_nothing_unverified_or_oversized_is_enqueued(deployment: Deployment, endpoint: str) -> None:
    bad = standard_post(endpoint, published("x"), secret=FORGED_SECRET)
    assert (bad.status_code, bad.json()) == (401, {"message": "unauthorized"})
    unknown = httpx.post(f"{endpoint}/webhooks/nobody", content=b"{}", timeout=30)
    assert (unknown.status_code, unknown.json()) == (401, {"message": "unauthorized"})
    huge = standard_post(endpoint, {"type": "entry.published", "data": {"slug": "x" * 4096, "tags": []}})
    assert huge.status_code == 413
    ignored = standard_post(endpoint, {"type": "entry.unpublished", "data": {"slug": "x", "tags": []}})
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
    unmapped = standard_post(endpoint, {"type": "entry.published", "data": {"tags": []}})
    assert unmapped.status_code == 400
    assert deployment.queue_depth() == 0


def test_a_github_style_signature_purges_the_paths_a_push_modified(deployment: Deployment, endpoint: str) -> None:
    # Given: GitHub's documented signature, written out independently
    body = json.dumps({"commits": [{"modified": ["index.html", "about.html"]}]}).encode()
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": f"sha256={digest}", "x-github-delivery": str(uuid.uuid4())}
    # When
    response = httpx.post(f"{endpoint}/webhooks/repo", content=body, headers=headers, timeout=30)
    deployment.event_source().drain()
    # Then
    assert response.status_code == 202, response.text
    assert sorted(deployment.cdn.purged("fastly")) == [
        "url:www.example.com/about.html (hard)",
        "url:www.example.com/index.html (hard)",
    ]


def test_the_webhook_function_only_calls_what_its_role_grants(
    deployment: Deployment, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: every AWS call made while the webhook handler runs is recorded
    calls: list[tuple[str, dict[str, Any]]] = []
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def record(client: Any, operation: str, api_params: dict[str, Any]) -> Any:
        calls.append((f"{client.meta.service_model.signing_name}:{operation}", api_params))
        return original(client, operation, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    # When: a delivery accepted, its replay, and a forgery
    standard_post(endpoint, published(uuid.uuid4().hex[:8]), msg_id="msg_iam")
    standard_post(endpoint, published("again"), msg_id="msg_iam")
    standard_post(endpoint, published("forged"), secret=FORGED_SECRET)
    # Then: each call is one of the role's actions, on the resources its statements name
    resources = load_template(TEMPLATE_PATH)["Resources"]
    statements = resources["WebhookFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    granted = {action for statement in statements for action in as_list(statement["Action"])}
    used = {action for action, _ in calls}
    assert {"dynamodb:PutItem", "sqs:SendMessage"} <= used <= granted
    for action, params in calls:
        if action.startswith("dynamodb:"):
            assert params["TableName"] == deployment.stack.resources.table_name
            assert params.get("Item", params.get("Key", {}))["id"]["S"].startswith("cdnpurge#webhook#")
        elif action.startswith("sqs:"):
            assert params["QueueUrl"] == deployment.stack.resources.queue_url


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
