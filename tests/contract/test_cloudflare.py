"""Cloudflare adapter against the fake Cloudflare purge API on loopback: every operation, limit and error.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`; this file holds what is particular to Cloudflare."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import AuthError, NotFoundError, RejectedError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers import cloudflare
from cdnpurge.runtime.providers.cloudflare import CloudflareProvider, CloudflareSettings
from cdnpurge_local.fakecdn.cloudflare import CloudflareBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

TOKEN = "cf-test-token-not-real-0123456789"
ZONE = "0123456789abcdef0123456789abcdef"
PURGE_PATH = f"/zones/{ZONE}/purge_cache"


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([CloudflareBehaviour(token=TOKEN, zone_id=ZONE)]) as fake:
        yield fake


class TestContract(HttpContract):
    case = HttpCase(
        adapter=CloudflareProvider,
        settings={"zone_id": ZONE},
        limit_kind=TargetKind.KEY,
        targets=lambda n: tuple(f"tag-{i}" for i in range(n)),
        # Cloudflare answers an unknown zone with 400 and code 7003, a wrong token with 403 and code 10000.
        missing={"zone_id": "f" * 32},
        missing_status=400,
        behaviour=lambda: CloudflareBehaviour(token=TOKEN, zone_id=ZONE),
        credentials={"token": TOKEN},
        wrong_credential_status=403,
        over_limit_status=400,
    )


def behaviour(cdn: FakeCDN) -> CloudflareBehaviour:
    found = cdn.behaviours["cloudflare"]
    assert isinstance(found, CloudflareBehaviour)
    return found


def settings(endpoint: str | None = None, **overrides: Any) -> CloudflareSettings:
    values: dict[str, Any] = {
        "name": "cf",
        "kind": "cloudflare",
        "zone_id": ZONE,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return parse_settings(CloudflareSettings, values | overrides)


def provider(cdn: FakeCDN, *, token: str = TOKEN, **overrides: Any) -> CloudflareProvider:
    return CloudflareProvider(settings(cdn.endpoint("cloudflare"), **overrides), {"token": Secret(token)})


def request(kind: TargetKind, *targets: str, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("cf", kind, targets, soft, frozenset({"c1"}))


def raw_post(cdn: FakeCDN, body: Any, *, zone: str = ZONE) -> httpx.Response:
    """Send a body the adapter would never build, to check the fake refuses it as Cloudflare does."""
    return httpx.post(
        f"{cdn.endpoint('cloudflare')}/zones/{zone}/purge_cache",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


# -- operations ------------------------------------------------------------------------------------------


def test_url_purge_sends_files_with_the_bearer_token(cdn: FakeCDN) -> None:
    # When
    result = provider(cdn).purge(
        request(TargetKind.URL, "https://www.example.com/a.html?x=1", "https://www.example.com/b"),
        idempotency_token="t",
    )
    # Then
    (received,) = cdn.received_by("cloudflare")
    assert (received.method, received.path) == ("POST", PURGE_PATH)
    assert received.body == {"files": ["https://www.example.com/a.html?x=1", "https://www.example.com/b"]}
    assert received.headers["authorization"] == "<redacted>"
    assert cdn.purged("cloudflare") == ["url:https://www.example.com/a.html?x=1", "url:https://www.example.com/b"]
    assert result.provider_id is not None and len(result.provider_id) == 32


@pytest.mark.parametrize(
    ("kind", "targets", "body", "purged"),
    [
        (TargetKind.KEY, ("article-1", "home"), {"tags": ["article-1", "home"]}, ["tag:article-1", "tag:home"]),
        (TargetKind.HOST, ("img.example.com",), {"hosts": ["img.example.com"]}, ["host:img.example.com"]),
        (
            TargetKind.PREFIX,
            ("www.example.com/img/", "https://img.example.com/css"),
            {"prefixes": ["www.example.com/img/", "img.example.com/css"]},
            ["prefix:www.example.com/img/", "prefix:img.example.com/css"],
        ),
        (TargetKind.ALL, ("*",), {"purge_everything": True}, ["all"]),
    ],
)
def test_each_purge_type_has_its_body_field(
    cdn: FakeCDN, kind: TargetKind, targets: tuple[str, ...], body: dict[str, Any], purged: list[str]
) -> None:
    # When
    provider(cdn).purge(request(kind, *targets), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("cloudflare")
    assert received.body == body
    assert cdn.purged("cloudflare") == purged


def test_soft_is_not_offered_so_the_planner_sends_hard_purges() -> None:
    # Given: a change asking for a soft purge
    spec = CloudflareProvider.spec_for(settings(soft=True))
    # When
    result = plan([RoutedTarget("c1", Target(TargetKind.KEY, "a"), None, True)], {"cf": spec})
    # Then
    assert not spec.capabilities.soft_purge
    assert [r.soft for r in result.requests] == [False]


def test_the_planner_expands_prefixes_per_host_and_paths_into_urls() -> None:
    # Given
    spec = CloudflareProvider.spec_for(settings(hosts=("www.example.com", "m.example.com")))
    routed = [
        RoutedTarget("c1", Target(TargetKind.PREFIX, "/img/"), None, None),
        RoutedTarget("c2", Target(TargetKind.PATH, "/a.html"), None, None),
    ]
    # When
    result = plan(routed, {"cf": spec})
    # Then
    assert not result.errors
    by_kind = {r.kind: r.targets for r in result.requests}
    assert by_kind[TargetKind.PREFIX] == ("m.example.com/img/", "www.example.com/img/")
    assert by_kind[TargetKind.URL] == ("https://m.example.com/a.html", "https://www.example.com/a.html")


def test_a_host_less_prefix_is_refused_without_calling(cdn: FakeCDN) -> None:
    # When
    with pytest.raises(RejectedError, match="need a host"):
        provider(cdn).purge(request(TargetKind.PREFIX, "/img/"), idempotency_token="t")
    # Then
    assert cdn.received_by("cloudflare") == []


DEEP = "/a" * 31  # with the host: 31 path separators, Cloudflare's most


def test_prefixes_cloudflare_refuses_are_plan_errors_for_their_changes_alone(cdn: FakeCDN) -> None:
    # Given: prefixes from different changes that one request would have carried
    routed = [
        RoutedTarget("ok", Target(TargetKind.PREFIX, "/img/"), None, None),
        RoutedTarget("deepest", Target(TargetKind.PREFIX, DEEP), None, None),
        RoutedTarget("too-deep", Target(TargetKind.PREFIX, "/b" * 32), None, None),
        RoutedTarget("query", Target(TargetKind.PREFIX, "/search?q=1"), None, None),
    ]
    adapter = provider(cdn)
    # When
    result = plan(routed, {"cf": adapter.spec})
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    # Then
    assert [r.status for r in cdn.received_by("cloudflare")] == [200]
    assert sorted(cdn.purged("cloudflare")) == [f"prefix:www.example.com{DEEP}", "prefix:www.example.com/img/"]
    by_change = {change_id: error.message for error in result.errors for change_id in error.change_ids}
    assert set(by_change) == {"too-deep", "query"}
    assert "at most 31 path separators" in by_change["too-deep"]
    assert "query or fragment" in by_change["query"]


def test_a_prefix_over_31_separators_is_refused_before_sending(cdn: FakeCDN) -> None:
    with pytest.raises(RejectedError, match="at most 31 path separators"):
        provider(cdn).purge(request(TargetKind.PREFIX, f"www.example.com{DEEP}/b"), idempotency_token="t")
    assert cdn.received_by("cloudflare") == []


def test_base_url_is_the_v4_api_unless_overridden(cdn: FakeCDN) -> None:
    default = CloudflareProvider(settings(), {"token": Secret(TOKEN)})
    assert default.base_url == "https://api.cloudflare.com/client/v4"
    assert provider(cdn).base_url == cdn.endpoint("cloudflare")


# -- limits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [TargetKind.URL, TargetKind.KEY, TargetKind.HOST, TargetKind.PREFIX])
def test_100_items_are_accepted_on_a_paid_plan(cdn: FakeCDN, kind: TargetKind) -> None:
    # Given
    values = {
        TargetKind.URL: [f"https://www.example.com/{i}" for i in range(100)],
        TargetKind.KEY: [f"tag-{i}" for i in range(100)],
        TargetKind.HOST: [f"h{i}.example.com" for i in range(100)],
        TargetKind.PREFIX: [f"www.example.com/d{i}/" for i in range(100)],
    }[kind]
    # When
    provider(cdn).purge(request(kind, *values), idempotency_token="t")
    # Then
    assert len(cdn.purged("cloudflare")) == 100


@pytest.mark.parametrize("field", ["files", "tags", "hosts", "prefixes"])
def test_the_fake_refuses_101_items_with_an_error_code(cdn: FakeCDN, field: str) -> None:
    # Given
    items = {
        "files": [f"https://www.example.com/{i}" for i in range(101)],
        "tags": [f"t{i}" for i in range(101)],
        "hosts": [f"h{i}.example.com" for i in range(101)],
        "prefixes": [f"www.example.com/{i}/" for i in range(101)],
    }[field]
    # When
    response = raw_post(cdn, {field: items})
    # Then
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["errors"][0]["code"] == 1015


@pytest.mark.parametrize(
    ("plan_name", "url_limit", "rate", "burst"),
    [("free", 30, 5 / 60, 25), ("paid", 100, 5.0, 25), ("business", 100, 10.0, 50), ("enterprise", 500, 50.0, 500)],
)
def test_the_planner_never_exceeds_the_plans_limits(plan_name: str, url_limit: int, rate: float, burst: int) -> None:
    # Given: 1,001 URLs and 201 tags
    spec = CloudflareProvider.spec_for(settings(plan=plan_name))
    routed = [
        RoutedTarget("c1", Target(TargetKind.URL, f"https://www.example.com/{i}"), None, None) for i in range(1001)
    ]
    routed += [RoutedTarget("c2", Target(TargetKind.KEY, f"tag-{i}"), None, None) for i in range(201)]
    # When
    result = plan(routed, {"cf": spec})
    # Then
    urls = [len(r.targets) for r in result.requests if r.kind is TargetKind.URL]
    tags = [len(r.targets) for r in result.requests if r.kind is TargetKind.KEY]
    assert max(urls) == url_limit and sum(urls) == 1001
    assert tags == [100, 100, 1]
    assert (spec.capabilities.rate_per_second, spec.capabilities.burst) == (rate, burst)


def test_the_fake_takes_30_files_on_free_and_refuses_31() -> None:
    # Given
    with FakeCDN([CloudflareBehaviour(token=TOKEN, zone_id=ZONE, plan="free")]) as cdn:
        adapter = provider(cdn, plan="free")
        # When
        adapter.purge(
            request(TargetKind.URL, *(f"https://www.example.com/{i}" for i in range(30))), idempotency_token="t"
        )
        response = raw_post(cdn, {"files": [f"https://www.example.com/{i}" for i in range(31)]})
    # Then
    assert len(cdn.purged("cloudflare")) == 30
    assert response.status_code == 400 and "more than 30 files" in response.json()["errors"][0]["message"]


def test_max_targets_can_lower_but_not_raise_a_limit() -> None:
    assert CloudflareProvider.spec_for(settings(max_targets={"url": 30})).capabilities.max_targets[TargetKind.URL] == 30
    assert (
        CloudflareProvider.spec_for(settings(plan="enterprise", max_targets={"url": 400})).capabilities.max_targets[
            TargetKind.URL
        ]
        == 400
    )
    with pytest.raises(ValueError, match="between 1 and the provider's limit 100"):
        CloudflareProvider.spec_for(settings(max_targets={"url": 101}))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"files": ["https://www.example.com/"]}, None),
        ({"files": [{"url": "https://www.example.com/", "headers": {"Origin": "https://a.example"}}]}, None),
        ({}, 1012),
        ({"files": ["https://a.example/"], "tags": ["a"]}, 1012),
        ({"purge_everything": False}, 1012),
        ({"tags": "a"}, 1014),
        ({"files": ["/relative"]}, 1014),
        ({"prefixes": ["https://www.example.com/a"]}, 1014),
        ({"prefixes": ["www.example.com" + "/a" * 31]}, None),
        ({"prefixes": ["www.example.com" + "/a" * 32]}, 1014),
        ({"hosts": ["www.example.com/a"]}, 1014),
    ],
)
def test_the_fake_checks_body_shapes(cdn: FakeCDN, body: dict[str, Any], code: int | None) -> None:
    # When
    response = raw_post(cdn, body)
    # Then
    if code is None:
        assert response.status_code == 200 and response.json()["success"] is True
    else:
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == code


# -- errors ------------------------------------------------------------------------------------------------


def test_a_200_with_success_false_is_rejected_with_the_first_error(cdn: FakeCDN) -> None:
    # Given
    behaviour(cdn).fail_in_envelope = (1234, "purge refused for this zone")
    # When / Then
    with pytest.raises(RejectedError, match="code 1234: purge refused for this zone") as raised:
        provider(cdn).purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert raised.value.status == 200 and not raised.value.retryable


@pytest.mark.parametrize(("status", "code"), [(403, "10000"), (400, "1000")])
def test_a_bad_token_is_an_auth_error_whichever_status_carries_it(
    cdn: FakeCDN, caplog: pytest.LogCaptureFixture, status: int, code: str
) -> None:
    # Given
    caplog.set_level(logging.DEBUG)
    behaviour(cdn).invalid_token_status = status
    secret = "cf-wrong-token-not-real-9876543210"
    # When
    with pytest.raises(AuthError) as raised:
        provider(cdn, token=secret).purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    # Then
    assert raised.value.status == status
    assert f"code {code}:" in str(raised.value)
    everything = str(raised.value) + repr(raised.value) + caplog.text + repr(cdn.received)
    assert secret not in everything
    assert TOKEN not in everything


def test_an_unknown_zone_is_not_found_though_cloudflare_answers_400(cdn: FakeCDN) -> None:
    # When / Then
    with pytest.raises(NotFoundError, match="code 7003: Could not route") as raised:
        provider(cdn, zone_id="f" * 32).purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    assert raised.value.status == 400 and "(+1 more)" in raised.value.message


@pytest.mark.parametrize(
    ("status", "error"), [(400, RejectedError), (401, AuthError), (403, AuthError), (404, NotFoundError)]
)
def test_statuses_map_to_the_shared_errors(cdn: FakeCDN, status: int, error: type[Exception]) -> None:
    # Given
    cdn.inject("cloudflare", Fault(status=status))
    # When / Then
    with pytest.raises(error, match=f"injected {status}"):
        provider(cdn).purge(request(TargetKind.KEY, "a"), idempotency_token="t")


def test_path_targets_are_not_native() -> None:
    # Given
    spec = CloudflareProvider.spec_for(settings(hosts=()))
    # When
    result = plan([RoutedTarget("c1", Target(TargetKind.PATH, "/a"), None, None)], {"cf": spec})
    # Then
    assert not result.requests and "no `hosts` configured" in result.errors[0].message


def test_unverified_facts_are_listed() -> None:
    assert any("30" in fact and "100" in fact for fact in cloudflare.UNVERIFIED)
    assert any("error codes" in fact for fact in cloudflare.UNVERIFIED)
