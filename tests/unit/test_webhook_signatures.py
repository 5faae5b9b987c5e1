"""Webhook signatures: each scheme accepts what its sender signs and refuses everything else, by reason.

Senders are independent of the code under test: Standard Webhooks through its reference library
(`standardwebhooks`), the others written out here from each vendor's documentation (GitHub's "Validating
webhook deliveries", `@sanity/webhook`'s encodeSignatureHeader, Ghost's WebhookTrigger, Contentful's request
verification as `@contentful/node-apps-toolkit` signs), kept as plain as the documentation reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability.tally import hostile
from standardwebhooks.webhooks import Webhook

from cdnpurge.core.webhooks.signatures import (
    RejectReason,
    Scheme,
    SignatureRejected,
    SignedRequest,
    contentful_path,
    verify,
)

NOW = 1_780_000_000.0  # an injected "now", seconds since the epoch
BODY = json.dumps({"sys": {"id": "abc"}, "slug": "hello"}).encode()
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32by").decode()
PLAIN_SECRET = "a-plain-shared-secret"


def request(headers: dict[str, str], body: bytes = BODY, path: str = "/webhooks/cms") -> SignedRequest:
    return SignedRequest("POST", path, {name.lower(): value for name, value in headers.items()}, body)


def standard_headers(secret: str = STANDARD_SECRET, *, at: float = NOW, body: bytes = BODY) -> dict[str, str]:
    signature = Webhook(secret).sign("msg_2b1x", datetime.fromtimestamp(at, UTC), body)
    return {"webhook-id": "msg_2b1x", "webhook-timestamp": str(int(at)), "webhook-signature": signature}


def github_headers(secret: str = PLAIN_SECRET, body: bytes = BODY) -> dict[str, str]:
    # GitHub: "sha256=" + HMAC hex digest of the payload, keyed by the webhook secret
    digest = hmac.new(secret.encode("utf-8"), msg=body, digestmod=hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": "sha256=" + digest, "X-GitHub-Delivery": "72d3162e-cc78-11e3"}


def sanity_headers(secret: str = PLAIN_SECRET, *, at_ms: int = int(NOW * 1000), body: bytes = BODY) -> dict[str, str]:
    # @sanity/webhook: t=<ms>,v1=base64url(HMAC-SHA256(secret, "<ms>.<payload>")) without padding
    mac = hmac.new(secret.encode(), f"{at_ms}.{body.decode()}".encode(), hashlib.sha256).digest()
    encoded = base64.b64encode(mac).decode().replace("+", "-").replace("/", "_").rstrip("=")
    return {"sanity-webhook-signature": f"t={at_ms},v1={encoded}", "idempotency-key": "evt-1"}


def contentful_headers(
    secret: str = PLAIN_SECRET, *, at_ms: int = int(NOW * 1000), body: bytes = BODY, path: str = "/webhooks/cms"
) -> dict[str, str]:
    # Contentful request verification: headers to sign (lower-cased) plus x-contentful-timestamp and
    # x-contentful-signed-headers, sorted by name; "method\npath\nname:value;...\nbody", HMAC-SHA256 hex.
    signed = {"content-type": "application/vnd.contentful.management.v1+json", "x-contentful-topic": "Entry.publish"}
    names = sorted([*signed, "x-contentful-signed-headers", "x-contentful-timestamp"])
    all_headers = {**signed, "x-contentful-timestamp": str(at_ms), "x-contentful-signed-headers": ",".join(names)}
    canonical = "\n".join(["POST", path, ";".join(f"{n}:{all_headers[n]}" for n in names), body.decode()])
    signature = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {**all_headers, "x-contentful-signature": signature, "X-Unsigned": "anything"}


def ghost_headers(secret: str = PLAIN_SECRET, *, at_ms: int = int(NOW * 1000), body: bytes = BODY) -> dict[str, str]:
    # Ghost's WebhookTrigger: sha256=<hex HMAC-SHA256(secret, payload + ts)>, t=<ts in ms>
    digest = hmac.new(secret.encode(), body + str(at_ms).encode(), hashlib.sha256).hexdigest()
    return {"X-Ghost-Signature": f"sha256={digest}, t={at_ms}"}


SENDERS: dict[Scheme, tuple[Callable[[], dict[str, str]], str]] = {
    Scheme.STANDARD: (standard_headers, STANDARD_SECRET),
    Scheme.GITHUB: (github_headers, PLAIN_SECRET),
    Scheme.SANITY: (sanity_headers, PLAIN_SECRET),
    Scheme.CONTENTFUL: (contentful_headers, PLAIN_SECRET),
    Scheme.GHOST: (ghost_headers, PLAIN_SECRET),
}


def check(scheme: Scheme, req: SignedRequest, secrets: list[str], *, now: float = NOW) -> str | None:
    verified = verify(scheme, req, secrets, now=now, tolerance_seconds=300)
    return verified.delivery_id


@pytest.mark.parametrize("scheme", list(SENDERS))
def test_each_scheme_accepts_what_its_sender_signs(scheme: Scheme) -> None:
    sign, secret = SENDERS[scheme]
    check(scheme, request(sign()), [secret])


def test_delivery_ids_come_only_from_what_the_signature_covers() -> None:
    assert check(Scheme.STANDARD, request(standard_headers()), [STANDARD_SECRET]) == "msg_2b1x"  # signed
    # X-GitHub-Delivery and Sanity's idempotency-key are not signed: a replay could rename itself with them
    assert check(Scheme.GITHUB, request(github_headers()), [PLAIN_SECRET]) is None
    assert check(Scheme.SANITY, request(sanity_headers()), [PLAIN_SECRET]) is None


# Headers a sender sets besides its signature, which a replayer could set to anything: delivery ids of every
# scheme, and a few more a future scheme might be tempted to read.
REPLAYABLE_HEADERS = (
    "x-github-delivery",
    "idempotency-key",
    "webhook-id",
    "x-request-id",
    "x-contentful-webhook-name",
    "x-ghost-delivery",
    "x-cdnpurge-token",
)


@pytest.mark.parametrize("scheme", [*SENDERS, Scheme.TOKEN])
def test_no_header_outside_the_signature_names_the_delivery(scheme: Scheme) -> None:
    """Structural: for every scheme (one added later included, once it is in SENDERS), a request still verified
    after any header was changed or added is the same delivery. A delivery id taken from a header the signature
    does not cover would let a captured request be replayed under a fresh id, past the replay record."""
    sign, secret = SENDERS.get(scheme, (lambda: {"x-cdnpurge-token": PLAIN_SECRET}, PLAIN_SECRET))
    headers = {name.lower(): value for name, value in sign().items()}
    original = check_with(scheme, request(headers), [secret])
    tried = 0
    for name in sorted({*headers, *REPLAYABLE_HEADERS}):
        for value in ("replayed-1", "replayed-2" * 30, "\x1b[2Jreplayed"):
            try:
                renamed = check_with(scheme, request({**headers, name: value}), [secret])
            except SignatureRejected:
                continue  # the header is covered by the signature: changing it is refused
            tried += 1
            assert renamed == original, f"{scheme}: header {name} changed the delivery id, the signature held"
    hostile("webhooks", tried)


def check_with(scheme: Scheme, req: SignedRequest, secrets: list[str]) -> str | None:
    return verify(scheme, req, secrets, now=NOW, tolerance_seconds=300, token_header="x-cdnpurge-token").delivery_id


@pytest.mark.parametrize("scheme", list(SENDERS))
def test_a_changed_body_is_a_bad_signature(scheme: Scheme) -> None:
    sign, secret = SENDERS[scheme]
    with pytest.raises(SignatureRejected) as caught:
        check(scheme, request(sign(), body=BODY + b" "), [secret])
    assert caught.value.reason is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", list(SENDERS))
def test_another_secret_is_a_bad_signature_and_both_rotation_secrets_are_accepted(scheme: Scheme) -> None:
    sign, secret = SENDERS[scheme]
    other = "whsec_" + base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
    with pytest.raises(SignatureRejected):
        check(scheme, request(sign()), [other])
    # Given a rotation in progress: the new secret and the old one are both accepted
    check(scheme, request(sign()), [other, secret])
    check(scheme, request(sign()), [secret, other])


@pytest.mark.parametrize("scheme", [Scheme.STANDARD, Scheme.SANITY, Scheme.CONTENTFUL, Scheme.GHOST])
def test_a_timestamp_outside_the_window_is_stale_either_way(scheme: Scheme) -> None:
    sign, secret = SENDERS[scheme]
    for now in (NOW + 301, NOW - 301):
        with pytest.raises(SignatureRejected) as caught:
            check(scheme, request(sign()), [secret], now=now)
        assert caught.value.reason is RejectReason.STALE_TIMESTAMP
    check(scheme, request(sign()), [secret], now=NOW + 299)


@pytest.mark.parametrize("scheme", [*SENDERS, Scheme.TOKEN])
def test_no_signature_header_is_missing(scheme: Scheme) -> None:
    with pytest.raises(SignatureRejected) as caught:
        check(scheme, request({}), [PLAIN_SECRET])
    assert caught.value.reason is RejectReason.MISSING_SIGNATURE


def test_standard_accepts_any_of_several_signatures_the_sender_sent() -> None:
    headers = standard_headers()
    old = standard_headers("whsec_" + base64.b64encode(b"the-old-key-before-the-rotation!").decode())
    headers["webhook-signature"] = f"{old['webhook-signature']} {headers['webhook-signature']}"
    check(Scheme.STANDARD, request(headers), [STANDARD_SECRET])


def test_the_token_scheme_compares_its_header_with_the_secret() -> None:
    verify(Scheme.TOKEN, request({"x-cdnpurge-token": PLAIN_SECRET}), [PLAIN_SECRET], now=NOW, tolerance_seconds=1)
    verify(
        Scheme.TOKEN,
        request({"x-wp-token": PLAIN_SECRET}),
        [PLAIN_SECRET],
        now=NOW,
        tolerance_seconds=1,
        token_header="x-wp-token",
    )
    with pytest.raises(SignatureRejected) as caught:
        verify(Scheme.TOKEN, request({"x-cdnpurge-token": "guess"}), [PLAIN_SECRET], now=NOW, tolerance_seconds=1)
    assert caught.value.reason is RejectReason.BAD_SIGNATURE


def test_malformed_headers_are_named_malformed() -> None:
    for scheme, headers in [
        (Scheme.STANDARD, {**standard_headers(), "webhook-timestamp": "soon"}),
        (Scheme.STANDARD, {**standard_headers(), "webhook-signature": "v2,abc"}),
        (Scheme.GITHUB, {"x-hub-signature-256": "sha1=abc"}),
        (Scheme.SANITY, {"sanity-webhook-signature": "t=12,v1=abc"}),  # before Sanity signed anything
        (Scheme.CONTENTFUL, {**contentful_headers(), "x-contentful-timestamp": "-1"}),
        (Scheme.GHOST, {"x-ghost-signature": "sha256=zz, t=1"}),
    ]:
        with pytest.raises(SignatureRejected) as caught:
            check(scheme, request(headers), [PLAIN_SECRET])
        assert caught.value.reason is RejectReason.MALFORMED_SIGNATURE, (scheme, headers)


def test_contentful_signs_the_path_it_canonicalises() -> None:
    # Given a path with a query: the toolkit escapes the query, then encodeURI escapes its '%' again
    assert contentful_path("/webhooks/cms") == "/webhooks/cms"
    assert contentful_path("/webhooks/cms?a=b c") == "/webhooks/cms?a%253Db%2520c"
    headers = contentful_headers(path="/webhooks/cms?a%253Db")
    check(Scheme.CONTENTFUL, request(headers, path="/webhooks/cms?a=b"), [PLAIN_SECRET])


@given(st.text(max_size=80), st.text(max_size=80))
def test_no_header_value_raises_anything_but_a_rejection(signature: str, timestamp: str) -> None:
    # Non-ASCII and hostile values included: compare_digest is given bytes, parsing refuses by reason.
    for scheme, headers in [
        (Scheme.STANDARD, {"webhook-id": "x", "webhook-timestamp": timestamp, "webhook-signature": signature}),
        (Scheme.GITHUB, {"x-hub-signature-256": signature}),
        (Scheme.SANITY, {"sanity-webhook-signature": signature}),
        (
            Scheme.CONTENTFUL,
            {
                "x-contentful-signature": signature,
                "x-contentful-timestamp": timestamp,
                "x-contentful-signed-headers": signature,
            },
        ),
        (Scheme.GHOST, {"x-ghost-signature": signature}),
        (Scheme.TOKEN, {"x-cdnpurge-token": signature}),
    ]:
        with pytest.raises(SignatureRejected):
            verify(scheme, request(headers), [STANDARD_SECRET], now=NOW, tolerance_seconds=300)
