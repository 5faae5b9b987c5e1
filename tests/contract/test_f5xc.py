"""F5 XC CDN adapter against the fake F5 XC cache-purge API on loopback: every operation, limit and error.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`; this file holds what is particular to F5 XC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import NotFoundError, RejectedError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers.f5xc import F5xcProvider, F5xcSettings
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


class TestContract(HttpContract):
    case = HttpCase(
        adapter=F5xcProvider,
        settings={"tenant": TENANT, "namespace": NAMESPACE, "load_balancer": LOAD_BALANCER},
        limit_kind=TargetKind.URL,
        targets=lambda n: tuple(f"https://www.example.com/{i}.html" for i in range(n)),
        missing={"load_balancer": "nope"},
        behaviour=lambda: F5xcBehaviour(token=TOKEN, namespace=NAMESPACE, load_balancer=LOAD_BALANCER),
        credentials={"token": TOKEN},
    )


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
    return parse_settings(F5xcSettings, values | overrides)


def provider(cdn: FakeCDN, *, token: str = TOKEN, **overrides: Any) -> F5xcProvider:
    return F5xcProvider(settings(cdn.endpoint("f5xc"), **overrides), {"token": Secret(token)})


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
    default = F5xcProvider(settings(), {"token": Secret(TOKEN)})
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
