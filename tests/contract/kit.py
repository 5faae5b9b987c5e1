"""The shared provider contract suite: what every adapter must do alike, written once.

A provider joins by declaring one case in its own test file, so that file holds only what is particular
to the provider:

    class TestContract(HttpContract):
        case = HttpCase(adapter=..., behaviour=..., settings=..., credentials=..., limit_kind=..., ...)

`HttpContract` runs every check against the provider's fake on loopback: 401 for each wrong credential,
403, 404 for a resource the fake lacks, 429 with the provider's own retry header, 5xx, a dropped
connection, a timeout, a 2xx that is not JSON, no credential in any error, log or record, the per-call
limit at N (accepted) and N+1 (refused before any call, and by the fake where the provider documents the
limit), a kind the provider does not declare refused before any call, and the credential check `cdnpurge
doctor` makes (the provider's documented harmless call): accepted with the right credentials, refused with
each wrong one, unknown for a resource the fake lacks, never a purge and never a credential in what it says.
`AdapterContract` holds the checks that need no injected faults, for adapters whose stand-in cannot inject
them (CloudFront on moto): the file then provides the `harness` fixture itself.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pytest
from reliability.tally import hostile

from cdnpurge.core.answers import MAX_PROVIDER_WAIT_SECONDS
from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import Provider
from cdnpurge.core.provider_errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RejectedError,
    ThrottledError,
    UnavailableError,
)
from cdnpurge.core.spec import DeclaredProvider, ProviderSettings, parse_settings
from cdnpurge.runtime.credential_check import Acceptance, check_credentials
from cdnpurge.runtime.providers.http import HttpProvider
from cdnpurge.runtime.redaction import MAX_TEXT_CHARS, RedactingProvider
from cdnpurge_local.fakecdn.server import Behaviour, FakeCDN, Fault

SERVER_ERRORS = (500, 502, 503, 504)
# Short enough to keep the suite fast; the fake holds its answer until released, so nothing races it.
TIMEOUT_SECONDS = 0.05
MAINTENANCE_PAGE = b"<html><body>Down for maintenance</body></html>"
# Numbers no API should send, in every retry and rate-limit header any provider reads.
HOSTILE_NUMBERS = ("1e999", "-1e999", "nan", "Infinity", "-5", "1e308", "9" * 5000, "0x10", " ", "1e-320")
RATE_HEADERS = (
    "Retry-After",
    "Fastly-RateLimit-Remaining",
    "Fastly-RateLimit-Reset",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Remaining",
    "X-RateLimit-Limit-Per-Second",
    "X-RateLimit-Remaining-Objects",
    "X-RateLimit-Limit-Per-Second-Objects",
)


@dataclass(frozen=True)
class ContractCase:
    """What any adapter declares to join the suite.

    - `settings`: the provider-specific settings fields (name, kind and endpoint are filled in).
    - `limit_kind` and `targets(n)`: a kind with a per-call limit, and `n` distinct valid targets of it;
      the smallest call of the suite is `targets(1)`.
    - `missing`: settings overrides naming a service/zone/distribution the fake does not have, or None when
      the provider's configuration names no such resource (Akamai); `missing_status` is the status the
      provider answers with (404, but Cloudflare says 400 with its own code).
    """

    adapter: type[DeclaredProvider]
    settings: Mapping[str, Any]
    limit_kind: TargetKind
    targets: Callable[[int], tuple[str, ...]]
    missing: Mapping[str, Any] | None
    missing_status: int = field(default=404, kw_only=True)


@dataclass(frozen=True)
class HttpCase(ContractCase):
    """An `HttpProvider` and its fake behaviour.

    - `behaviour()`: a fresh fake behaviour accepting `credentials`.
    - `credentials`: the right credentials by name; each is replaced in turn by a wrong one, which the
      provider answers with `wrong_credential_status` (401; Cloudflare 403).
    - `retry_after`: the range of the wait the adapter reads from the fake's 429 (the provider's header).
    - `over_limit_status`: the status the fake answers N+1 targets in one call with, as the provider
      documents it; None when no such answer is documented (Gotipath documents no limit, an F5 XC body
      holds one target by construction, Akamai meets it with its object bucket's 429).
    """

    behaviour: Callable[[], Behaviour] = field(kw_only=True)
    credentials: Mapping[str, str] = field(kw_only=True)
    wrong_credential_status: int = field(default=401, kw_only=True)
    retry_after: tuple[float, float] = field(default=(1.0, 1.0), kw_only=True)
    over_limit_status: int | None = field(default=None, kw_only=True)


class Harness(Protocol):
    """The adapter under test and what its stand-in saw."""

    def provider(self, **overrides: Any) -> Provider: ...

    def calls(self) -> int:
        """How many calls the stand-in has answered."""
        ...


def request(kind: TargetKind, targets: tuple[str, ...], *, soft: bool = False) -> PurgeRequest:
    return PurgeRequest("contract", kind, targets, soft, frozenset({"c1"}))


def settings_for(case: ContractCase, **overrides: Any) -> ProviderSettings:
    fields = {"name": case.adapter.kind, "kind": case.adapter.kind, **case.settings, **overrides}
    return parse_settings(case.adapter.settings_model, fields)


class AdapterContract:
    """Checks every adapter passes, against any stand-in (a `harness` fixture)."""

    case: ClassVar[ContractCase]

    def limit(self) -> int:
        return self.case.adapter.spec_for(settings_for(self.case)).capabilities.max_targets[self.case.limit_kind]

    def test_the_per_call_limit_is_accepted_at_n(self, harness: Harness) -> None:
        # Given
        n = self.limit()
        # When
        harness.provider().purge(request(self.case.limit_kind, self.case.targets(n)), idempotency_token="t")
        # Then
        assert harness.calls() == 1

    def test_n_plus_1_targets_are_refused_before_any_call(self, harness: Harness) -> None:
        # Given
        n = self.limit()
        # When
        with pytest.raises(RejectedError, match=f"{n + 1} {self.case.limit_kind.value} targets") as raised:
            harness.provider().purge(request(self.case.limit_kind, self.case.targets(n + 1)), idempotency_token="t")
        # Then
        assert not raised.value.retryable
        assert harness.calls() == 0

    def test_a_kind_the_provider_does_not_declare_is_refused_before_any_call(self, harness: Harness) -> None:
        # Given
        declared = self.case.adapter.spec_for(settings_for(self.case)).capabilities
        kind = next(kind for kind in TargetKind if not declared.supports(kind))
        # When
        with pytest.raises(RejectedError, match=kind.value):
            harness.provider().purge(request(kind, ("/a",)), idempotency_token="t")
        # Then
        assert harness.calls() == 0

    def test_an_unknown_resource_is_not_found(self, harness: Harness) -> None:
        if self.case.missing is None:
            pytest.skip(f"{self.case.adapter.kind}: its configuration names no resource a purge could miss")
        # When
        with pytest.raises(NotFoundError) as raised:
            harness.provider(**self.case.missing).purge(
                request(self.case.limit_kind, self.case.targets(1)), idempotency_token="t"
            )
        # Then
        assert raised.value.status == self.case.missing_status and not raised.value.retryable


class HttpHarness:
    """An `HttpProvider` against its fake behaviour on a `FakeCDN`."""

    def __init__(self, case: HttpCase, cdn: FakeCDN) -> None:
        self.case = case
        self.cdn = cdn
        self.behaviour_name = next(iter(cdn.behaviours))

    def provider(self, credentials: Mapping[str, str] | None = None, **overrides: Any) -> HttpProvider:
        adapter = self.case.adapter
        assert issubclass(adapter, HttpProvider)
        settings = settings_for(self.case, endpoint=self.cdn.endpoint(self.behaviour_name), **overrides)
        values = self.case.credentials if credentials is None else credentials
        return adapter(settings, {name: Secret(value) for name, value in values.items()})

    def calls(self) -> int:
        return len(self.cdn.received_by(self.behaviour_name))

    def inject(self, fault: Fault) -> None:
        self.cdn.inject(self.behaviour_name, fault)


class HttpContract(AdapterContract):
    """Every check, against the provider's fake on loopback with injected faults."""

    case: ClassVar[HttpCase]

    @pytest.fixture
    def harness(self) -> Iterator[HttpHarness]:
        with FakeCDN([self.case.behaviour()]) as cdn:
            yield HttpHarness(self.case, cdn)

    def small(self) -> PurgeRequest:
        return request(self.case.limit_kind, self.case.targets(1))

    def test_each_wrong_credential_is_an_auth_error_and_no_secret_leaks(
        self, harness: HttpHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given
        caplog.set_level(logging.DEBUG)
        for name in self.case.credentials:
            wrong = f"wrong-{name}-not-real-0123456789"
            # When
            with pytest.raises(AuthError) as raised:
                credentials = {**self.case.credentials, name: wrong}
                harness.provider(credentials).purge(self.small(), idempotency_token="t")
            # Then
            assert raised.value.status == self.case.wrong_credential_status, name
            everything = str(raised.value) + repr(raised.value) + caplog.text + repr(harness.cdn.received)
            assert not [value for value in (wrong, *self.case.credentials.values()) if value in everything], name

    def test_the_credential_check_is_accepted_refused_for_each_wrong_credential_and_purges_nothing(
        self, harness: HttpHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given the provider's documented harmless call
        caplog.set_level(logging.DEBUG)
        kind, right = self.case.adapter.kind, self.case.credentials
        call = harness.provider().credentials_check()
        assert call is not None, f"{kind}: no credential check"
        # When asked with the right credentials, then with each wrong one in turn
        accepted = check_credentials(harness.provider(), list(right.values()))
        said = [accepted.detail]
        for name in right:
            credentials = {**right, name: f"wrong-{name}-not-real-0123456789"}
            refused = check_credentials(harness.provider(credentials), list(credentials.values()))
            # Then each wrong credential is refused with the provider's own status
            assert refused.acceptance is Acceptance.REFUSED, (name, refused)
            assert refused.detail.startswith(f"{kind}: HTTP {self.case.wrong_credential_status}"), refused.detail
            said.append(refused.detail)
        # And the right ones are accepted, naming the call; nothing was purged; no credential was said
        assert (accepted.acceptance, accepted.detail) == (Acceptance.ACCEPTED, f"{call.method} /{call.path}")
        assert harness.cdn.purged(harness.behaviour_name) == []
        assert {received.method for received in harness.cdn.received} == {call.method}
        everything = "".join(said) + caplog.text + repr(harness.cdn.received)
        wrong = [f"wrong-{name}-not-real-0123456789" for name in right]
        assert not [value for value in (*right.values(), *wrong) if value in everything]

    def test_the_credential_check_of_a_resource_the_provider_lacks_is_unknown_not_accepted(
        self, harness: HttpHarness
    ) -> None:
        if self.case.missing is None:
            pytest.skip(f"{self.case.adapter.kind}: its configuration names no resource a call could miss")
        missing = harness.provider(**self.case.missing)
        if missing.credentials_check() == harness.provider().credentials_check():
            pytest.skip(f"{self.case.adapter.kind}: its credential check names no configured resource")
        # When the check reads a resource the provider does not have
        result = check_credentials(missing, list(self.case.credentials.values()))
        # Then it says nothing about the credentials, rather than "accepted"
        assert result.acceptance is Acceptance.UNKNOWN, result
        assert result.detail.startswith(f"{self.case.adapter.kind}: HTTP {self.case.missing_status}"), result.detail

    def test_403_is_an_auth_error(self, harness: HttpHarness) -> None:
        # Given
        harness.inject(Fault(status=403))
        # When
        with pytest.raises(AuthError) as raised:
            harness.provider().purge(self.small(), idempotency_token="t")
        # Then
        assert raised.value.status == 403 and not raised.value.retryable

    def test_429_is_throttled_with_the_wait_from_the_providers_own_header(self, harness: HttpHarness) -> None:
        # Given: the fake's own 429, headers as the provider sends them
        harness.inject(Fault(status=429))
        # When
        with pytest.raises(ThrottledError) as raised:
            harness.provider().purge(self.small(), idempotency_token="t")
        # Then
        low, high = self.case.retry_after
        assert raised.value.status == 429 and raised.value.retryable
        assert raised.value.retry_after is not None and low <= raised.value.retry_after <= high
        assert harness.cdn.throttled == 1

    def test_the_fakes_own_rate_limit_answers_with_the_providers_429(self, harness: HttpHarness) -> None:
        # Given: a bucket with no token left and a refill far slower than the test
        behaviour = harness.cdn.behaviours[harness.behaviour_name]
        behaviour.rate_per_second, behaviour.burst = 0.001, 1
        behaviour.refill()
        adapter = harness.provider()
        adapter.purge(self.small(), idempotency_token="t")
        # When
        with pytest.raises(ThrottledError) as raised:
            adapter.purge(self.small(), idempotency_token="t")
        # Then
        assert raised.value.status == 429 and raised.value.retry_after is not None
        assert harness.cdn.throttled == 1

    def test_hostile_numbers_in_an_answer_are_read_finite_and_bounded(self, harness: HttpHarness) -> None:
        # Given answers (a 429, then a success) whose every retry and rate-limit header holds a hostile number
        adapter = harness.provider()
        for value in HOSTILE_NUMBERS:
            headers = dict.fromkeys(RATE_HEADERS, value) | {"Ratelimit": f'"default";r={value};t={value}'}
            harness.inject(Fault(status=429, headers=headers))
            # When the adapter reads them
            with pytest.raises(ThrottledError) as raised:
                adapter.purge(self.small(), idempotency_token="t")
            harness.inject(Fault(headers=headers))
            result = adapter.purge(self.small(), idempotency_token="t")
            # Then every wait is a finite number within bounds, or none (the executor backs off on its own)
            wait = raised.value.retry_after
            assert wait is None or 0 <= wait <= MAX_PROVIDER_WAIT_SECONDS, (value, wait)
            assert result.rate_wait is None or 0 <= result.rate_wait < math.inf, (value, result.rate_wait)
            hostile("answers", 2)

    def test_server_errors_are_unavailable_and_retryable(self, harness: HttpHarness) -> None:
        adapter = harness.provider()
        for status in SERVER_ERRORS:
            # Given
            harness.inject(Fault(status=status))
            # When
            with pytest.raises(UnavailableError) as raised:
                adapter.purge(self.small(), idempotency_token="t")
            # Then
            assert raised.value.retryable and raised.value.status == status

    def test_a_dropped_connection_is_unavailable(self, harness: HttpHarness) -> None:
        # Given
        harness.inject(Fault(drop=True))
        # When / Then
        with pytest.raises(UnavailableError, match="RemoteProtocolError calling POST") as raised:
            harness.provider().purge(self.small(), idempotency_token="t")
        assert raised.value.retryable and raised.value.status is None

    def test_a_timeout_is_unavailable_and_the_adapter_gave_up_before_any_answer(self, harness: HttpHarness) -> None:
        # Given: the fake holds its answer until released
        release = threading.Event()
        harness.inject(Fault(release=release))
        try:
            # When
            with pytest.raises(UnavailableError, match="timed out calling POST") as raised:
                harness.provider(timeout_seconds=TIMEOUT_SECONDS).purge(self.small(), idempotency_token="t")
            # Then: the fake had answered nothing, so the adapter's own timeout ended the call
            assert raised.value.retryable
            assert harness.calls() == 0
        finally:
            release.set()

    def test_a_2xx_that_is_not_json_is_rejected_with_the_page_quoted_and_bounded(self, harness: HttpHarness) -> None:
        # Given: a long maintenance page answering 200 in front of the API
        harness.inject(Fault(status=200, body=MAINTENANCE_PAGE + b"x" * 5000))
        # When / Then: a ProviderError the executor handles, not a JSONDecodeError that escapes it, bounded
        # by the redacting wrapper every built provider has (adapters never cut a CDN's text themselves:
        # cutting before redacting could leave part of an echoed credential)
        provider = RedactingProvider(harness.provider(), ())
        with pytest.raises(RejectedError, match="response is not JSON: '<html><body>Down for maintenance") as raised:
            provider.purge(self.small(), idempotency_token="t")
        assert raised.value.status == 200 and len(raised.value.message) <= MAX_TEXT_CHARS + len("... (99999 chars)")

    def test_no_credential_appears_in_any_error_log_or_record(
        self, harness: HttpHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given: a success, then every kind of failure
        caplog.set_level(logging.DEBUG)
        adapter = harness.provider()
        adapter.purge(self.small(), idempotency_token="t")
        for fault in (Fault(status=500), Fault(status=429), Fault(status=403), Fault(drop=True)):
            harness.inject(fault)
        errors: list[ProviderError] = []
        # When
        for _ in range(4):
            with pytest.raises(ProviderError) as raised:
                adapter.purge(self.small(), idempotency_token="t")
            errors.append(raised.value)
        # Then
        everything = (
            "".join(str(e) + repr(e) + repr(vars(e)) for e in errors) + caplog.text + repr(harness.cdn.received)
        )
        assert not [value for value in self.case.credentials.values() if value in everything]

    def test_the_fake_refuses_n_plus_1_as_the_provider_does(self, harness: HttpHarness) -> None:
        if self.case.over_limit_status is None:
            pytest.skip(f"{self.case.adapter.kind}: no documented answer to N+1 targets in one call")
        # Given: N+1 targets sent past the adapter's own check
        adapter = harness.provider()
        call = adapter.build_request(request(self.case.limit_kind, self.case.targets(self.limit() + 1)))
        # When
        with pytest.raises(ProviderError) as raised:
            adapter.send(call)
        # Then
        assert raised.value.status == self.case.over_limit_status and not raised.value.retryable
