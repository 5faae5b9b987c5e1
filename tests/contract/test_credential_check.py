"""Whether a provider accepts its credentials, asked with its documented harmless call, against the fake CDNs
(loopback servers following each CDN's API): accepted, refused, or not checked where the API has no such call;
never a purge, never a credential in what is said."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from cdnpurge.core.config import parse_config
from cdnpurge.core.protocol import Provider
from cdnpurge.core.registry import REGISTRY
from cdnpurge.runtime.credential_check import Acceptance, check_credentials
from cdnpurge.runtime.redaction import RedactingProvider
from cdnpurge_local.fakecdn.bunny import BunnyBehaviour
from cdnpurge_local.fakecdn.cloudflare import CloudflareBehaviour
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN

FASTLY_TOKEN = "fastly-token-for-the-check-0123456789"
CLOUDFLARE_TOKEN = "cloudflare-token-for-the-check-0123456789"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
WRONG = "a-token-the-provider-never-issued-987654"


@pytest.fixture(scope="module")
def cdn() -> Iterator[FakeCDN]:
    behaviours = [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id="SU1Z0isxPaozGVKXdv0eY"),
        CloudflareBehaviour(token=CLOUDFLARE_TOKEN, zone_id=ZONE),
        BunnyBehaviour(access_key="bunny-key-0123456789", pull_zone_id=123456),
    ]
    with FakeCDN(behaviours) as running:
        yield running


def provider(cdn: FakeCDN, kind: str, extra: str, credential: str, value: str) -> Provider:
    config = parse_config(
        f"""
providers:
  - name: {kind}
    kind: {kind}
    endpoint: {cdn.endpoint(kind)}
    hosts: [www.example.com]
    {extra}
    credentials:
      {credential}: {{env: UNUSED}}
"""
    )
    (settings,) = config.providers
    return REGISTRY[kind](settings, {credential: SecretStr(value)}, None)


@pytest.mark.parametrize(
    ("kind", "extra", "good", "asked"),
    [
        ("fastly", "service_id: SU1Z0isxPaozGVKXdv0eY", FASTLY_TOKEN, "GET /tokens/self"),
        ("cloudflare", f"zone_id: {ZONE}", CLOUDFLARE_TOKEN, "GET /user/tokens/verify"),
    ],
)
def test_a_provider_with_a_harmless_call_says_accepted_or_refused(
    cdn: FakeCDN, kind: str, extra: str, good: str, asked: str
) -> None:
    cdn.reset()
    credential = "token"
    accepted = check_credentials(provider(cdn, kind, extra, credential, good), [good])
    assert (accepted.acceptance, accepted.detail) == (Acceptance.ACCEPTED, asked)
    refused = check_credentials(provider(cdn, kind, extra, credential, WRONG), [WRONG])
    assert refused.acceptance is Acceptance.REFUSED and refused.detail.startswith(f"{kind}: HTTP 40")
    assert WRONG not in refused.detail
    assert cdn.purged(kind) == []  # asking purged nothing


def test_a_wrapped_provider_is_asked_through_its_adapter(cdn: FakeCDN) -> None:
    inner = provider(cdn, "fastly", "service_id: SU1Z0isxPaozGVKXdv0eY", "token", FASTLY_TOKEN)
    wrapped = RedactingProvider(inner, [FASTLY_TOKEN])
    assert check_credentials(wrapped, [FASTLY_TOKEN]).acceptance is Acceptance.ACCEPTED


def test_a_provider_without_a_harmless_call_is_not_checked_and_says_so(cdn: FakeCDN) -> None:
    bunny = provider(cdn, "bunny", "pull_zone_id: 123456", "access_key", "bunny-key-0123456789")
    result = check_credentials(bunny, ["bunny-key-0123456789"])
    assert result.acceptance is Acceptance.NOT_CHECKED
    assert "has no harmless call" in result.detail
    assert cdn.received_by("bunny") == []
