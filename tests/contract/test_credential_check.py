"""`check_credentials`, the question `cdnpurge doctor` asks each provider: through the wrappers every built
provider has, to the adapter's documented harmless call on the fake CDNs (loopback servers following each CDN's
API), and "not checked" (never "accepted") for an adapter whose API documents none. Each provider's own call,
accepted and refused, is in the contract kit (`tests/contract/kit.py`) and, for CloudFront, test_cloudfront.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdnpurge.core.config import parse_config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, PurgeResult
from cdnpurge.core.registry import REGISTRY
from cdnpurge.runtime.credential_check import Acceptance, check_credentials
from cdnpurge.runtime.providers.bunny import BunnyProvider
from cdnpurge.runtime.redaction import RedactingProvider
from cdnpurge_local.fakecdn.bunny import BunnyBehaviour
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN

FASTLY_TOKEN = "fastly-token-for-the-check-0123456789"
BUNNY_KEY = "bunny-key-for-the-check-0123456789"
WRONG = "a-token-the-provider-never-issued-987654"


@pytest.fixture(scope="module")
def cdn() -> Iterator[FakeCDN]:
    behaviours = [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id="SU1Z0isxPaozGVKXdv0eY"),
        BunnyBehaviour(access_key=BUNNY_KEY, pull_zone_id=123456),
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
    return REGISTRY[kind](settings, {credential: Secret(value)}, None)


def test_a_wrapped_provider_is_asked_through_its_adapter(cdn: FakeCDN) -> None:
    # Given a provider as the runtime builds it: the adapter inside the redacting wrapper
    cdn.reset()
    inner = provider(cdn, "fastly", "service_id: SU1Z0isxPaozGVKXdv0eY", "token", FASTLY_TOKEN)
    wrapped = RedactingProvider(inner, [FASTLY_TOKEN])
    # When / Then: the adapter's call is made, and a refusal is said without the token
    assert check_credentials(wrapped, [FASTLY_TOKEN]).acceptance is Acceptance.ACCEPTED
    wrong = RedactingProvider(provider(cdn, "fastly", "service_id: SU1Z0isxPaozGVKXdv0eY", "token", WRONG), [WRONG])
    refused = check_credentials(wrong, [WRONG])
    assert refused.acceptance is Acceptance.REFUSED and WRONG not in refused.detail
    assert cdn.purged("fastly") == []


class UncheckedBunny:
    """A provider whose API documents no harmless call needing its credentials: it implements no
    `CredentialsCheck` (the Bunny adapter's purge, without its check)."""

    def __init__(self, adapter: BunnyProvider) -> None:
        self.adapter = adapter
        self.name, self.spec = adapter.name, adapter.spec

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        return self.adapter.purge(request, idempotency_token=idempotency_token, deadline=deadline)


def test_an_adapter_without_a_harmless_call_is_not_checked_and_says_so(cdn: FakeCDN) -> None:
    cdn.reset()
    bunny = provider(cdn, "bunny", "pull_zone_id: 123456", "access_key", BUNNY_KEY)
    assert isinstance(bunny, BunnyProvider)
    result = check_credentials(RedactingProvider(UncheckedBunny(bunny), [BUNNY_KEY]), [BUNNY_KEY])
    assert result.acceptance is Acceptance.NOT_CHECKED
    assert "has no harmless call" in result.detail
    assert cdn.received_by("bunny") == []
