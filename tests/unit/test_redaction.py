"""Secrets are redacted before any cut, on success paths too, and never in part.

A real adapter (Fastly) answers through httpx's MockTransport, wrapped as every built provider is
(`RedactingProvider` with `secret_forms`), so the tests hold the whole path from a CDN's answer to the
text the executor, the logs, the CLI and the dead-letter queue see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.provider_errors import ProviderError
from cdnpurge.runtime.deadletter import dead_letter, sqs_records
from cdnpurge.runtime.providers.fastly import FastlyProvider, FastlySettings
from cdnpurge.runtime.redaction import FRAGMENT_CHARS, MAX_TEXT_CHARS, RedactingProvider, clean, redact, secret_forms

# Not a real credential: a made-up value of a plausible length, only ever sent to MockTransport.
TOKEN = "unit-redact-token-not-real-7f3a9c"
SECRETS = secret_forms([TOKEN])
REQUEST = PurgeRequest("fastly", TargetKind.URL, ("https://www.example.com/a",), False, frozenset({"c1"}))


def fragments_of(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT_CHARS] for i in range(len(secret) - FRAGMENT_CHARS + 1)}


def leaked(text: str) -> list[str]:
    """Every piece of 12 or more characters of the token found in `text`."""
    return sorted(piece for piece in fragments_of(TOKEN) if piece in text)


def fastly(answer: Callable[[httpx.Request], httpx.Response]) -> RedactingProvider:
    client = httpx.Client(transport=httpx.MockTransport(answer))
    settings = FastlySettings(name="fastly", service_id="S1")
    return RedactingProvider(FastlyProvider(settings, {"token": Secret(TOKEN)}, client), SECRETS)


def error_of(provider: RedactingProvider) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        provider.purge(REQUEST, idempotency_token="t")
    return raised.value


@given(padding=st.integers(0, 600), json_body=st.booleans(), status=st.sampled_from([400, 403, 500, 503]))
def test_an_echoed_token_leaves_no_fragment_wherever_the_cut_falls(padding: int, json_body: bool, status: int) -> None:
    tally.hostile("secrets")
    # Given: a CDN error quoting the token after `padding` characters, as text or inside JSON
    text = "x" * padding + f" token {TOKEN} refused"
    body = json.dumps({"errors": [text]}) if json_body else text
    provider = fastly(lambda request: httpx.Response(status, content=body.encode()))
    # When
    error = error_of(provider)
    # Then: no piece of it in the message or the exception text, and both are bounded
    assert leaked(error.message) == [] and leaked(str(error)) == []
    assert len(error.message) <= MAX_TEXT_CHARS + len("... (99999 chars)")


def test_a_token_echoed_as_the_purge_id_is_redacted_in_the_result() -> None:
    # Given: a CDN that answers a purge with the key as its id (and in a detail)
    provider = fastly(lambda request: httpx.Response(200, json={"status": "ok", "id": f"id-{TOKEN}"}))
    # When
    result = provider.purge(REQUEST, idempotency_token="t")
    # Then: what the `purge accepted` log line and the CLI print carries no piece of it
    assert result.provider_id == "id-<redacted>"
    assert leaked(repr(result)) == []


@given(start=st.integers(0, len(TOKEN) - FRAGMENT_CHARS), length=st.integers(FRAGMENT_CHARS, len(TOKEN)))
def test_any_piece_of_a_secret_is_redacted(start: int, length: int) -> None:
    tally.hostile("secrets")
    piece = TOKEN[start : start + length]
    assert leaked(redact(f"the CDN quoted {piece} back", SECRETS)) == []


def test_clean_redacts_before_it_cuts() -> None:
    # Given: the token straddling the cut
    text = "a" * (MAX_TEXT_CHARS - 10) + TOKEN
    # Then
    assert leaked(clean(text, SECRETS)) == []
    assert clean("short", SECRETS) == "short"


def test_describe_error_redacts_before_it_cuts() -> None:
    # Given: an SQS failure quoting the token at character 190 (describe_error keeps 200)
    error = RuntimeError("b" * 190 + TOKEN)
    # Then
    assert leaked(describe_error(error, lambda text: redact(text, SECRETS))) == []


class FailingSqs:
    def send_message(self, **_: Any) -> None:
        raise RuntimeError("q" * 180 + f" refused for {TOKEN}")


def test_a_dead_letter_send_failure_leaks_no_fragment() -> None:
    # Given: a permanent failure and a dead-letter send failing with the token near the cut
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]}
    # When
    done = dead_letter(
        FailingSqs(),
        "https://sqs/dlq",
        sqs_records(event),
        failed_sources=("m1",),
        reasons={"m1": ("failed",)},
        permanent=frozenset({"m1"}),
        max_receive_count=5,
        redact=lambda text: redact(text, SECRETS),
        deadline=Deadline.after(60),
    )
    # Then
    (problem,) = done.errors
    assert leaked(problem) == []
