"""Akamai EdgeGrid (EG1-HMAC-SHA256) request signing as an `httpx.Auth`.

A port of `akamai.edgegrid.EdgeGridAuth` (edgegrid-python 2.x, a `requests` auth handler) onto httpx's
auth flow, which sees the final request: method, URL with query, `Host` header and body bytes. It is
tested against that reference implementation and its published test vectors (`tests/unit/test_edgegrid.py`).

The algorithm (https://techdocs.akamai.com/developer/docs/authenticate-with-edgegrid):
- `timestamp` = UTC `%Y%m%dT%H:%M:%S+0000`; `nonce` = a fresh UUID per request;
- unsigned header = `EG1-HMAC-SHA256 client_token=..;access_token=..;timestamp=..;nonce=..;`;
- content hash = base64(SHA-256(body[:max_body])) for POST with a non-empty body, else empty;
- data to sign = tab-joined method, scheme, host (the `Host` header, else the URL's netloc), path with
  `;params` and `?query`, the canonical `headers_to_sign` (`name:value`, whitespace collapsed, in the
  configured order), the content hash and the unsigned header;
- signing key = base64(HMAC-SHA256(key=client_secret, msg=timestamp));
- signature = base64(HMAC-SHA256(key=signing key, msg=data to sign)), appended as `signature=...`.

Differences from the reference, on purpose: nothing is logged (the reference logs the signing key and body
at DEBUG); the `AKAMAI_CLI*` User-Agent decoration is not applied; redirects are not re-signed (the
adapters never follow redirects). Timestamp and nonce are injectable for tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from urllib.parse import urlparse

import httpx

from cdnpurge.core.credentials import Secret

ALGORITHM = "EG1-HMAC-SHA256"
DEFAULT_MAX_BODY = 131072
_SPACES = re.compile(r"\s+")


def eg_timestamp(now: float | None = None) -> str:
    """The EdgeGrid timestamp of `now` (epoch seconds, default the current time)."""
    return time.strftime("%Y%m%dT%H:%M:%S+0000", time.gmtime(time.time() if now is None else now))


def new_nonce() -> str:
    return str(uuid.uuid4())


def base64_hmac_sha256(data: str, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()).decode()


def signing_key(client_secret: str, timestamp: str) -> str:
    return base64_hmac_sha256(timestamp, client_secret)


def content_hash(method: str, body: bytes, max_body: int) -> str:
    """Base64 SHA-256 of the first `max_body` bytes of a POST body; empty for other methods or no body."""
    if method.upper() != "POST" or not body:
        return ""
    return base64.b64encode(hashlib.sha256(body[:max_body]).digest()).decode()


def canonical_headers(headers: Mapping[str, str], headers_to_sign: Iterable[str]) -> str:
    """`name:value` for each header to sign that is present (lower-cased name, whitespace collapsed)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return "\t".join(f"{name}:{_SPACES.sub(' ', lowered[name].strip())}" for name in headers_to_sign if name in lowered)


def data_to_sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    unsigned_header: str,
    *,
    headers_to_sign: Iterable[str] = (),
    max_body: int = DEFAULT_MAX_BODY,
) -> str:
    parts = urlparse(url)
    host = next((value for name, value in headers.items() if name.lower() == "host"), "") or parts.netloc
    path = parts.path + (f";{parts.params}" if parts.params else "") + (f"?{parts.query}" if parts.query else "")
    return "\t".join(
        [
            method.upper(),
            parts.scheme,
            host,
            path,
            canonical_headers(headers, headers_to_sign),
            content_hash(method, body, max_body),
            unsigned_header,
        ]
    )


class EdgeGridAuth(httpx.Auth):
    """Signs every request with EdgeGrid; credentials are kept as `Secret` and never logged.

    `EdgeGridAuth(client_token, client_secret, access_token, max_body=131072, headers_to_sign=())`;
    `timestamp` and `nonce` are zero-argument callables, replaceable in tests.
    """

    requires_request_body = True

    def __init__(
        self,
        client_token: str | Secret,
        client_secret: str | Secret,
        access_token: str | Secret,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        headers_to_sign: Iterable[str] = (),
        timestamp: Callable[[], str] = eg_timestamp,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._client_token = _secret(client_token)
        self._client_secret = _secret(client_secret)
        self._access_token = _secret(access_token)
        self.max_body = max_body
        self.headers_to_sign = tuple(name.lower() for name in headers_to_sign)
        self.timestamp = timestamp
        self.nonce = nonce

    def __repr__(self) -> str:
        return (
            f"EdgeGridAuth(client_token=<redacted>, max_body={self.max_body}, headers_to_sign={self.headers_to_sign})"
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.authorization(request)
        yield request

    def authorization(self, request: httpx.Request, *, timestamp: str | None = None, nonce: str | None = None) -> str:
        """The signed `Authorization` header value for `request` (whose body must be read)."""
        timestamp = self.timestamp() if timestamp is None else timestamp
        nonce = self.nonce() if nonce is None else nonce
        unsigned = (
            f"{ALGORITHM} client_token={self._client_token.get_secret_value()};"
            f"access_token={self._access_token.get_secret_value()};timestamp={timestamp};nonce={nonce};"
        )
        signature = base64_hmac_sha256(
            self.data_to_sign(request, unsigned), signing_key(self._client_secret.get_secret_value(), timestamp)
        )
        return f"{unsigned}signature={signature}"

    def data_to_sign(self, request: httpx.Request, unsigned_header: str) -> str:
        return data_to_sign(
            request.method,
            str(request.url),
            request.headers,
            request.content,
            unsigned_header,
            headers_to_sign=self.headers_to_sign,
            max_body=self.max_body,
        )


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def parse_authorization(value: str) -> dict[str, str] | None:
    """The fields of an `EG1-HMAC-SHA256 k=v;...` header, or None if it is not one (used by the fake)."""
    scheme, _, rest = value.partition(" ")
    if scheme != ALGORITHM or not rest:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(";"):
        if not item:
            continue
        name, sep, field_value = item.partition("=")
        if not sep:
            return None
        fields[name] = field_value
    return fields
