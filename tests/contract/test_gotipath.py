"""Gotipath adapter against the fake Gotipath purge API on loopback: both purge types, limits and errors.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`; this file holds what is particular to Gotipath."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import AuthError, RejectedError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers import gotipath
from cdnpurge.runtime.providers.gotipath import GotipathProvider, GotipathSettings
from cdnpurge_local.fakecdn.gotipath import GotipathBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

CLIENT_ID = "gotipath-test-client-not-real"
LIBRARY_ID = "gotipath-test-library-not-real"
API_KEY = "gotipath-test-api-key-not-real"
BEARER = "gotipath-test-bearer-not-real"
DISTRIBUTION = "dist-test-0001"
PURGES_PATH = f"/distributions/{DISTRIBUTION}/purges"
AUTH_HEADERS = ("x-auth-clientid", "x-auth-libraryid", "x-auth-apikey")


def behaviour(**options: Any) -> GotipathBehaviour:
    return GotipathBehaviour(
        client_id=CLIENT_ID, library_id=LIBRARY_ID, api_key=API_KEY, distribution_id=DISTRIBUTION, **options
    )


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([behaviour()]) as fake:
        yield fake


def settings(endpoint: str | None = None, **overrides: Any) -> GotipathSettings:
    values: dict[str, Any] = {
        "name": "goti",
        "kind": "gotipath",
        "distribution_id": DISTRIBUTION,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return parse_settings(GotipathSettings, values | overrides)


def credentials(**overrides: str) -> dict[str, Secret]:
    values = {"client_id": CLIENT_ID, "library_id": LIBRARY_ID, "api_key": API_KEY} | overrides
    return {name: Secret(value) for name, value in values.items()}


def provider(cdn: FakeCDN, creds: dict[str, Secret] | None = None, **overrides: Any) -> GotipathProvider:
    return GotipathProvider(settings(cdn.endpoint("gotipath"), **overrides), creds or credentials())


def request(kind: TargetKind, *targets: str) -> PurgeRequest:
    return PurgeRequest("goti", kind, targets, False, frozenset({"c1"}))


def paths(count: int) -> tuple[str, ...]:
    return tuple(f"/video/{i:03d}.m3u8" for i in range(count))


def raw_post(cdn: FakeCDN, body: Any) -> httpx.Response:
    """A body the adapter would never build, to check the fake refuses it."""
    headers = {"X-Auth-ClientId": CLIENT_ID, "X-Auth-LibraryId": LIBRARY_ID, "X-Auth-ApiKey": API_KEY}
    if isinstance(body, bytes):
        return httpx.post(cdn.endpoint("gotipath") + PURGES_PATH, content=body, headers=headers)
    return httpx.post(cdn.endpoint("gotipath") + PURGES_PATH, json=body, headers=headers)


class TestContract(HttpContract):
    case = HttpCase(
        adapter=GotipathProvider,
        settings={"distribution_id": DISTRIBUTION},
        limit_kind=TargetKind.PATH,
        targets=paths,
        missing={"distribution_id": "dist-missing"},
        behaviour=behaviour,
        credentials={"client_id": CLIENT_ID, "library_id": LIBRARY_ID, "api_key": API_KEY},
    )


# -- operations ------------------------------------------------------------------------------------------


def test_purge_all_sends_the_documented_body(cdn: FakeCDN) -> None:
    # When
    result = provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("gotipath")
    assert (received.method, received.path) == ("POST", PURGES_PATH)
    assert received.body == {"type": "all", "paths": []}
    assert result.provider_id is None
    assert cdn.purged("gotipath") == ["all"]


def test_paths_are_sent_as_type_url_with_query_strings(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.PATH, "/a.html", "/b.js?v=2&x=1"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("gotipath")
    assert received.body == {"type": "url", "paths": ["/a.html", "/b.js?v=2&x=1"]}
    assert cdn.purged("gotipath") == ["url:/a.html", "url:/b.js?v=2&x=1"]


def test_the_three_auth_headers_are_sent_and_redacted_and_no_bearer_by_default(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("gotipath")
    assert all(received.headers[name] == "<redacted>" for name in AUTH_HEADERS)
    assert "authorization" not in received.headers


def test_a_configured_bearer_token_is_sent_too() -> None:
    # Given: a Gotipath account that also wants the bearer token
    with FakeCDN([behaviour(bearer_token=BEARER)]) as cdn:
        # When
        with pytest.raises(AuthError):
            provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
        provider(cdn, credentials(bearer_token=BEARER)).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
        # Then
        assert [r.status for r in cdn.received_by("gotipath")] == [401, 200]
        assert cdn.received_by("gotipath")[1].headers["authorization"] == "<redacted>"
        assert BEARER not in repr(cdn.received)


def test_missing_credentials_fail_at_construction() -> None:
    # When / Then
    with pytest.raises(ValueError, match=r"missing credentials \['api_key'\]"):
        GotipathProvider(settings(), {"client_id": Secret(CLIENT_ID), "library_id": Secret(LIBRARY_ID)})


def test_unverified_facts_are_listed() -> None:
    # Then: the docs/CLI can print what the docs leave open
    assert any('"url"' in fact for fact in gotipath.UNVERIFIED)
    assert any("pattern" in fact for fact in gotipath.UNVERIFIED)
    assert any("limits" in fact for fact in gotipath.UNVERIFIED)
    assert "*Unverified*" in (gotipath.__doc__ or "")


# -- limits ------------------------------------------------------------------------------------------------


def test_declared_defaults_are_conservative_and_prefix_is_not_offered() -> None:
    # Given / When
    caps = GotipathProvider.spec_for(settings()).capabilities
    # Then
    assert dict(caps.max_targets) == {TargetKind.PATH: 50, TargetKind.ALL: 1}
    assert caps.rate_per_second == 1.0 and caps.burst == 1
    assert not caps.soft_purge and not caps.supports(TargetKind.PREFIX)


def test_we_never_send_more_than_our_conservative_50_paths(cdn: FakeCDN) -> None:
    # Given: a fake enforcing no limit, as Gotipath documents none
    adapter = provider(cdn)
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, None) for p in paths(120)]
    # When
    for planned in plan(routed, {"goti": adapter.spec}).requests:
        adapter.purge(planned, idempotency_token="t")
    # Then: every call the fake saw held at most 50 paths, and all 120 were purged
    assert [len(r.body["paths"]) for r in cdn.received_by("gotipath")] == [50, 50, 20]
    assert len(cdn.purged("gotipath")) == 120


def test_a_limit_configured_on_the_fake_is_enforced_and_lowered_max_targets_respect_it() -> None:
    # Given: an account found to take 10 paths per call, and the provider entry lowered to match
    with FakeCDN([behaviour(max_paths=10)]) as cdn:
        adapter = provider(cdn, max_targets={"path": 10})
        routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, None) for p in paths(25)]
        # When
        for planned in plan(routed, {"goti": adapter.spec}).requests:
            adapter.purge(planned, idempotency_token="t")
        with pytest.raises(RejectedError, match="at most 10 paths, got 11") as raised:
            provider(cdn).purge(request(TargetKind.PATH, *paths(11)), idempotency_token="t")
    # Then
    assert [len(r.body["paths"]) for r in cdn.received_by("gotipath")] == [10, 10, 5, 11]
    assert raised.value.status == 422
    assert len(cdn.purged("gotipath")) == 25


def test_the_planner_chunks_by_50_and_turns_urls_into_paths() -> None:
    # Given
    spec = GotipathProvider.spec_for(settings())
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, True) for p in paths(120)]
    routed.append(RoutedTarget("c2", Target(TargetKind.URL, "https://www.example.com/a?b=1"), None, None))
    routed.append(RoutedTarget("c3", Target(TargetKind.PREFIX, "/video/"), None, None))
    # When
    result = plan(routed, {"goti": spec})
    # Then
    assert [len(r.targets) for r in result.requests] == [50, 50, 21]
    assert "/a?b=1" in result.requests[0].targets
    assert not any(r.soft for r in result.requests)
    (error,) = result.errors
    assert "cannot purge by prefix" in error.message


def test_configuration_lowers_the_limits_but_cannot_raise_them() -> None:
    # Given
    lowered = GotipathProvider.spec_for(settings(max_targets={"path": 10}, rate_per_second=0.2))
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, None) for p in paths(25)]
    # When
    result = plan(routed, {"goti": lowered})
    # Then
    assert [len(r.targets) for r in result.requests] == [10, 10, 5]
    assert lowered.capabilities.rate_per_second == 0.2
    with pytest.raises(ValueError, match="must be between 1 and the provider's limit 50"):
        GotipathProvider.spec_for(settings(max_targets={"path": 51}))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "not JSON"),
        (["/a"], 400, "JSON object"),
        ({"type": "all", "paths": ["/a"]}, 422, "paths must be empty when type is all"),
        ({"type": "url", "paths": []}, 422, "paths is required"),
        ({"type": "pattern", "paths": ["/a/*"]}, 422, "type must be one of"),
        ({"type": "url", "paths": ["https://www.example.com/a"]}, 422, "must start with /"),
        ({"type": "url", "paths": ["//www.example.com/a"]}, 422, "must start with /"),
    ],
)
def test_the_fake_checks_type_and_paths(cdn: FakeCDN, body: Any, status: int, message: str) -> None:
    # When
    response = raw_post(cdn, body)
    # Then
    assert response.status_code == status
    assert message in response.text


# -- errors ----------------------------------------------------------------------------------------------


def test_a_relative_path_is_refused_before_calling_and_by_the_fake(cdn: FakeCDN) -> None:
    # When / Then: the adapter refuses it (not a canonical path) without a call
    with pytest.raises(RejectedError, match="must start with '/'") as raised:
        provider(cdn).purge(request(TargetKind.PATH, "a.html"), idempotency_token="t")
    assert not raised.value.retryable and cdn.received_by("gotipath") == []
    # and the fake answers what Gotipath documents for one sent anyway
    response = raw_post(cdn, {"type": "url", "paths": ["a.html"]})
    assert response.status_code == 422 and "paths must start with /" in response.text


def test_400_is_rejected(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("gotipath", Fault(status=400))
    # When / Then
    with pytest.raises(RejectedError, match="injected 400") as raised:
        provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    assert raised.value.status == 400


def test_base_url_is_gotipaths_unless_overridden(cdn: FakeCDN) -> None:
    # Given / When
    default = GotipathProvider(settings(), credentials())
    # Then
    assert default.base_url == "https://apistream.gotipath.com/v1"
    assert provider(cdn).base_url == cdn.endpoint("gotipath")
