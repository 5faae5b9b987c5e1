"""Fastly adapter against the fake Fastly API on loopback: what is particular to Fastly.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`."""

from __future__ import annotations

import pytest
from contract.kit import HttpCase, HttpContract
from helpers import FASTLY_SERVICE, FASTLY_TOKEN

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.runtime.providers.fastly import FastlyProvider, FastlySettings
from cdnpurge.runtime.providers.http import ApiCall
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN

DOT_SEGMENTS = "'.' or '..' path segment"


class TestContract(HttpContract):
    case = HttpCase(
        adapter=FastlyProvider,
        settings={"service_id": FASTLY_SERVICE},
        limit_kind=TargetKind.KEY,
        targets=lambda n: tuple(f"k{i}" for i in range(n)),
        missing={"service_id": "NoSuchService"},
        behaviour=lambda: FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE),
        credentials={"token": FASTLY_TOKEN},
        # `Fastly-RateLimit-Reset` is epoch seconds rounded up: one second of wait reads as 1 to 2 s.
        retry_after=(0.5, 2.0),
        over_limit_status=400,
    )


def provider(cdn: FakeCDN, *, token: str = FASTLY_TOKEN, service_id: str = FASTLY_SERVICE) -> FastlyProvider:
    settings = FastlySettings(name="fastly", kind="fastly", service_id=service_id, endpoint=cdn.endpoint("fastly"))
    return FastlyProvider(settings, {"token": Secret(token)})


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


def test_purge_all_is_never_sent_soft(fake_cdn: FakeCDN) -> None:
    provider(fake_cdn).purge(request(TargetKind.ALL, "*", soft=True), idempotency_token="t")
    (received,) = fake_cdn.received_by("fastly")
    assert received.path == f"/service/{FASTLY_SERVICE}/purge_all"
    assert "fastly-soft-purge" not in received.headers


def test_requests_only_go_to_the_configured_base(fake_cdn: FakeCDN) -> None:
    adapter = provider(fake_cdn)
    assert adapter.base_url == fake_cdn.endpoint("fastly")
    default = FastlyProvider(FastlySettings(name="f", kind="fastly", service_id="S1"), {"token": Secret(FASTLY_TOKEN)})
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
