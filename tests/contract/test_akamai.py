"""Akamai Fast Purge v3 adapter against the fake Fast Purge API on loopback, EdgeGrid signatures verified.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`; this file holds what is particular to Akamai."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import RejectedError, ThrottledError
from cdnpurge.core.schema import DocumentError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers import akamai
from cdnpurge.runtime.providers.akamai import AkamaiProvider, AkamaiSettings
from cdnpurge.runtime.providers.edgegrid import EdgeGridAuth
from cdnpurge_local.fakecdn.akamai import AkamaiBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

# Made-up credentials in EdgeGrid's shape; not real.
CLIENT_TOKEN = "akab-client-token-not-real-0000"
CLIENT_SECRET = "fake-secret-not-real-AAAAAAAAAAAAAAAAAAAAAAAAAAAA="
ACCESS_TOKEN = "akab-access-token-not-real-0000"
HOST = "akab-test-not-real.purge.akamaiapis.net"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN)


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    behaviour = AkamaiBehaviour(client_token=CLIENT_TOKEN, client_secret=CLIENT_SECRET, access_token=ACCESS_TOKEN)
    with FakeCDN([behaviour]) as fake:
        yield fake


class TestContract(HttpContract):
    case = HttpCase(
        adapter=AkamaiProvider,
        settings={"host": HOST},
        limit_kind=TargetKind.KEY,  # cache tags: 5,000 per call, the tag bucket
        targets=lambda n: tuple(f"t{i}" for i in range(n)),
        missing=None,
        behaviour=lambda: AkamaiBehaviour(
            client_token=CLIENT_TOKEN, client_secret=CLIENT_SECRET, access_token=ACCESS_TOKEN
        ),
        credentials={"client_token": CLIENT_TOKEN, "client_secret": CLIENT_SECRET, "access_token": ACCESS_TOKEN},
        # No Retry-After: the wait comes from the empty request bucket's refill rate (1 token at 50/s).
        retry_after=(0.02, 0.02),
    )


def settings(endpoint: str | None = None, **overrides: Any) -> AkamaiSettings:
    values: dict[str, Any] = {
        "name": "ak",
        "kind": "akamai",
        "host": HOST,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return parse_settings(AkamaiSettings, values | overrides)


def credentials(**overrides: str) -> dict[str, Secret]:
    values = {"client_token": CLIENT_TOKEN, "client_secret": CLIENT_SECRET, "access_token": ACCESS_TOKEN}
    return {name: Secret(value) for name, value in (values | overrides).items()}


def provider(cdn: FakeCDN, *, creds: dict[str, Secret] | None = None, **overrides: Any) -> AkamaiProvider:
    return AkamaiProvider(settings(cdn.endpoint("akamai"), **overrides), creds or credentials())


def request(kind: TargetKind, *targets: str, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("ak", kind, targets, soft, frozenset({"c1"}))


def raw_post(cdn: FakeCDN, path: str, body: bytes, *, auth: EdgeGridAuth | None = None) -> httpx.Response:
    """A correctly signed request with a body the adapter would never send."""
    signer = auth or EdgeGridAuth(CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN)
    with httpx.Client(auth=signer) as client:
        return client.post(cdn.endpoint("akamai") + path, content=body, headers={"Content-Type": "application/json"})


def wire_size(body: Any) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


# -- operations ------------------------------------------------------------------------------------------


def test_soft_url_purge_is_a_signed_invalidate_on_production(cdn: FakeCDN) -> None:
    # When
    result = provider(cdn).purge(
        request(TargetKind.URL, "https://www.example.com/a.html?x=1", "https://www.example.com/b", soft=True),
        idempotency_token="t",
    )
    # Then
    (received,) = cdn.received_by("akamai")
    assert (received.method, received.path, received.status) == ("POST", "/ccu/v3/invalidate/url/production", 201)
    assert received.body == {"objects": ["https://www.example.com/a.html?x=1", "https://www.example.com/b"]}
    assert received.headers["authorization"] == "<redacted>"
    assert cdn.purged("akamai") == [
        "url:https://www.example.com/a.html?x=1 (invalidate, production)",
        "url:https://www.example.com/b (invalidate, production)",
    ]
    assert result.provider_id is not None and result.provider_id.startswith("edcp-")
    assert result.extra["estimatedSeconds"] == 5 and result.detail == "Request accepted"


@pytest.mark.parametrize(
    ("soft", "network", "path", "record"),
    [
        (False, "production", "/ccu/v3/delete/tag/production", "tag:article-1 (delete, production)"),
        (True, "staging", "/ccu/v3/invalidate/tag/staging", "tag:article-1 (invalidate, staging)"),
        (False, "staging", "/ccu/v3/delete/tag/staging", "tag:article-1 (delete, staging)"),
    ],
)
def test_soft_and_hard_change_the_path_and_so_does_the_network(
    cdn: FakeCDN, soft: bool, network: str, path: str, record: str
) -> None:
    # When
    provider(cdn, network=network).purge(request(TargetKind.KEY, "article-1", soft=soft), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("akamai")
    assert received.path == path
    assert cdn.purged("akamai") == [record]


def test_keys_can_be_cp_codes_sent_as_numbers(cdn: FakeCDN) -> None:
    # When
    provider(cdn, keys_are="cpcode").purge(request(TargetKind.KEY, "12345", "678"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("akamai")
    assert received.path == "/ccu/v3/delete/cpcode/production"
    assert received.body == {"objects": [12345, 678]}
    assert cdn.purged("akamai") == ["cpcode:12345 (delete, production)", "cpcode:678 (delete, production)"]


def test_a_non_numeric_cp_code_is_refused_without_calling(cdn: FakeCDN) -> None:
    with pytest.raises(RejectedError, match="CP codes must be numbers"):
        provider(cdn, keys_are="cpcode").purge(request(TargetKind.KEY, "article-1"), idempotency_token="t")
    assert cdn.received_by("akamai") == []


def test_the_planner_uses_the_configured_default_mode_and_turns_paths_into_urls() -> None:
    # Given: an entry that invalidates by default, and one change asking for a hard purge
    spec = AkamaiProvider.spec_for(settings(soft=True))
    routed = [
        RoutedTarget("c1", Target(TargetKind.PATH, "/a.html"), None, None),
        RoutedTarget("c2", Target(TargetKind.KEY, "article-1"), None, False),
    ]
    # When
    result = plan(routed, {"ak": spec})
    # Then
    assert not result.errors
    assert {(r.kind, r.targets, r.soft) for r in result.requests} == {
        (TargetKind.URL, ("https://www.example.com/a.html",), True),
        (TargetKind.KEY, ("article-1",), False),
    }


def test_base_url_is_the_edgegrid_host_and_only_akamai_hosts_are_accepted(cdn: FakeCDN) -> None:
    # Given / When
    default = AkamaiProvider(settings(), credentials())
    # Then
    assert default.base_url == f"https://{HOST}"
    assert provider(cdn).base_url == cdn.endpoint("akamai")
    with pytest.raises(DocumentError):
        settings(host="attacker.example.com")
    with pytest.raises(DocumentError):
        settings(host=f"https://{HOST}")


def test_missing_credentials_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="missing credentials"):
        AkamaiProvider(settings(), {"client_token": Secret(CLIENT_TOKEN)})


# -- limits ------------------------------------------------------------------------------------------------


def long_urls(count: int, length: int) -> list[str]:
    stem = "https://www.example.com/p/"
    return [stem + "a" * (length - len(stem) - 4) + f"{i:04d}" for i in range(count)]


def test_urls_just_over_50000_bytes_are_split_by_the_planner_and_all_accepted(cdn: FakeCDN) -> None:
    # Given: 50 URLs whose single body would be just over 50,000 bytes
    urls = long_urls(50, 997)
    assert 50_000 < wire_size({"objects": urls}) < 50_100
    spec = AkamaiProvider.spec_for(settings())
    routed = [RoutedTarget("c1", Target(TargetKind.URL, url), None, None) for url in urls]
    # When
    result = plan(routed, {"ak": spec})
    adapter = provider(cdn)
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    # Then
    assert [len(r.targets) for r in result.requests] == [49, 1]
    received = cdn.received_by("akamai")
    assert [r.status for r in received] == [201, 201]
    assert all(wire_size(r.body) <= 50_000 for r in received)
    assert len(cdn.purged("akamai")) == 50


def test_a_body_of_exactly_50000_bytes_is_sent_and_one_more_byte_is_refused_before_sending(cdn: FakeCDN) -> None:
    # Given: one URL making a body of exactly 50,000 bytes, and one a byte longer
    (fits,) = long_urls(1, 50_000 - len('{"objects":[""]}'))
    (too_long,) = long_urls(1, len(fits) + 1)
    adapter = provider(cdn)
    # When
    adapter.purge(request(TargetKind.URL, fits), idempotency_token="t")
    with pytest.raises(RejectedError, match="request body of 50001 bytes exceeds Akamai's 50000"):
        adapter.purge(request(TargetKind.URL, too_long), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("akamai")
    assert received.status == 201 and wire_size(received.body) == 50_000


def test_the_fake_answers_413_above_50000_bytes(cdn: FakeCDN) -> None:
    # Given
    body = json.dumps({"objects": long_urls(1, 50_001 - len('{"objects":[""]}'))}, separators=(",", ":")).encode()
    assert len(body) == 50_001
    # When
    response = raw_post(cdn, "/ccu/v3/delete/url/production", body)
    # Then
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["httpStatus"] == 413


@pytest.mark.parametrize(("keys_are", "limit"), [("tag", 5_000), ("cpcode", 300)])
def test_keys_per_request_are_capped_at_the_object_bucket(keys_are: str, limit: int) -> None:
    # Given
    spec = AkamaiProvider.spec_for(settings(keys_are=keys_are))
    routed = [RoutedTarget("c1", Target(TargetKind.KEY, str(1000 + i)), None, None) for i in range(limit + 1)]
    # When
    result = plan(routed, {"ak": spec})
    # Then
    assert spec.capabilities.max_targets[TargetKind.KEY] == limit
    assert [len(r.targets) for r in result.requests] == [limit, 1]
    assert all(wire_size({"objects": list(r.targets)}) <= 50_000 for r in result.requests)


@pytest.mark.parametrize(
    ("path", "objects", "title"),
    [
        ("/ccu/v3/delete/url/production", ["https://www.example.com/devóps.jsp"], "bad url"),
        ("/ccu/v3/delete/url/production", ["/relative/path"], "bad url"),
        ("/ccu/v3/delete/tag/production", ["t" * 129], "bad tag"),
        ("/ccu/v3/delete/tag/production", ["a tag"], "bad tag"),
        ("/ccu/v3/delete/tag/production", ["a,b"], "bad tag"),
        ("/ccu/v3/delete/tag/production", ["a/b"], "bad tag"),
        ("/ccu/v3/delete/cpcode/production", ["12345"], "bad cpcode"),
        ("/ccu/v3/delete/tag/production", [], "Bad request"),
    ],
)
def test_the_fake_refuses_bad_objects_with_a_400_problem(
    cdn: FakeCDN, path: str, objects: list[Any], title: str
) -> None:
    # When
    response = raw_post(cdn, path, json.dumps({"objects": objects}).encode())
    # Then
    assert response.status_code == 400
    assert response.json()["title"] == title


def test_the_fake_accepts_a_128_character_tag_and_an_omitted_network(cdn: FakeCDN) -> None:
    response = raw_post(cdn, "/ccu/v3/invalidate/tag", json.dumps({"objects": ["t" * 128]}).encode())
    assert response.status_code == 201
    assert cdn.purged("akamai") == [f"tag:{'t' * 128} (invalidate, production)"]


def test_a_400_problem_is_rejected_with_title_and_detail(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("akamai", Fault(status=400))
    # When / Then
    with pytest.raises(RejectedError, match="Injected error: injected 400") as raised:
        provider(cdn).purge(request(TargetKind.KEY, "article-1"), idempotency_token="t")
    assert raised.value.status == 400 and not raised.value.retryable


BAD_TAGS = ["t" * 129, "a tag", "a,b", "a/b", "a*", "caf\u00e9", "x=1", ""]
GOOD_TAGS = ["t" * 128, "article-1", "A.b_c~d|e^f`g!h#i$j%k&l'm+n"]


def test_objects_akamai_refuses_are_plan_errors_for_their_changes_alone(cdn: FakeCDN) -> None:
    # Given: good and bad tags and URLs from different changes, which one request would have carried
    routed = [RoutedTarget(f"good-{i}", Target(TargetKind.KEY, tag), None, None) for i, tag in enumerate(GOOD_TAGS)]
    routed += [RoutedTarget(f"bad-{i}", Target(TargetKind.KEY, tag), None, None) for i, tag in enumerate(BAD_TAGS)]
    routed += [
        RoutedTarget("url-ok", Target(TargetKind.URL, "https://www.example.com/dev%C3%B3ps.jsp"), None, None),
        RoutedTarget("url-utf8", Target(TargetKind.URL, "https://www.example.com/dev\u00f3ps.jsp"), None, None),
        RoutedTarget("url-space", Target(TargetKind.URL, "https://www.example.com/a b"), None, None),
        RoutedTarget("url-relative", Target(TargetKind.URL, "//www.example.com/a"), None, None),
    ]
    adapter = provider(cdn)
    # When
    result = plan(routed, {"ak": adapter.spec})
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    # Then: every request sent was accepted, carrying every good object; each bad one is its change's error
    assert {r.status for r in cdn.received_by("akamai")} == {201}
    assert sorted(item.split(" (")[0] for item in cdn.purged("akamai")) == sorted(
        [f"tag:{tag}" for tag in GOOD_TAGS] + ["url:https://www.example.com/dev%C3%B3ps.jsp"]
    )
    failed = {change_id for error in result.errors for change_id in error.change_ids}
    assert failed == {f"bad-{i}" for i in range(len(BAD_TAGS))} | {"url-utf8", "url-space", "url-relative"}
    messages = " ".join(error.message for error in result.errors)
    assert "at most 128 characters" in messages and "take only letters, digits" in messages
    assert "absolute http(s) URLs of printable ASCII" in messages


@pytest.mark.parametrize(
    ("keys_are", "value"), [("tag", "t" * 129), ("tag", "a,b"), ("cpcode", "12a"), ("cpcode", "0")]
)
def test_a_refused_object_fails_before_sending(cdn: FakeCDN, keys_are: str, value: str) -> None:
    # When / Then
    with pytest.raises(RejectedError, match=r"at most 128|take only letters|CP codes must be numbers"):
        provider(cdn, keys_are=keys_are).purge(request(TargetKind.KEY, "1234", value), idempotency_token="t")
    assert cdn.received_by("akamai") == []


def test_non_numeric_cp_codes_are_plan_errors_for_their_changes_alone() -> None:
    # Given
    spec = AkamaiProvider.spec_for(settings(keys_are="cpcode"))
    routed = [
        RoutedTarget("c1", Target(TargetKind.KEY, "12345"), None, None),
        RoutedTarget("c2", Target(TargetKind.KEY, "article-1"), None, None),
        RoutedTarget("c3", Target(TargetKind.KEY, "\u00b2"), None, None),
    ]
    # When
    result = plan(routed, {"ak": spec})
    # Then
    assert [r.targets for r in result.requests] == [("12345",)]
    assert {change_id for error in result.errors for change_id in error.change_ids} == {"c2", "c3"}


# -- EdgeGrid ----------------------------------------------------------------------------------------------


def test_the_signature_covers_the_body(cdn: FakeCDN) -> None:
    # Given: a request signed for one body, then sent with another
    signer = EdgeGridAuth(CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN)
    url = cdn.endpoint("akamai") + "/ccu/v3/delete/tag/production"
    signed = httpx.Request("POST", url, content=b'{"objects":["a"]}')
    authorization = signer.authorization(signed)
    # When
    response = httpx.post(url, content=b'{"objects":["b"]}', headers={"Authorization": authorization})
    # Then
    assert response.status_code == 401
    assert response.json()["detail"] == "The signature does not match"


def test_a_replayed_nonce_is_refused(cdn: FakeCDN) -> None:
    # Given: a signer that always uses the same nonce
    signer = EdgeGridAuth(
        CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN, nonce=lambda: "11111111-2222-3333-4444-555555555555"
    )
    body = json.dumps({"objects": ["a"]}).encode()
    # When
    first = raw_post(cdn, "/ccu/v3/delete/tag/production", body, auth=signer)
    second = raw_post(cdn, "/ccu/v3/delete/tag/production", body, auth=signer)
    # Then
    assert (first.status_code, second.status_code) == (201, 401)
    assert second.json()["detail"] == "The nonce has already been used"


def test_each_adapter_call_is_signed_afresh(cdn: FakeCDN) -> None:
    # When
    adapter = provider(cdn)
    for _ in range(3):
        adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    # Then
    assert [r.status for r in cdn.received_by("akamai")] == [201, 201, 201]


def test_an_injected_client_is_signed_too(cdn: FakeCDN) -> None:
    # Given
    with httpx.Client() as client:
        adapter = AkamaiProvider(settings(cdn.endpoint("akamai")), credentials(), client=client)
        # When
        adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
    # Then
    assert [r.status for r in cdn.received_by("akamai")] == [201]


# -- errors ------------------------------------------------------------------------------------------------


def test_request_rate_429_is_throttled_with_the_wait_from_rate_limit_headers() -> None:
    # Given: the fake at 1 request/s, burst 1
    behaviour = AkamaiBehaviour(
        client_token=CLIENT_TOKEN, client_secret=CLIENT_SECRET, access_token=ACCESS_TOKEN, rate_per_second=1.0
    )
    with FakeCDN([behaviour]) as cdn:
        adapter = provider(cdn)
        adapter.purge(request(TargetKind.KEY, "a"), idempotency_token="t")
        # When
        with pytest.raises(ThrottledError) as raised:
            adapter.purge(request(TargetKind.KEY, "b"), idempotency_token="t")
        # Then
        assert raised.value.status == 429 and raised.value.retryable
        assert raised.value.retry_after == pytest.approx(1.0)
        assert "Rate Limit exceeded" in raised.value.message
        assert cdn.throttled == 1


def test_object_rate_429_waits_for_enough_object_tokens() -> None:
    # Given: 10 URL tokens, refilling 2 a second; 8 are spent, then 6 more are asked for
    behaviour = AkamaiBehaviour(
        client_token=CLIENT_TOKEN,
        client_secret=CLIENT_SECRET,
        access_token=ACCESS_TOKEN,
        objects_per_second=2.0,
        objects_burst=10,
    )
    with FakeCDN([behaviour]) as cdn:
        adapter = provider(cdn)
        adapter.purge(request(TargetKind.URL, *long_urls(8, 40)), idempotency_token="t")
        # When
        with pytest.raises(ThrottledError) as raised:
            adapter.purge(request(TargetKind.URL, *long_urls(6, 40)), idempotency_token="t")
        # Then: 6 needed, 2 left, 2 a second -> about 2 s
        assert raised.value.retry_after == pytest.approx(2.0, abs=0.1)
        assert "URL Rate Limit exceeded" in raised.value.message


def test_a_429_without_rate_headers_waits_the_documented_five_seconds() -> None:
    # Given
    adapter = AkamaiProvider(settings(), credentials())
    response = httpx.Response(429, json={"title": "Rate Limit exceeded", "httpStatus": 429})
    # When / Then
    assert adapter.retry_after(response) == 5.0
    assert adapter.retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0


def test_unverified_facts_are_listed() -> None:
    assert any("object buckets" in fact for fact in akamai.UNVERIFIED)
