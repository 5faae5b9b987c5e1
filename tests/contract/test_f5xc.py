"""F5 XC CDN adapter against the fake F5 XC cache-purge API on loopback: every operation, limit and error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cdnpurge.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.plan import plan
from cdnpurge.providers.errors import AuthError, NotFoundError, RejectedError, ThrottledError, UnavailableError
from cdnpurge.providers.f5xc import F5xcProvider, F5xcSettings
from cdnpurge_local.fakecdn.f5xc import F5xcBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

TOKEN = "f5-test-token-not-real"
TENANT = "example-tenant"
NAMESPACE = "shop"
LOAD_BALANCER = "www-cdn"


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([F5xcBehaviour(token=TOKEN, namespace=NAMESPACE, load_balancer=LOAD_BALANCER)]) as fake:
        yield fake


def settings(endpoint: str | None = None, **overrides: Any) -> F5xcSettings:
    values: dict[str, Any] = {
        "name": "f5",
        "kind": "f5xc",
        "tenant": TENANT,
        "namespace": NAMESPACE,
        "load_balancer": LOAD_BALANCER,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return F5xcSettings(**(values | overrides))


def provider(cdn: FakeCDN, *, token: str = TOKEN, **overrides: Any) -> F5xcProvider:
    return F5xcProvider(settings(cdn.endpoint("f5xc"), **overrides), {"token": SecretStr(token)})


def request(kind: TargetKind, *targets: str, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("f5", kind, targets, soft, frozenset({"c1"}))


PURGE_PATH = f"/api/cdn/namespaces/{NAMESPACE}/cdn_loadbalancer/{LOAD_BALANCER}/cache-purge"


def raw_post(cdn: FakeCDN, body: Any) -> httpx.Response:
    """Send a body the adapter would never build, to check the fake refuses it as F5 XC does."""
    return httpx.post(cdn.endpoint("f5xc") + PURGE_PATH, json=body, headers={"Authorization": f"APIToken {TOKEN}"})


# -- operations ------------------------------------------------------------------------------------------


def test_url_purge_sends_one_url_soft_with_the_api_token(cdn: FakeCDN) -> None:
    # When
    result = provider(cdn).purge(
        request(TargetKind.URL, "https://www.example.com/a.html?x=1", soft=True), idempotency_token="t"
    )
    # Then
    (received,) = cdn.received_by("f5xc")
    assert received.method == "POST"
    assert received.path == PURGE_PATH
    assert received.body == {"url": "https://www.example.com/a.html?x=1", "soft_purge": {}}
    assert received.headers["authorization"] == "<redacted>"
    assert cdn.purged("f5xc") == ["url:https://www.example.com/a.html?x=1 (soft)"]
    assert result.provider_id == "1"  # the example's numeric id, read as a string


def test_hostname_purge_is_hard_by_default(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("f5xc")
    assert received.body == {"hostname": "www.example.com", "hard_purge": {}}
    assert cdn.purged("f5xc") == ["hostname:www.example.com (hard)"]


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [("/img/", "^/img/.*"), ("/img", "^/img.*"), ("/a.b+c/(x)/", r"^/a\.b\+c/\(x\)/.*")],
)
def test_prefix_becomes_a_path_anchored_escaped_pattern(cdn: FakeCDN, prefix: str, pattern: str) -> None:
    # Given
    adapter = provider(cdn)
    # When
    adapter.purge(request(TargetKind.PREFIX, prefix, soft=True), idempotency_token="t")
    # Then
    assert adapter.spec.render(Target(TargetKind.PREFIX, prefix)) == pattern
    (received,) = cdn.received_by("f5xc")
    assert received.body == {"pattern": pattern, "soft_purge": {}}
    assert cdn.purged("f5xc") == [f"pattern:{pattern} (soft)"]


@pytest.mark.parametrize(("soft", "mode"), [(True, "soft"), (False, "hard")])
def test_purge_all_soft_and_hard(cdn: FakeCDN, soft: bool, mode: str) -> None:
    # When
    provider(cdn).purge(request(TargetKind.ALL, "*", soft=soft), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("f5xc")
    assert received.body == {"purge_all": {}, f"{mode}_purge": {}}
    assert cdn.purged("f5xc") == [f"all ({mode})"]


def test_a_string_purge_request_id_is_accepted(cdn: FakeCDN) -> None:
    # Given
    cdn.behaviours["f5xc"].string_ids = True  # type: ignore[attr-defined]
    # When
    result = provider(cdn).purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    # Then
    assert result.provider_id == "purge-000001"


def test_base_url_is_the_tenant_console_unless_overridden(cdn: FakeCDN) -> None:
    # Given / When
    default = F5xcProvider(settings(), {"token": SecretStr(TOKEN)})
    # Then
    assert default.base_url == f"https://{TENANT}.console.ves.volterra.io"
    assert provider(cdn).base_url == cdn.endpoint("f5xc")


# -- limits: one target per call -------------------------------------------------------------------------


def test_the_planner_makes_one_call_per_target_and_paths_become_urls() -> None:
    # Given: three paths (not native: converted per host), two prefixes, one host
    spec = F5xcProvider.spec_for(settings(hosts=("www.example.com", "img.example.com")))
    routed = [
        RoutedTarget("c1", Target(TargetKind.PATH, "/a.html"), None, None),
        RoutedTarget("c1", Target(TargetKind.PATH, "/b.html"), None, True),
        RoutedTarget("c2", Target(TargetKind.PREFIX, "/img/"), None, None),
        RoutedTarget("c2", Target(TargetKind.PREFIX, "/css/"), None, None),
        RoutedTarget("c3", Target(TargetKind.HOST, "www.example.com"), None, None),
    ]
    # When
    result = plan(routed, {"f5": spec})
    # Then
    assert not result.errors
    assert all(len(r.targets) == 1 for r in result.requests)
    urls = sorted(r.targets[0] for r in result.requests if r.kind is TargetKind.URL)
    assert urls == [
        "https://img.example.com/a.html",
        "https://img.example.com/b.html",
        "https://www.example.com/a.html",
        "https://www.example.com/b.html",
    ]
    assert [r.soft for r in result.requests if r.targets[0].endswith("b.html")] == [True, True]
    assert len(result.requests) == 7


def test_the_adapter_refuses_two_targets_in_one_call_without_calling(cdn: FakeCDN) -> None:
    # When
    with pytest.raises(RejectedError, match="2 url targets; F5 XC takes 1 to 1 per call"):
        provider(cdn).purge(
            request(TargetKind.URL, "https://a.example/x", "https://a.example/y"), idempotency_token="t"
        )
    # Then
    assert cdn.received_by("f5xc") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "https://a.example/x", "soft_purge": {}}, None),
        ({"url": "https://a.example/x", "hostname": "a.example", "soft_purge": {}}, "exactly one of"),
        ({"soft_purge": {}}, "exactly one of"),
        ({"url": "https://a.example/x", "soft_purge": {}, "hard_purge": {}}, "exactly one of"),
        ({"url": "https://a.example/x"}, "exactly one of"),
        ({"pattern": "^/img/(", "hard_purge": {}}, "not a valid regular expression"),
        ({"purge_all": True, "hard_purge": {}}, "purge_all must be an empty object"),
        ({"urls": ["https://a.example/x"], "hard_purge": {}}, "unknown field"),
    ],
)
def test_the_fake_accepts_one_target_and_one_mode_and_refuses_the_rest(
    cdn: FakeCDN, body: dict[str, Any], message: str | None
) -> None:
    # When
    response = raw_post(cdn, body)
    # Then
    if message is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert message in response.json()["message"]


# -- errors ----------------------------------------------------------------------------------------------


def test_wrong_token_is_401_and_never_leaks(cdn: FakeCDN, caplog: pytest.LogCaptureFixture) -> None:
    # Given
    caplog.set_level(logging.DEBUG)
    secret = "f5-wrong-token-not-real-0123"
    # When
    with pytest.raises(AuthError) as raised:
        provider(cdn, token=secret).purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    # Then
    assert raised.value.status == 401
    assert "invalid or expired API token" in str(raised.value)
    everything = str(raised.value) + repr(raised.value) + caplog.text + repr(cdn.received)
    assert secret not in everything
    assert TOKEN not in everything


def test_the_right_token_never_appears_in_records_or_logs(cdn: FakeCDN, caplog: pytest.LogCaptureFixture) -> None:
    # Given
    caplog.set_level(logging.DEBUG)
    adapter = provider(cdn)
    # When: one call succeeds, the next fails
    adapter.purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    cdn.inject("f5xc", Fault(status=500))
    with pytest.raises(UnavailableError) as raised:
        adapter.purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    # Then
    assert [r.status for r in cdn.received_by("f5xc")] == [200, 500]
    assert TOKEN not in str(raised.value) + caplog.text + repr(cdn.received) + repr(adapter.spec)


def test_403_is_an_auth_error(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("f5xc", Fault(status=403))
    # When / Then
    with pytest.raises(AuthError) as raised:
        provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"namespace": "other"}, "namespace 'other' not found"), ({"load_balancer": "nope"}, "shop/nope not found")],
)
def test_unknown_namespace_or_load_balancer_is_not_found(cdn: FakeCDN, overrides: dict[str, str], message: str) -> None:
    # When / Then
    with pytest.raises(NotFoundError, match=message) as raised:
        provider(cdn, **overrides).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    assert raised.value.status == 404


def test_409_conflict_is_rejected_and_not_retryable(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("f5xc", Fault(status=409))
    # When / Then
    with pytest.raises(RejectedError, match="injected 409") as raised:
        provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    assert raised.value.status == 409 and not raised.value.retryable


def test_rate_limited_429_is_throttled_with_retry_after() -> None:
    # Given: F5 XC at 1 call/s, burst 1
    behaviour = F5xcBehaviour(
        token=TOKEN, namespace=NAMESPACE, load_balancer=LOAD_BALANCER, rate_per_second=1.0, burst=1
    )
    with FakeCDN([behaviour]) as cdn:
        adapter = provider(cdn)
        adapter.purge(request(TargetKind.HOST, "a.example"), idempotency_token="t")
        # When
        with pytest.raises(ThrottledError) as raised:
            adapter.purge(request(TargetKind.HOST, "b.example"), idempotency_token="t")
        # Then
        assert raised.value.status == 429 and raised.value.retryable
        assert raised.value.retry_after == 1.0
        assert cdn.throttled == 1


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_unavailable_and_retryable(cdn: FakeCDN, status: int) -> None:
    # Given
    cdn.inject("f5xc", Fault(status=status))
    # When / Then
    with pytest.raises(UnavailableError) as raised:
        provider(cdn).purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")
    assert raised.value.retryable and raised.value.status == status


def test_dropped_connection_is_unavailable(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("f5xc", Fault(drop=True))
    # When / Then
    with pytest.raises(UnavailableError, match="calling POST"):
        provider(cdn).purge(request(TargetKind.HOST, "www.example.com"), idempotency_token="t")


def test_key_targets_are_not_supported(cdn: FakeCDN) -> None:
    # Given
    spec = F5xcProvider.spec_for(settings())
    # When
    result = plan([RoutedTarget("c1", Target(TargetKind.KEY, "article-1"), None, None)], {"f5": spec})
    # Then
    assert not result.requests
    assert "cannot purge by key" in result.errors[0].message
    with pytest.raises(RejectedError, match="not supported"):
        provider(cdn).purge(request(TargetKind.KEY, "article-1"), idempotency_token="t")
