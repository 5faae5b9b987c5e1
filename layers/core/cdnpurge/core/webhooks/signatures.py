"""Webhook signature schemes: is this request from the sender that holds the secret, and is it fresh?

Pure functions of the request (headers lower-cased, the raw body bytes), the accepted secrets (during a
rotation both the new and the old one) and the time now (injected). Each scheme follows its sender's
documentation and reference library:

- `standard`: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): HMAC-SHA256 of
  `{id}.{timestamp}.{body}` keyed by the base64 part of `whsec_...`, sent as space-separated `v1,<base64>`
  entries (a sender mid-rotation signs with several keys), timestamp in seconds.
- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; no timestamp, so replays are
  stopped only by the delivery being remembered. `X-GitHub-Delivery` is not signed, so it is not the
  delivery's id here (see `Verified`).
- `sanity`: `sanity-webhook-signature: t=<milliseconds>,v1=<base64url, unpadded, HMAC-SHA256 of
  "{t}.{body}">` as `@sanity/webhook` encodes it.
- `contentful`: Contentful's request verification: the headers named in `x-contentful-signed-headers` (keys
  lower-cased and trimmed, values trimmed, the signed-headers value itself re-derived as their sorted
  names), sorted by name, joined `name:value` with `;`, in `method\\npath\\nheaders\\nbody`; HMAC-SHA256 in
  hex (`x-contentful-signature`); `x-contentful-timestamp` in milliseconds.
- `ghost`: `X-Ghost-Signature: sha256=<hex HMAC-SHA256 of body followed by t>, t=<milliseconds>`, as Ghost's
  WebhookTrigger signs when the webhook has a secret.
- `token`: a shared token in a header, for senders that sign nothing (WordPress, Ghost without a secret,
  Strapi): only as strong as TLS and the secrecy of the token; compared in constant time too.

Every comparison is `hmac.compare_digest`. A failure raises `SignatureRejected` with a *reason* (for metrics
and logs: a fixed word, never the header's value); the HTTP answer says nothing more than 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Final
from urllib.parse import quote

import msgspec

from cdnpurge.core.errors import CdnpurgeError


class Scheme(StrEnum):
    """How a source signs its requests."""

    STANDARD = "standard"
    GITHUB = "github"
    SANITY = "sanity"
    CONTENTFUL = "contentful"
    GHOST = "ghost"
    TOKEN = "token"  # noqa: S105 - a scheme name


class RejectReason(StrEnum):
    """Why a request was refused before anything was enqueued; a metric dimension, so a closed set."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"


class SignatureRejected(CdnpurgeError):
    """The request is not proven to come from the secret's holder (answered 401, with no detail)."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class SignedRequest(msgspec.Struct, frozen=True):
    """What a signature covers: method, path (with its query, as the client sent it), headers with
    lower-cased names, and the raw body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class Verified(msgspec.Struct, frozen=True):
    """A request proven authentic: the sender's delivery id, when its scheme *signs* one.

    The id names the delivery in the replay record and the change id, so it must be covered by the signature:
    a header the signature does not cover (GitHub's `X-GitHub-Delivery`, Sanity's `idempotency-key`) can be
    changed by whoever replays a captured request, and a replay under a fresh id would pass as a new delivery.
    Schemes without a signed id give None, and the delivery is then named by a digest of its body."""

    delivery_id: str | None


STANDARD_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
DEFAULT_TOKEN_HEADER: Final = "x-cdnpurge-token"  # noqa: S105 - a header name
# Sanity did not sign payloads before 2021-01-01 (`@sanity/webhook`'s MINIMUM_TIMESTAMP): anything older is
# not a Sanity timestamp in milliseconds.
_SANITY_MINIMUM_MS: Final = 1_609_459_200_000
_SANITY_HEADER: Final = re.compile(r"t=(\d{1,20})[, ]+v1=([^, ]+)")
_GHOST_HEADER: Final = re.compile(r"sha256=([0-9a-fA-F]{1,128}), ?t=(\d{1,20})")
_DIGITS: Final = re.compile(r"\d{1,20}")
_MAX_HEADER_CHARS: Final = 4096  # a signature header is tens of characters; more is not worth hashing


def _header(request: SignedRequest, name: str) -> str:
    value = request.headers.get(name)
    if value is None or not value.strip():
        raise SignatureRejected(RejectReason.MISSING_SIGNATURE)
    if len(value) > _MAX_HEADER_CHARS:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    return value.strip()


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _fresh(sent_seconds: float, now: float, tolerance: float) -> None:
    """Refuse a timestamp outside `tolerance` seconds of now, either way (a clock ahead is as suspect)."""
    if abs(now - sent_seconds) > tolerance:
        raise SignatureRejected(RejectReason.STALE_TIMESTAMP)


def _any_match(given: Sequence[str], expected: Callable[[str], str], secrets: Sequence[str]) -> None:
    """Accept when any secret's expected value equals any value the request carries. Every pair is compared,
    each in constant time (as bytes: `compare_digest` refuses a non-ASCII str), so timing tells neither the
    value nor which secret matched."""
    matched = False
    for secret in secrets:
        wanted = expected(secret).encode()
        for value in given:
            matched |= hmac.compare_digest(wanted, value.encode("utf-8", "surrogatepass"))
    if not matched:
        raise SignatureRejected(RejectReason.BAD_SIGNATURE)


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after `whsec_` (a bare base64 is accepted too,
    as the reference libraries do)."""
    try:
        return base64.b64decode(secret.removeprefix(STANDARD_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


def _verify_standard(request: SignedRequest, secrets: Sequence[str], now: float, tolerance: float) -> Verified:
    message_id = _header(request, "webhook-id")
    timestamp = _header(request, "webhook-timestamp")
    signatures = _header(request, "webhook-signature")
    if not _DIGITS.fullmatch(timestamp) or len(message_id) > 256:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    _fresh(int(timestamp), now, tolerance)
    given: list[str] = []
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            given.append(value)
    if not given:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    signed = f"{message_id}.{timestamp}.".encode() + request.body

    def expected(secret: str) -> str:
        return base64.b64encode(_hmac(standard_key(secret), signed)).decode("ascii")

    _any_match(given, expected, secrets)
    return Verified(message_id)


def _verify_github(request: SignedRequest, secrets: Sequence[str], now: float, tolerance: float) -> Verified:
    header = _header(request, "x-hub-signature-256")
    algorithm, _, hex_digest = header.partition("=")
    if algorithm != "sha256" or not hex_digest:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)

    def expected(secret: str) -> str:
        return hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()

    _any_match([hex_digest.lower()], expected, secrets)
    return Verified(None)  # X-GitHub-Delivery is not signed: the body names the delivery


def _verify_sanity(request: SignedRequest, secrets: Sequence[str], now: float, tolerance: float) -> Verified:
    match = _SANITY_HEADER.fullmatch(_header(request, "sanity-webhook-signature"))
    if match is None or int(match[1]) < _SANITY_MINIMUM_MS:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    sent_ms = match[1]
    _fresh(int(sent_ms) / 1000, now, tolerance)
    signed = f"{sent_ms}.".encode() + request.body

    def expected(secret: str) -> str:
        return base64.urlsafe_b64encode(_hmac(secret.encode(), signed)).rstrip(b"=").decode("ascii")

    _any_match([match[2]], expected, secrets)
    return Verified(None)  # idempotency-key is not signed (only t and the body are): the body names the delivery


def _verify_ghost(request: SignedRequest, secrets: Sequence[str], now: float, tolerance: float) -> Verified:
    match = _GHOST_HEADER.fullmatch(_header(request, "x-ghost-signature"))
    if match is None:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    sent_ms = match[2]
    _fresh(int(sent_ms) / 1000, now, tolerance)
    signed = request.body + sent_ms.encode()

    def expected(secret: str) -> str:
        return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()

    _any_match([match[1].lower()], expected, secrets)
    return Verified(None)


def contentful_path(path: str) -> str:
    """The path as Contentful's `getNormalizedEncodedURI` canonicalises it: the query escaped as Node's
    `querystring.escape`, then the whole URI as `encodeURI` (which escapes that query's `%` once more)."""
    pathname, _, search = path.partition("?")
    escaped = quote(search, safe="-_.!~*'()") if search else ""
    return quote(f"{pathname}?{escaped}" if escaped else pathname, safe=";,/?:@&=+$-_.!~*'()#")


def contentful_canonical(request: SignedRequest, signed_names: Sequence[str], timestamp: str) -> bytes:
    """The string Contentful signs, from the request and the header names it says it signed."""
    headers = {name.strip().lower(): value.strip() for name, value in request.headers.items()}
    picked = {name: headers[name] for name in signed_names if name in headers}
    names = sorted({*picked, "x-contentful-signed-headers", "x-contentful-timestamp"})
    picked["x-contentful-timestamp"] = timestamp
    picked["x-contentful-signed-headers"] = ",".join(names)
    joined = ";".join(f"{name}:{picked[name]}" for name in names)
    head = f"{request.method}\n{contentful_path(request.path)}\n{joined}\n".encode()
    return head + request.body


def _verify_contentful(request: SignedRequest, secrets: Sequence[str], now: float, tolerance: float) -> Verified:
    signature = _header(request, "x-contentful-signature")
    timestamp = _header(request, "x-contentful-timestamp")
    signed_names = [name.strip().lower() for name in _header(request, "x-contentful-signed-headers").split(",")]
    if not _DIGITS.fullmatch(timestamp):
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE)
    _fresh(int(timestamp) / 1000, now, tolerance)
    canonical = contentful_canonical(request, signed_names, timestamp)

    def expected(secret: str) -> str:
        return hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()

    _any_match([signature.lower()], expected, secrets)
    return Verified(None)


def verify(
    scheme: Scheme,
    request: SignedRequest,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_seconds: float,
    token_header: str = DEFAULT_TOKEN_HEADER,
) -> Verified:
    """Verify `request` under `scheme` with any of `secrets` (during a rotation: new and old); raises
    `SignatureRejected` with its reason otherwise. `now` is seconds since the epoch."""
    if not secrets:
        raise SignatureRejected(RejectReason.BAD_SIGNATURE)
    if scheme is Scheme.TOKEN:
        _any_match([_header(request, token_header)], lambda secret: secret, secrets)
        return Verified(None)
    verifiers = {
        Scheme.STANDARD: _verify_standard,
        Scheme.GITHUB: _verify_github,
        Scheme.SANITY: _verify_sanity,
        Scheme.CONTENTFUL: _verify_contentful,
        Scheme.GHOST: _verify_ghost,
    }
    return verifiers[scheme](request, secrets, now, tolerance_seconds)
