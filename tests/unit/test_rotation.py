"""Rotated credentials: on 401/403 the secret is read again past the cache and, if it
changed, the call is retried once with it; an unchanged secret is not retried. Against the fake Fastly,
whose accepted token is rotated under a running provider."""

from __future__ import annotations

import json

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, config_from

from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.provider_errors import AuthError
from cdnpurge.runtime.purgers import Purgers, build_purgers
from cdnpurge_local.fakecdn.server import FakeCDN

ROTATED_TOKEN = "fastly-rotated-token-not-real-9876543210"
REQUEST = PurgeRequest("fastly", TargetKind.KEY, ("k1",), False, frozenset({"c1"}))


class SecretsManager:
    """A secret store the test rotates; `cached` is what a cached reader returns, `reads` counts fresh reads."""

    def __init__(self) -> None:
        self.value = FASTLY_TOKEN
        self.cached = FASTLY_TOKEN
        self.fresh_reads = 0

    def cached_read(self, name: str) -> str:
        return json.dumps({"token": self.cached})

    def fresh_read(self, name: str) -> str:
        self.fresh_reads += 1
        self.cached = self.value
        return json.dumps({"token": self.value})


def purgers_for(cdn: FakeCDN, store: SecretsManager) -> Purgers:
    config = config_from(
        f"""
        providers:
          - name: fastly
            kind: fastly
            service_id: {FASTLY_SERVICE}
            endpoint: {cdn.endpoint("fastly")}
            hosts: [www.example.com]
            credentials:
              token: {{secret: cdnpurge/fastly, field: token}}
        """
    )
    return build_purgers(config.providers, secret_reader=store.cached_read, fresh_secret_reader=store.fresh_read)


def test_a_rotated_token_is_read_again_and_the_call_retried_once(fake_cdn: FakeCDN) -> None:
    # Given: a warm provider holding the old token; then the secret and the CDN rotate to a new one
    store = SecretsManager()
    purgers = purgers_for(fake_cdn, store)
    assert purgers.providers["fastly"].purge(REQUEST, idempotency_token="t").provider_id
    store.value = ROTATED_TOKEN
    fake_cdn.behaviours["fastly"].token = ROTATED_TOKEN  # type: ignore[attr-defined]
    # When
    result = purgers.providers["fastly"].purge(REQUEST, idempotency_token="t")
    # Then: purged with the new token after one fresh read, which is now redacted too
    assert result.provider_id and store.fresh_reads == 1
    assert purgers.redact(f"x {ROTATED_TOKEN} y") == "x <redacted> y"
    assert purgers.providers["fastly"].purge(REQUEST, idempotency_token="t").provider_id
    assert store.fresh_reads == 1  # the rebuilt provider keeps the new token


def test_an_unchanged_token_is_not_retried(fake_cdn: FakeCDN) -> None:
    # Given: the CDN refuses the token, and the secret still holds it
    store = SecretsManager()
    purgers = purgers_for(fake_cdn, store)
    fake_cdn.behaviours["fastly"].token = ROTATED_TOKEN  # type: ignore[attr-defined]
    calls_before = len(fake_cdn.received_by("fastly"))
    # When / Then: one call, one fresh read, the refusal stands
    with pytest.raises(AuthError):
        purgers.providers["fastly"].purge(REQUEST, idempotency_token="t")
    assert store.fresh_reads == 1
    assert len(fake_cdn.received_by("fastly")) - calls_before == 1
