"""Fastly adapter against the fake Fastly API on loopback: every operation, limit and error."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN
from pydantic import SecretStr

from cdnpurge.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.plan import plan
from cdnpurge.providers.errors import AuthError, NotFoundError, RejectedError, ThrottledError, UnavailableError
from cdnpurge.providers.fastly import FastlyProvider, FastlySettings
from cdnpurge.providers.http import ApiCall
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

DOT_SEGMENTS = "'.' or '..' path segment"


def provider(cdn: FakeCDN, *, token: str = FASTLY_TOKEN, service_id: str = FASTLY_SERVICE) -> FastlyProvider:
    settings = FastlySettings(name="fastly", kind="fastly", service_id=service_id, endpoint=cdn.endpoint("fastly"))
    return FastlyProvider(settings, {"token": SecretStr(token)})


def request(kind: TargetKind, *targets: str, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("fastly", kind, targets, soft, frozenset({"c1"}))


def test_url_purge_sends_host_and_path_and_soft_header(fake_cdn: FakeCDN) -> None:
    # When
    result = provider(fake_cdn).purge(
        request(TargetKind.URL, "https://www.example.com/a%20b/c.html?x=1", soft=True), idempotency_token="t"
    )
    # Then
    (received,) = fake_cdn.received_by("fastly")
    assert received.path == "/purge/www.example.com/a%20b/c.html?x=1"
    assert received.headers["fastly-soft-purge"] == "1"
    assert received.headers["fastly-key"] == "<redacted>"
    assert result.provider_id and result.provider_id.startswith("fake-")


def test_single_key_uses_the_key_route(fake_cdn: FakeCDN) -> None:
    provider(fake_cdn).purge(request(TargetKind.KEY, "article 1"), idempotency_token="t")
    (received,) = fake_cdn.received_by("fastly")
    assert received.path == f"/service/{FASTLY_SERVICE}/purge/article%201"
    assert fake_cdn.purged("fastly") == ["key:article 1 (hard)"]


@pytest.mark.parametrize("shape", ["flat", "purge_statuses"])
def test_bulk_keys_accept_both_response_shapes_at_the_256_limit(fake_cdn: FakeCDN, shape: str) -> None:
    # Given
    fake_cdn.behaviours["fastly"].bulk_shape = shape  # type: ignore[attr-defined]
    keys = tuple(f"k{i}" for i in range(256))
    # When
    result = provider(fake_cdn).purge(request(TargetKind.KEY, *keys), idempotency_token="t")
    # Then
    (received,) = fake_cdn.received_by("fastly")
    assert received.body == {"surrogate_keys": list(keys)}
    assert len(fake_cdn.purged("fastly")) == 256
    assert result.provider_id


def test_257_keys_are_refused_by_the_adapter_before_sending_and_by_the_fake_as_fastly_does(fake_cdn: FakeCDN) -> None:
    # Given
    keys = [f"k{i}" for i in range(257)]
    # When
    with pytest.raises(RejectedError, match="257 key targets; Fastly takes 1 to 256 per call"):
        provider(fake_cdn).purge(request(TargetKind.KEY, *keys), idempotency_token="t")
    assert fake_cdn.received_by("fastly") == []
    response = httpx.post(
        f"{fake_cdn.endpoint('fastly')}/service/{FASTLY_SERVICE}/purge",
        json={"surrogate_keys": keys},
        headers={"Fastly-Key": FASTLY_TOKEN},
    )
    # Then
    assert response.status_code == 400 and "Too many surrogate keys: 257 > 256" in response.text


def test_purge_all_is_never_sent_soft(fake_cdn: FakeCDN) -> None:
    provider(fake_cdn).purge(request(TargetKind.ALL, "*", soft=True), idempotency_token="t")
    (received,) = fake_cdn.received_by("fastly")
    assert received.path == f"/service/{FASTLY_SERVICE}/purge_all"
    assert "fastly-soft-purge" not in received.headers


def test_wrong_token_is_an_auth_error_without_the_token(fake_cdn: FakeCDN, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-token-0123456789abcdef"
    with pytest.raises(AuthError) as raised:
        provider(fake_cdn, token=secret).purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert raised.value.status == 401
    everything = str(raised.value) + repr(raised.value) + caplog.text + repr(fake_cdn.received)
    assert secret not in everything


def test_unknown_service_is_not_found(fake_cdn: FakeCDN) -> None:
    with pytest.raises(NotFoundError, match="Record not found"):
        provider(fake_cdn, service_id="NoSuchService").purge(request(TargetKind.KEY, "a"), idempotency_token="t")


def test_rate_limit_429_carries_fastly_reset_as_retry_after(fake_cdn: FakeCDN) -> None:
    # Given: the fake's rate limit, 1 call/s, burst 1
    behaviour = fake_cdn.behaviours["fastly"]
    behaviour.rate_per_second, behaviour._tokens = 1.0, 1.0
    adapter = provider(fake_cdn)
    adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    # When
    with pytest.raises(ThrottledError) as raised:
        adapter.purge(request(TargetKind.KEY, "b"), idempotency_token="t")
    # Then
    assert raised.value.status == 429
    assert raised.value.retry_after is not None and 0 <= raised.value.retry_after <= 2.0
    assert fake_cdn.throttled == 1


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_unavailable_and_retryable(fake_cdn: FakeCDN, status: int) -> None:
    fake_cdn.inject("fastly", Fault(status=status))
    with pytest.raises(UnavailableError) as raised:
        provider(fake_cdn).purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert raised.value.retryable and raised.value.status == status


def test_dropped_connection_and_timeout_are_unavailable(fake_cdn: FakeCDN) -> None:
    # Given: a dropped connection, then a slow answer
    fake_cdn.inject("fastly", Fault(drop=True))
    adapter = provider(fake_cdn)
    with pytest.raises(UnavailableError, match="RemoteProtocolError calling POST"):
        adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    fake_cdn.inject("fastly", Fault(delay=0.5))
    slow = FastlyProvider(
        FastlySettings(
            name="fastly",
            kind="fastly",
            service_id=FASTLY_SERVICE,
            endpoint=fake_cdn.endpoint("fastly"),
            timeout_seconds=0.1,
        ),
        {"token": SecretStr(FASTLY_TOKEN)},
    )
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="timed out"):
        slow.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert time.monotonic() - started < 0.45


def test_requests_only_go_to_the_configured_base(fake_cdn: FakeCDN) -> None:
    adapter = provider(fake_cdn)
    assert adapter.base_url == fake_cdn.endpoint("fastly")
    default = FastlyProvider(
        FastlySettings(name="f", kind="fastly", service_id="S1"), {"token": SecretStr(FASTLY_TOKEN)}
    )
    assert default.base_url == "https://api.fastly.com"


# -- paths that would resolve to another endpoint ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"https://www.example.com/a/../../../service/{FASTLY_SERVICE}/purge_all",
        f"https://www.example.com/a/%2e%2e/%2E%2E/%2e%2E/service/{FASTLY_SERVICE}/purge_all",
        f"https://www.example.com/a/%252e%252e/%252e%252e/%252e%252e/service/{FASTLY_SERVICE}/purge_all",
        "https://www.example.com/./a.html",
    ],
)
def test_a_url_with_dot_segments_is_a_plan_error_and_never_reaches_purge_all(fake_cdn: FakeCDN, url: str) -> None:
    # Given: a URL target that httpx (or the server) would resolve to .../service/SID/purge_all
    adapter = provider(fake_cdn)
    routed = [
        RoutedTarget("c1", Target(TargetKind.URL, url), None, None),
        RoutedTarget("c2", Target(TargetKind.URL, "https://www.example.com/ok.html"), None, None),
    ]
    # When
    result = plan(routed, {"fastly": adapter.spec})
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    with pytest.raises(RejectedError, match=DOT_SEGMENTS):
        adapter.purge(request(TargetKind.URL, url), idempotency_token="t")
    # Then: only the other change's URL was purged; the error names the problem and the change
    (error,) = result.errors
    assert error.change_ids == {"c1"} and DOT_SEGMENTS in error.message
    assert [r.path for r in fake_cdn.received_by("fastly")] == ["/purge/www.example.com/ok.html"]
    assert not any("purge_all" in r.path or r.purged == ("all (hard)",) for r in fake_cdn.received_by("fastly"))


def test_a_single_key_with_dot_segments_is_refused_before_sending(fake_cdn: FakeCDN) -> None:
    # Given: a key that would be the path segment `..` after `/service/SID/purge/`
    with pytest.raises(RejectedError, match=DOT_SEGMENTS):
        provider(fake_cdn).purge(request(TargetKind.KEY, ".."), idempotency_token="t")
    # Then
    assert fake_cdn.received_by("fastly") == []


@pytest.mark.parametrize("path", [f"service/{FASTLY_SERVICE}/purge/x/../../purge_all", "purge/a/%2E%2E/b"])
def test_the_shared_http_flow_refuses_any_call_path_with_dot_segments(fake_cdn: FakeCDN, path: str) -> None:
    # When: whatever an adapter builds, `send` (shared by every HTTP adapter) checks the path it would call
    with pytest.raises(RejectedError, match=f"refused to call POST .*{DOT_SEGMENTS}"):
        provider(fake_cdn).send(ApiCall("POST", path))
    # Then
    assert fake_cdn.received_by("fastly") == []


# -- answers that are not JSON -------------------------------------------------------------------------------


def test_a_2xx_that_is_not_json_is_rejected_with_the_body_text_bounded(fake_cdn: FakeCDN) -> None:
    # Given: a maintenance page answering 200 in front of the API, then a long one
    page = b"<html><body>Down for maintenance</body></html>"
    fake_cdn.inject("fastly", Fault(status=200, body=page))
    fake_cdn.inject("fastly", Fault(status=200, body=b"<p>" + b"x" * 5000))
    adapter = provider(fake_cdn)
    # When / Then: a ProviderError the executor handles, not a JSONDecodeError that escapes it
    with pytest.raises(RejectedError, match="response is not JSON: '<html><body>Down for maintenance") as raised:
        adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert raised.value.status == 200
    with pytest.raises(RejectedError) as long_page:
        adapter.purge(request(TargetKind.KEY, "a", "b"), idempotency_token="t")
    assert len(long_page.value.message) < 300
