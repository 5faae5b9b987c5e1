"""The intake's decisions, with in-memory stand-ins for the table and the queue (the local stack runs the
same code against DynamoDB Local and moto in tests/integration/test_webhooks.py): what is answered, what
is recorded and what is enqueued, for each kind of request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cdnpurge.core.config import Config, parse_config
from cdnpurge.core.credentials import CredentialError
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.events import decode_event
from cdnpurge.core.models import Action
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.webhook.intake import Outcome, WebhookIntake, accepted_secrets
from cdnpurge.runtime.webhook.wiring import CONFIG_CHECK_SECONDS, ConfigSource

NOW = 1_780_000_000.0
SECRET = "repo-secret"
CONFIG = parse_config(
    """
providers: [{name: fastly, kind: fastly, service_id: S, hosts: [www.example.com]}]
webhooks:
  - name: repo
    scheme: github
    secret: {secret: cdnpurge/webhooks/repo}
    max_body_bytes: 1024
    map: {keys: "[repository.name]", paths: "commits[].modified[] | map(&join('', ['/', @]), @)"}
"""
)


@dataclass
class Records:
    live: dict[str, float] = field(default_factory=dict)

    def claim(self, key: str, *, now: float, remember_seconds: int, deadline: Deadline) -> bool:
        with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="claim"):
            pass  # what the DynamoDB store does around its call
        if self.live.get(key, 0) > now:
            return False
        self.live[key] = now + remember_seconds
        return True

    def release(self, key: str, *, deadline: Deadline) -> None:
        self.live.pop(key, None)


@dataclass
class Queue:
    sent: list[str] = field(default_factory=list)
    fail: bool = False

    def send(self, body: str, *, deadline: Deadline) -> None:
        with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="send"):
            pass  # what the SQS store does around its call
        if self.fail:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        self.sent.append(body)


def intake(records: Records, queue: Queue, config: Config = CONFIG) -> WebhookIntake:
    return WebhookIntake(
        config=lambda deadline: config,
        secrets=lambda source, deadline: (SECRET,),
        records=records,
        queue=queue,
        wall_clock=lambda: NOW,
    )


def event(
    body: bytes, *, signed_with: str = SECRET, source: str = "repo", method: str = "POST", delivery: str = "d-1"
) -> dict[str, Any]:
    digest = hmac.new(signed_with.encode(), body, hashlib.sha256).hexdigest()
    return {
        "rawPath": f"/webhooks/{source}",
        "headers": {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery},
        "pathParameters": {"source": source},
        "requestContext": {"http": {"method": method}},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


PUSH = json.dumps({"repository": {"name": "site"}, "commits": [{"modified": ["a.html"]}]}).encode()
PLENTY = Deadline(ends_at=100.0, clock=lambda: 0.0)


def test_an_authentic_push_enqueues_the_publish_message_the_purge_function_decodes() -> None:
    # Given
    records, queue = Records(), Queue()
    # When
    result = intake(records, queue).handle(event(PUSH), PLENTY)
    # Then
    assert (result.response["statusCode"], result.outcome, result.source) == (202, Outcome.ACCEPTED, "repo")
    [body] = queue.sent
    [change] = decode_event({"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": body}]}).changes
    # The change and the delivery are named by what the signature covers (the body), never by the unsigned
    # X-GitHub-Delivery header
    digest = "sha256-" + hashlib.sha256(PUSH).hexdigest()
    assert change.action is Action.PUBLISHED and change.id == f"pub:webhook:repo:{digest}" == result.change_id
    assert change.keys == ("site",) and change.paths == ("/a.html",)
    assert list(records.live) == [f"cdnpurge#webhook#repo#{digest}"]


def test_a_replay_is_answered_duplicate_and_not_enqueued() -> None:
    records, queue = Records(), Queue()
    intake(records, queue).handle(event(PUSH), PLENTY)
    again = intake(records, queue).handle(event(PUSH), PLENTY)
    assert (again.response["statusCode"], again.outcome) == (200, Outcome.DUPLICATE)
    # A captured request replayed under a fresh (unsigned) delivery id is the same delivery
    renamed = intake(records, queue).handle(event(PUSH, delivery="replayed-under-a-new-id"), PLENTY)
    assert (renamed.response["statusCode"], renamed.outcome) == (200, Outcome.DUPLICATE)
    assert len(queue.sent) == 1


@pytest.mark.parametrize(
    ("request_event", "status", "reason"),
    [
        (event(PUSH, signed_with="guess"), 401, "bad_signature"),
        (event(PUSH, source="nobody"), 401, "unknown_source"),
        (event(PUSH, method="GET"), 405, "method"),
        (event(b"x" * 1025), 413, "too_large"),
        (event(b"not json"), 400, "not_json"),
        (event(b'{"commits": []}'), 400, "unmapped"),
        ({"body": "{}"}, 400, "bad_request"),
    ],
    ids=["bad signature", "unknown source", "GET", "too large", "not JSON", "names nothing", "not HTTP API"],
)
def test_refusals_say_little_record_nothing_and_enqueue_nothing(
    request_event: dict[str, Any], status: int, reason: str
) -> None:
    records, queue = Records(), Queue()
    result = intake(records, queue).handle(request_event, PLENTY)
    assert (result.response["statusCode"], result.outcome, result.reason) == (status, Outcome.REJECTED, reason)
    if status == 401:
        assert json.loads(result.response["body"]) == {"message": "unauthorized"}
    assert result.source in ("repo", "unknown")  # never a name the caller chose
    assert not records.live and not queue.sent


def test_a_base64_body_over_the_cap_is_refused_before_it_is_decoded() -> None:
    oversized = event(PUSH) | {"body": base64.b64encode(b"x" * 2000).decode(), "isBase64Encoded": True}
    result = intake(Records(), Queue()).handle(oversized, PLENTY)
    assert result.response["statusCode"] == 413


def test_a_failed_send_forgets_the_delivery_so_the_retry_is_not_a_replay() -> None:
    records, queue = Records(), Queue(fail=True)
    result = intake(records, queue).handle(event(PUSH), PLENTY)
    assert (result.response["statusCode"], result.outcome) == (503, Outcome.UNAVAILABLE)
    assert result.problem and "cannot reach" in result.problem
    assert not records.live
    # When: the sender retries once the queue is back
    queue.fail = False
    assert intake(records, queue).handle(event(PUSH), PLENTY).outcome is Outcome.ACCEPTED


def test_no_call_starts_that_could_outlast_the_invocation() -> None:
    records, queue = Records(), Queue()
    short = Deadline(ends_at=MIN_CALL_SECONDS - 0.5, clock=lambda: 0.0)
    result = intake(records, queue).handle(event(PUSH), short)
    assert (result.response["statusCode"], result.outcome) == (503, Outcome.UNAVAILABLE)
    assert not records.live and not queue.sent


def test_a_when_expression_that_is_false_ignores_the_payload() -> None:
    config = parse_config(
        """
providers: [{name: fastly, kind: fastly, service_id: S}]
webhooks:
  - {name: repo, scheme: github, secret: {env: X}, map: {keys: "[repository.name]", when: "ref == 'refs/heads/main'"}}
"""
    )
    queue = Queue()
    body = json.dumps({"ref": "refs/heads/topic", "repository": {"name": "site"}}).encode()
    result = intake(Records(), queue, config).handle(event(body), PLENTY)
    assert (result.response["statusCode"], result.outcome) == (200, Outcome.IGNORED)
    assert not queue.sent


def test_secrets_during_a_rotation_are_both_accepted_and_a_malformed_one_is_named() -> None:
    standard = parse_config(
        """
providers: [{name: fastly, kind: fastly, service_id: S}]
webhooks: [{name: cms, scheme: standard, secret: {secret: cdnpurge/webhooks/cms}, map: {keys: k}}]
"""
    ).webhooks[0]
    new, old = "whsec_" + base64.b64encode(b"n" * 24).decode(), "whsec_" + base64.b64encode(b"o" * 24).decode()
    rotating = json.dumps({"current": new, "previous": old})
    assert accepted_secrets(standard, lambda name: rotating) == (new, old)
    assert accepted_secrets(standard, lambda name: new) == (new,)
    with pytest.raises(CredentialError, match=r"^webhooks\.cms\.secret: a Standard Webhooks secret is whsec_"):
        accepted_secrets(standard, lambda name: "whsec_not base64!")
    with pytest.raises(CredentialError) as caught:
        accepted_secrets(standard, lambda name: json.dumps({"current": ""}))
    assert "webhooks.cms.secret" in str(caught.value)


def test_the_configuration_is_read_again_once_a_minute_and_parsed_when_it_changed(tmp_path: Path) -> None:
    # Given: a configuration file and a clock the test moves
    path = tmp_path / "purge.yaml"
    first = "providers: [{name: fastly, kind: fastly, service_id: S}]\n"
    path.write_text(first)
    now = [0.0]
    source = ConfigSource(str(path), read_ssm=lambda name: "", clock=lambda: now[0])
    assert source(PLENTY).webhooks == ()
    # When: a webhook source is added
    path.write_text(first + "webhooks: [{name: cms, scheme: token, secret: {env: T}, map: {keys: k}}]\n")
    now[0] = CONFIG_CHECK_SECONDS - 1
    # Then: seen once the minute has passed, not before
    assert source(PLENTY).webhook("cms") is None
    now[0] = CONFIG_CHECK_SECONDS
    assert source(PLENTY).webhook("cms") is not None
