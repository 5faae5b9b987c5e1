"""Every wait is bounded, and what waits comes back when due, on the real handler with
DynamoDB Local, moto and the fake CDNs.

- a provider asking for an absurd wait (`Retry-After: 1000000000`, infinity, a date in the year 9999) is
  paused at most the documented cap, its record is made visible again when that pause ends (the
  handler's own `ChangeMessageVisibility`), and once the pause is over the record is purged exactly once;
  a wait that names no number (NaN) is an ordinary back-off within the invocation;
- a rotated credential (Secrets Manager and the CDN both switch to a new token under a warm container)
  is read again on the first 401 and the purge goes through: nothing is dead-lettered, nothing leaked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, cast

import botocore.client
import pytest
from reliability import tally
from reliability.support import (
    MEDIANOVA_TOKEN,
    Witness,
    assert_exactly,
    send,
    source,
    unique,
)

from cdnpurge.core.answers import MAX_PROVIDER_WAIT_SECONDS
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import ProviderWrapper, PurgeResult
from cdnpurge.core.provider_errors import ThrottledError
from cdnpurge.runtime.providers.http import parse_retry_after
from cdnpurge.runtime.service import PurgeService
from cdnpurge.runtime.visibility import VISIBILITY_FLOOR_SECONDS
from cdnpurge_local.event_builders import sns_envelope
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-waits")]
BUCKET = "cdnpurge-rel-waits"

# name -> the wait the provider asks for, as the adapters read it
HOSTILE_WAITS: dict[str, float | None] = {
    "Retry-After: 1000000000": parse_retry_after("1000000000"),
    "Retry-After: inf": parse_retry_after("inf"),
    "Retry-After: a date in 9999": parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
    "Retry-After: nan": math.nan,
}
CAP_WITH_JITTER = MAX_PROVIDER_WAIT_SECONDS * 1.1


class AsksToWait(ProviderWrapper):
    """Answers its first call with a 429 asking for `seconds`, then behaves as the provider it wraps."""

    def __init__(self, inner: Any, seconds: float | None) -> None:
        super().__init__(inner)
        self.seconds = seconds
        self.asked = False

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        if not self.asked:
            self.asked = True
            raise ThrottledError(self.name, "injected: slow down", status=429, retry_after=self.seconds)
        return self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)


def service(deployment: Deployment) -> PurgeService:
    return cast(PurgeService, deployment.app.service())


@pytest.fixture
def visibility_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The ChangeMessageVisibility calls the handler makes (the local poller's own calls come after it)."""
    calls: list[dict[str, Any]] = []
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "ChangeMessageVisibility" and params.get("VisibilityTimeout"):
            calls.append(params)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    yield calls


@pytest.mark.parametrize("name", list(HOSTILE_WAITS))
def test_an_absurd_wait_pauses_a_provider_at_most_the_cap_and_its_record_returns_when_due(
    deployment: Deployment, witness: Witness, visibility_calls: list[dict[str, Any]], name: str
) -> None:
    # Given: Medianova answers the next call with a 429 asking for a hostile wait
    running = service(deployment)
    providers = cast(dict[str, Any], running.providers)
    original = providers["medianova"]
    providers["medianova"] = AsksToWait(original, HOSTILE_WAITS[name])
    tally.hostile("waits", 1)
    path = f"/{unique('wait')}.html"
    (message_id,) = send(deployment, sns_envelope({"paths": [path]}))
    bucket = running.executor.buckets["medianova"]
    try:
        # When
        first = source(deployment).poll_once()
        assert first is not None
        paused_for = bucket.pause_until - running.executor.clock()
        if math.isnan(HOSTILE_WAITS[name] or 0.0):
            # Then: no number, no long pause: backed off and purged within the invocation
            assert first.failed == () and paused_for <= 1
        else:
            # Then: the provider is paused at most the cap, and the record comes back when the pause ends
            assert first.failed == (message_id,)
            assert 0 < paused_for <= CAP_WITH_JITTER
            (change,) = visibility_calls
            assert VISIBILITY_FLOOR_SECONDS <= change["VisibilityTimeout"] <= math.ceil(CAP_WITH_JITTER) + 1
            assert change["QueueUrl"] == deployment.stack.resources.queue_url
            # When: the pause is over (the warm container's clock moved on), the record is redelivered
            bucket.pause_until = 0.0
            source(deployment).drain()
    finally:
        providers["medianova"] = original
        bucket.pause_until = 0.0
    # Then: purged exactly once at each provider
    assert_exactly(deployment, [path])
    assert deployment.dead_letters() == []


ROTATED_TOKEN = "medianova-rotated-token-not-real-0246813579"


def test_a_rotated_token_is_read_again_and_nothing_is_dead_lettered(deployment: Deployment, witness: Witness) -> None:
    # Given: a warm container, then Secrets Manager and the CDN both rotate Medianova's token
    send(deployment, sns_envelope({"paths": [f"/{unique('warm')}.html"]}))
    source(deployment).drain()
    deployment.cdn.reset()
    secrets = deployment.stack.client("secretsmanager")
    behaviour = deployment.cdn.behaviours["medianova"]
    tally.hostile("queue", 1)
    try:
        for new in (ROTATED_TOKEN, MEDIANOVA_TOKEN):  # rotated, then back (the next test's token)
            secrets.put_secret_value(SecretId="cdnpurge/medianova", SecretString=json.dumps({"token": new}))
            behaviour.token = new  # type: ignore[attr-defined]
            path = f"/{unique('rotated')}.html"
            send(deployment, sns_envelope({"paths": [path]}))
            # When
            invocations = source(deployment).drain()
            # Then: one invocation, nothing returned or dead-lettered, purged once at each provider
            assert [invocation.failed for invocation in invocations] == [()]
            assert_exactly(deployment, [path])
            assert deployment.dead_letters() == []
            deployment.cdn.reset()
    finally:
        secrets.put_secret_value(SecretId="cdnpurge/medianova", SecretString=json.dumps({"token": MEDIANOVA_TOKEN}))
        behaviour.token = MEDIANOVA_TOKEN  # type: ignore[attr-defined]
    # And: the rotated token appears in no captured line either
    witness.output()
    assert not [line for line in witness.logs.lines + witness.stdout if ROTATED_TOKEN in line]
