"""Bunny CDN adapter against the fake Bunny purge API on loopback: what is particular to Bunny.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers import bunny
from cdnpurge.runtime.providers.bunny import BunnyProvider, BunnySettings
from cdnpurge_local.fakecdn.bunny import BunnyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN

ACCESS_KEY = "bunny-test-access-key-not-real"
PULL_ZONE = 12345


def behaviour() -> BunnyBehaviour:
    return BunnyBehaviour(access_key=ACCESS_KEY, pull_zone_id=PULL_ZONE)


class TestContract(HttpContract):
    case = HttpCase(
        adapter=BunnyProvider,
        settings={"pull_zone_id": PULL_ZONE},
        limit_kind=TargetKind.KEY,
        targets=lambda n: tuple(f"product-{i}" for i in range(n)),
        missing={"pull_zone_id": 999},
        behaviour=behaviour,
        credentials={"access_key": ACCESS_KEY},
    )


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([behaviour()]) as fake:
        yield fake


def settings(endpoint: str | None = None, **overrides: Any) -> BunnySettings:
    values: dict[str, Any] = {
        "name": "bunny",
        "kind": "bunny",
        "pull_zone_id": PULL_ZONE,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return parse_settings(BunnySettings, values | overrides)


def provider(cdn: FakeCDN, **overrides: Any) -> BunnyProvider:
    return BunnyProvider(settings(cdn.endpoint("bunny"), **overrides), {"access_key": Secret(ACCESS_KEY)})


def request(kind: TargetKind, *targets: str, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("bunny", kind, targets, soft, frozenset({"c1"}))


# -- operations ------------------------------------------------------------------------------------------


def test_a_url_is_sent_as_the_url_query_parameter_with_the_access_key(cdn: FakeCDN) -> None:
    # When
    result = provider(cdn).purge(
        request(TargetKind.URL, "https://www.example.com/a%20b.css?v=2&x=1"), idempotency_token="t"
    )
    # Then: the URL's own query survives as one encoded parameter
    (received,) = cdn.received_by("bunny")
    assert (received.method, received.status) == ("POST", 200)
    assert received.path.startswith("/purge?url=https%3A%2F%2Fwww.example.com%2Fa%2520b.css%3Fv%3D2%26x%3D1")
    assert received.headers["accesskey"] == "<redacted>"
    assert cdn.purged("bunny") == ["url:https://www.example.com/a%20b.css?v=2&x=1"]
    assert result.provider_id is None and result.detail == "purged"


def test_a_url_ending_with_a_slash_is_purged_exactly_not_as_a_prefix(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.URL, "https://www.example.com/blog/"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("bunny")
    assert received.path.endswith("&exactPath=true")
    assert cdn.purged("bunny") == ["url:https://www.example.com/blog/"]


def test_the_fake_purges_a_trailing_slash_without_exact_path_as_a_prefix(cdn: FakeCDN) -> None:
    # Given: the call the adapter avoids, as Bunny documents it
    url = cdn.endpoint("bunny") + "/purge"
    # When
    response = httpx.post(url, params={"url": "https://www.example.com/blog/"}, headers={"AccessKey": ACCESS_KEY})
    # Then
    assert response.status_code == 200
    assert cdn.purged("bunny") == ["prefix:https://www.example.com/blog/"]


def test_a_cache_tag_is_sent_as_cache_tag_to_the_pull_zone(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.KEY, "product-7"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("bunny")
    assert (received.path, received.status) == (f"/pullzone/{PULL_ZONE}/purgeCache", 204)
    assert received.body == {"CacheTag": "product-7"}
    assert cdn.purged("bunny") == ["tag:product-7"]


def test_all_purges_the_pull_zone_without_a_body(cdn: FakeCDN) -> None:
    # When
    provider(cdn).purge(request(TargetKind.ALL, "*"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("bunny")
    assert (received.path, received.status, received.body) == (f"/pullzone/{PULL_ZONE}/purgeCache", 204, None)
    assert cdn.purged("bunny") == ["all"]


def test_soft_is_not_offered_so_the_planner_sends_hard_purges() -> None:
    # When
    result = plan(
        [RoutedTarget("c1", Target(TargetKind.KEY, "product-7"), None, True)],
        {"bunny": BunnyProvider.spec_for(settings())},
    )
    # Then
    assert [(r.kind, r.soft) for r in result.requests] == [(TargetKind.KEY, False)]


def test_the_planner_sends_one_call_per_target_and_turns_paths_into_urls() -> None:
    # Given
    spec = BunnyProvider.spec_for(settings(hosts=("www.example.com", "static.example.com")))
    routed = [
        RoutedTarget("c1", Target(TargetKind.PATH, "/a.css"), None, None),
        RoutedTarget("c2", Target(TargetKind.KEY, "t1"), None, None),
        RoutedTarget("c2", Target(TargetKind.KEY, "t2"), None, None),
        RoutedTarget("c3", Target(TargetKind.PREFIX, "/img/"), None, None),
    ]
    # When
    result = plan(routed, {"bunny": spec})
    # Then
    assert sorted((r.kind.value, r.targets) for r in result.requests) == [
        ("key", ("t1",)),
        ("key", ("t2",)),
        ("url", ("https://static.example.com/a.css",)),
        ("url", ("https://www.example.com/a.css",)),
    ]
    (error,) = result.errors
    assert error.change_ids == {"c3"} and "cannot purge by prefix" in error.message


# -- what Bunny would purge as a wildcard, or cannot match -------------------------------------------------


def test_a_url_holding_a_star_is_a_plan_error_for_its_change_alone_and_refused_by_purge(cdn: FakeCDN) -> None:
    # Given
    adapter = provider(cdn)
    routed = [
        RoutedTarget("c1", Target(TargetKind.URL, "https://www.example.com/img/*"), None, None),
        RoutedTarget("c2", Target(TargetKind.URL, "https://www.example.com/ok.png"), None, None),
    ]
    # When
    result = plan(routed, {"bunny": adapter.spec})
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    with pytest.raises(RejectedError, match="wildcard"):
        adapter.purge(request(TargetKind.URL, "https://www.example.com/img/*"), idempotency_token="t")
    # Then: only the other change's URL reached Bunny
    (error,) = result.errors
    assert error.change_ids == {"c1"} and "wildcard" in error.message
    assert cdn.purged("bunny") == ["url:https://www.example.com/ok.png"]


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (TargetKind.URL, "/relative.css", "absolute http"),
        (TargetKind.URL, "ftp://www.example.com/a", "absolute http"),
        (TargetKind.KEY, "t" * 1025, "at most 1024 bytes"),
    ],
)
def test_targets_bunny_cannot_take_are_refused_before_sending(
    cdn: FakeCDN, kind: TargetKind, value: str, message: str
) -> None:
    with pytest.raises(RejectedError, match=message):
        provider(cdn).purge(request(kind, value), idempotency_token="t")
    assert cdn.received_by("bunny") == []


def test_a_1024_byte_tag_is_sent() -> None:
    assert BunnyProvider.render(settings(), Target(TargetKind.KEY, "t" * 1024)) == "t" * 1024


@pytest.mark.parametrize(
    ("path", "params", "body", "message"),
    [
        ("/purge", {}, None, "url is required"),
        ("/purge", {"url": "www.example.com/a"}, None, "url must be an absolute URL"),
        ("/purge", {"url": "https://www.example.com/a", "exactPath": "yes"}, None, "exactPath must be true or false"),
        (f"/pullzone/{PULL_ZONE}/purgeCache", {}, b"not json", "not valid JSON"),
        (f"/pullzone/{PULL_ZONE}/purgeCache", {}, b'{"CacheTag": 7}', "one optional string CacheTag"),
        (f"/pullzone/{PULL_ZONE}/purgeCache", {}, b'{"Tags": ["a"]}', "one optional string CacheTag"),
    ],
)
def test_the_fake_refuses_malformed_calls_with_bunnys_error_model(
    cdn: FakeCDN, path: str, params: dict[str, str], body: bytes | None, message: str
) -> None:
    # When
    response = httpx.post(cdn.endpoint("bunny") + path, params=params, content=body, headers={"AccessKey": ACCESS_KEY})
    # Then
    assert response.status_code == 400
    assert message in response.json()["Message"] and response.json()["ErrorKey"] == "validation"


def test_a_400_is_rejected_with_bunnys_error_key_message_and_field(cdn: FakeCDN) -> None:
    # Given: a URL the adapter would never send, past its own check
    adapter = provider(cdn)
    call = adapter.build_request(request(TargetKind.URL, "www.example.com/a"))
    # When / Then
    with pytest.raises(RejectedError, match=r"validation: url must be an absolute URL: .* \(field url\)") as raised:
        adapter.send(call)
    assert raised.value.status == 400 and not raised.value.retryable


# -- declarations ----------------------------------------------------------------------------------------


def test_declared_limits_and_pacing_are_the_documented_exact_purge_bucket() -> None:
    # When
    caps = BunnyProvider.spec_for(settings()).capabilities
    # Then
    assert dict(caps.max_targets) == {TargetKind.URL: 1, TargetKind.KEY: 1, TargetKind.ALL: 1}
    assert (caps.rate_per_second, caps.burst) == (5.0, 120)
    assert not caps.soft_purge and not caps.asynchronous
    assert BunnyProvider.spec_for(settings(rate_per_second=0.5)).capabilities.rate_per_second == 0.5


def test_unverified_facts_are_declared_and_in_the_docstring() -> None:
    assert BunnyProvider.docs.unverified == bunny.UNVERIFIED
    assert any("Retry-After" in fact for fact in bunny.UNVERIFIED)
    assert any("bucket" in fact for fact in bunny.UNVERIFIED)
    assert any("CacheTag" in fact for fact in bunny.UNVERIFIED)
    assert "*Unverified*" in (bunny.__doc__ or "")


def test_base_url_is_bunnys_api_unless_overridden(cdn: FakeCDN) -> None:
    default = BunnyProvider(settings(), {"access_key": Secret(ACCESS_KEY)})
    assert default.base_url == "https://api.bunny.net"
    assert provider(cdn).base_url == cdn.endpoint("bunny")


def test_the_pull_zone_id_must_be_a_positive_number() -> None:
    with pytest.raises(ValueError, match="pull_zone_id"):
        settings(pull_zone_id=0)
