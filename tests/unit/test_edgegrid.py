"""The httpx EdgeGrid signer against the reference `akamai.edgegrid` (edgegrid-python) and its test vectors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import akamai.edgegrid.edgegrid as reference
import httpx
import pytest
import requests

from cdnpurge.core.credentials import Secret
from cdnpurge.runtime.providers.edgegrid import (
    EdgeGridAuth,
    content_hash,
    eg_timestamp,
    parse_authorization,
    signing_key,
)

VECTORS = Path(reference.__file__).parent / "test"
TIMESTAMP = "20240102T03:04:05+0000"
NONCE = "00000000-1111-2222-3333-444444444444"
# Made-up credentials in the shape EdgeGrid uses; not real.
CLIENT_TOKEN = "akab-client-token-not-real-000000"
CLIENT_SECRET = "fake-client-secret-not-real-0000000000000="
ACCESS_TOKEN = "akab-access-token-not-real-000000"
HOST = "akab-test-not-real.purge.akamaiapis.net"


def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "testdata.json").read_text())
    return data


def vector_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((VECTORS / "testcases.json").read_text())
    return cases


def ours(
    *, max_body: int = 131072, headers_to_sign: tuple[str, ...] = (), timestamp: str = TIMESTAMP, nonce: str = NONCE
) -> EdgeGridAuth:
    return EdgeGridAuth(
        CLIENT_TOKEN,
        Secret(CLIENT_SECRET),
        ACCESS_TOKEN,
        max_body=max_body,
        headers_to_sign=headers_to_sign,
        timestamp=lambda: timestamp,
        nonce=lambda: nonce,
    )


def reference_header(
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    max_body: int = 131072,
    headers_to_sign: tuple[str, ...] = (),
) -> str:
    """Sign with the reference requests auth, its timestamp and nonce fixed the way its own tests can."""
    monkeypatch.setattr(reference, "eg_timestamp", lambda: TIMESTAMP)
    monkeypatch.setattr(reference, "new_nonce", lambda: NONCE)
    auth = reference.EdgeGridAuth(
        CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN, max_body=max_body, headers_to_sign=headers_to_sign
    )
    prepared = auth(requests.Request(method, url, headers=headers or {}, data=body).prepare())
    value: str = prepared.headers["Authorization"]
    return value


def signed_by_us(auth: EdgeGridAuth, request: httpx.Request) -> str:
    """Run the request through the real httpx auth flow (MockTransport), return what was sent."""
    seen: list[httpx.Request] = []

    def handler(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return httpx.Response(201)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.send(request)
    return seen[0].headers["Authorization"]


# -- against the reference implementation ----------------------------------------------------------


def test_get_with_query_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    url = f"https://{HOST}/ccu/v3/rate-limit-status/url?accountSwitchKey=A-1%3AB&x=1"
    # When
    expected = reference_header(monkeypatch, "GET", url)
    actual = signed_by_us(ours(), httpx.Request("GET", url))
    # Then
    assert actual == expected
    assert actual.startswith(
        f"EG1-HMAC-SHA256 client_token={CLIENT_TOKEN};access_token={ACCESS_TOKEN};"
        f"timestamp={TIMESTAMP};nonce={NONCE};signature="
    )


def test_post_with_a_json_body_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: the exact bytes httpx sends for a Fast Purge body
    body = json.dumps({"objects": ["https://www.example.com/a.html", "https://www.example.com/b"]}).encode()
    url = f"https://{HOST}/ccu/v3/invalidate/url/production"
    headers = {"Content-Type": "application/json"}
    # When
    expected = reference_header(monkeypatch, "POST", url, headers=headers, body=body)
    actual = signed_by_us(ours(), httpx.Request("POST", url, headers=headers, content=body))
    # Then
    assert actual == expected


def test_post_larger_than_max_body_hashes_only_the_first_max_body_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: max_body 2048, a 5000-byte body, and another body with the same first 2048 bytes
    url = f"https://{HOST}/ccu/v3/delete/tag/staging"
    body = b"x" * 2048 + b"y" * 2952
    same_prefix = b"x" * 2048 + b"z" * 10
    # When
    expected = reference_header(monkeypatch, "POST", url, body=body, max_body=2048)
    actual = signed_by_us(ours(max_body=2048), httpx.Request("POST", url, content=body))
    other = signed_by_us(ours(max_body=2048), httpx.Request("POST", url, content=same_prefix))
    # Then
    assert actual == expected
    assert other == actual
    assert content_hash("POST", body, 2048) == content_hash("POST", body[:2048], 131072)


def test_headers_to_sign_match_the_reference_in_their_configured_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    url = f"https://{HOST}/ccu/v3/invalidate/cpcode/production"
    headers = {"X-Two": "second    value", "X-One": "first", "X-Ignored": "not signed"}
    to_sign = ("X-One", "X-Two", "X-Missing")
    body = b'{"objects":[12345]}'
    # When
    expected = reference_header(monkeypatch, "POST", url, headers=headers, body=body, headers_to_sign=to_sign)
    actual = signed_by_us(ours(headers_to_sign=to_sign), httpx.Request("POST", url, headers=headers, content=body))
    unsigned_change = signed_by_us(
        ours(headers_to_sign=to_sign),
        httpx.Request("POST", url, headers=headers | {"X-Ignored": "changed"}, content=body),
    )
    signed_change = signed_by_us(
        ours(headers_to_sign=to_sign),
        httpx.Request("POST", url, headers=headers | {"X-One": "changed"}, content=body),
    )
    # Then
    assert actual == expected
    assert unsigned_change == actual
    assert signed_change != actual


@pytest.mark.parametrize(("method", "body"), [("PUT", b"PPPP"), ("GET", None), ("POST", b""), ("DELETE", None)])
def test_only_post_bodies_are_hashed_like_the_reference(
    monkeypatch: pytest.MonkeyPatch, method: str, body: bytes | None
) -> None:
    # Given
    url = f"https://{HOST}/path;a=b?q=1"
    # When
    expected = reference_header(monkeypatch, method, url, body=body)
    actual = signed_by_us(ours(), httpx.Request(method, url, content=body))
    # Then
    assert actual == expected


def test_a_non_default_port_is_part_of_the_signed_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: the fake CDN runs on loopback with a port; requests and httpx both sign host:port
    url = "http://127.0.0.1:8123/akamai/ccu/v3/invalidate/url/production"
    body = b'{"objects":["https://www.example.com/"]}'
    # When / Then
    assert signed_by_us(ours(), httpx.Request("POST", url, content=body)) == reference_header(
        monkeypatch, "POST", url, body=body
    )


# -- against the reference test vectors -----------------------------------------------------------


def vector_auth(data: dict[str, Any], **overrides: Any) -> EdgeGridAuth:
    values: dict[str, Any] = {
        "max_body": data["max_body"],
        "headers_to_sign": data["headers_to_sign"],
        "timestamp": lambda: data["timestamp"],
        "nonce": lambda: data["nonce"],
    }
    return EdgeGridAuth(data["client_token"], data["client_secret"], data["access_token"], **(values | overrides))


def test_signing_key_and_content_hash_vectors() -> None:
    data = vectors()
    assert signing_key(data["client_secret"], data["timestamp"]) == data["sign_key_test"]
    assert content_hash("POST", b"test_body", data["max_body"]) == data["content_hash_test"]


@pytest.mark.parametrize(
    "case",
    [case for case in vector_cases() if "failsWithMessage" not in case],
    ids=lambda case: str(case["testName"]),
)
def test_reference_vectors(case: dict[str, Any]) -> None:
    # Given: the reference's own request list (requests refuses the cases with `failsWithMessage`)
    data = vectors()
    headers = {name: value for item in case["request"].get("headers", []) for name, value in item.items()}
    data_field = case["request"].get("data")
    request = httpx.Request(
        case["request"]["method"],
        urljoin(data["base_url"], case["request"]["path"]),
        headers=headers,
        content=None if data_field is None else data_field.encode(),
    )
    auth = vector_auth(data)
    # When
    header = signed_by_us(auth, request)
    # Then
    assert header == case["expectedAuthorization"]
    assert auth.data_to_sign(request, "") == case["expectedDataToSign"]


def test_json_vector() -> None:
    # Given: the reference's `test_json` request, whose body `requests` serialises with ", " / ": "
    data = vectors()
    request = httpx.Request(
        "POST", urljoin(data["base_url"], "/testapi/v1/t3"), params={"extended": "true"}, content=b'{"key": "value"}'
    )
    # When / Then
    assert signed_by_us(vector_auth(data, max_body=131072, headers_to_sign=()), request) == data["jsontest_hash"]


# -- behaviour of our signer ------------------------------------------------------------------------


def test_each_request_gets_a_fresh_nonce_and_the_current_timestamp() -> None:
    # Given
    auth = EdgeGridAuth(CLIENT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN)
    url = f"https://{HOST}/ccu/v3/invalidate/url"
    # When
    first = parse_authorization(signed_by_us(auth, httpx.Request("POST", url, content=b"{}")))
    second = parse_authorization(signed_by_us(auth, httpx.Request("POST", url, content=b"{}")))
    # Then
    assert first is not None and second is not None
    assert first["nonce"] != second["nonce"]
    assert len(first["timestamp"]) == len("20240102T03:04:05+0000") and first["timestamp"].endswith("+0000")


def test_timestamp_format() -> None:
    assert eg_timestamp(0) == "19700101T00:00:00+0000"
    assert eg_timestamp(1_700_000_000) == "20231114T22:13:20+0000"


def test_the_secret_never_appears_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Given
    caplog.set_level(logging.DEBUG)
    auth = ours()
    # When
    header = signed_by_us(auth, httpx.Request("POST", f"https://{HOST}/ccu/v3/delete/url", content=b"{}"))
    # Then
    assert CLIENT_SECRET not in repr(auth) + caplog.text + header
    assert ACCESS_TOKEN not in repr(auth)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("EG1-HMAC-SHA256 client_token=a;access_token=b;timestamp=t;nonce=n;signature=s==", {"signature": "s=="}),
        ("Bearer abc", None),
        ("EG1-HMAC-SHA256 client_token", None),
    ],
)
def test_parse_authorization(value: str, expected: dict[str, str] | None) -> None:
    parsed = parse_authorization(value)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and parsed["signature"] == expected["signature"]
