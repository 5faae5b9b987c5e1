"""Executor: pacing, retries and deadlines, on a simulated clock (no real sleeping, exact figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from random import Random

import httpx
import pytest
from helpers import FASTLY_TOKEN, SimulatedClock, fastly_config
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.answers import MAX_PROVIDER_WAIT_SECONDS
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import ProviderError, RejectedError, ThrottledError, UnavailableError
from cdnpurge.core.registry import build_providers
from cdnpurge.core.spec import Capabilities, ProviderSpec
from cdnpurge.runtime.execute import (
    LEARNED_RATE_MEMORY_SECONDS,
    PACING_HEADROOM,
    RECOVERY_PER_SECOND,
    Executor,
    TokenBucket,
    bounded_wait,
)
from cdnpurge.runtime.providers.http import parse_retry_after, rate_signal_from_headers


@dataclass
class ScriptedProvider:
    """Answers from a script of errors, then succeeds; records the time of every call."""

    script: list[ProviderError]
    clock: SimulatedClock
    rate: float | None = None
    calls: list[float] = field(default_factory=list)
    name: str = "scripted"

    @property
    def spec(self) -> ProviderSpec:
        caps = Capabilities(max_targets={TargetKind.KEY: 10}, rate_per_second=self.rate, burst=1)
        return ProviderSpec(self.name, caps, (), False, lambda target: target.value)

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.calls.append(self.clock())
        if self.script:
            raise self.script.pop(0)
        return PurgeResult(provider_id=f"id-{len(self.calls)}")


def executor_for(provider: ScriptedProvider, clock: SimulatedClock) -> Executor:
    return Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(7))


REQUEST = PurgeRequest("scripted", TargetKind.KEY, ("a",), False, frozenset({"c1"}))


def test_throttle_waits_retry_after_then_succeeds() -> None:
    # Given
    clock = SimulatedClock()
    provider = ScriptedProvider([ThrottledError("scripted", "slow down", status=429, retry_after=3.0)], clock)
    # When
    outcome = executor_for(provider, clock).run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    # Then
    assert outcome.ok and outcome.attempts == 2 and outcome.throttled == 1
    assert provider.calls[1] - provider.calls[0] >= 3.0


def test_rejected_is_not_retried() -> None:
    clock = SimulatedClock()
    provider = ScriptedProvider([RejectedError("scripted", "bad", status=400)], clock)
    outcome = executor_for(provider, clock).run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    assert not outcome.ok and outcome.attempts == 1 and not outcome.deferred
    assert isinstance(outcome.error, RejectedError)


def test_unavailable_backs_off_with_jitter_and_gives_up_after_max_attempts() -> None:
    # Given: the provider never recovers
    clock = SimulatedClock()
    provider = ScriptedProvider([UnavailableError("scripted", "down", status=503) for _ in range(10)], clock)
    # When
    outcome = executor_for(provider, clock).run(REQUEST, deadline=Deadline(clock() + 600, clock), idempotency_token="t")
    # Then: six attempts, each back-off within its exponential cap
    assert not outcome.ok and outcome.attempts == 6 and not outcome.deferred
    caps = [0.2 * 2**i for i in range(5)]
    assert all(0 <= slept <= cap for slept, cap in zip(clock.sleeps, caps, strict=False))


def test_retry_after_beyond_the_deadline_defers_instead_of_waiting() -> None:
    # Given
    clock = SimulatedClock()
    provider = ScriptedProvider([ThrottledError("scripted", "slow down", status=429, retry_after=120.0)], clock)
    # When
    outcome = executor_for(provider, clock).run(REQUEST, deadline=Deadline(clock() + 30, clock), idempotency_token="t")
    # Then: no call after the deadline, reported as deferred so SQS redelivers it
    assert outcome.deferred and not outcome.ok and len(provider.calls) == 1
    assert clock() <= 1000.0 + 30


def test_pacing_spreads_calls_just_under_the_declared_rate() -> None:
    # Given: 2 calls a second, burst 1
    clock = SimulatedClock()
    provider = ScriptedProvider([], clock, rate=2.0)
    executor = executor_for(provider, clock)
    # When
    for _ in range(5):
        assert executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t").ok
    # Then: 0.5 s apart, widened by the headroom (never faster than declared)
    gaps = [b - a for a, b in zip(provider.calls, provider.calls[1:], strict=False)]
    assert all(abs(gap - 0.5 / PACING_HEADROOM) < 1e-9 for gap in gaps) and PACING_HEADROOM < 1


def test_token_bucket_pause_holds_every_caller() -> None:
    bucket = TokenBucket(rate=None, burst=1)
    bucket.pause(now=10.0, seconds=5.0)
    assert bucket.delay(12.0) == 3.0 and bucket.delay(16.0) == 0.0


# -- pacing from live signals and shared budgets ------------------------------------------------------


@dataclass
class PacedProvider:
    """Succeeds (after a script of errors), with an optional rate-limit hint on every response."""

    clock: SimulatedClock
    rate: float | None = None
    burst: int = 1
    hint: float | None = None
    script: list[ProviderError] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    name: str = "scripted"

    @property
    def spec(self) -> ProviderSpec:
        caps = Capabilities(max_targets={TargetKind.KEY: 10}, rate_per_second=self.rate, burst=self.burst)
        return ProviderSpec(self.name, caps, (), False, lambda target: target.value)

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.calls.append(self.clock())
        if self.script:
            raise self.script.pop(0)
        return PurgeResult(provider_id="ok", rate_wait=self.hint)


def gaps(calls: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in pairwise(calls)]


def test_a_share_of_the_rate_per_concurrent_invocation() -> None:
    # Given: 4 calls a second declared, burst 2, and two invocations sharing it
    clock = SimulatedClock()
    provider = PacedProvider(clock, rate=4.0, burst=2)
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rate_share=0.5)
    # When
    for _ in range(4):
        assert executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t").ok
    # Then: burst 1 and 2 calls a second for this invocation (less the headroom)
    assert gaps(provider.calls) == [round(0.5 / PACING_HEADROOM, 9)] * 3
    with pytest.raises(ValueError, match="rate_share"):
        Executor({provider.name: provider}, rate_share=0)


def test_rate_limit_headers_slow_the_next_call_before_any_429() -> None:
    # Given: no declared rate, but every response says "0.25 s per call left in this window"
    clock = SimulatedClock()
    provider = PacedProvider(clock, hint=0.25)
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rate_share=0.5)
    # When
    for _ in range(3):
        executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    # Then: spread by the hint, doubled because this invocation has half the budget
    assert gaps(provider.calls) == [0.5, 0.5]


def test_a_throttle_halves_the_rate_which_recovers_on_successes() -> None:
    # Given
    clock = SimulatedClock()
    provider = PacedProvider(clock, rate=10.0, script=[ThrottledError("scripted", "slow", status=429, retry_after=0)])
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(1))
    bucket = executor.buckets[provider.name]
    # When
    outcome = executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    # Then: cut by half, plus one recovery step (2% of the paced rate) for the success and 2% a second for
    # the pacing wait between the throttled call and the retry
    paced = 10.0 * PACING_HEADROOM
    waited = provider.calls[1] - provider.calls[0]
    assert outcome.ok and outcome.throttled == 1
    assert bucket.rate == pytest.approx(paced * (0.52 + RECOVERY_PER_SECOND * waited))
    for _ in range(40):
        executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    assert bucket.rate == paced  # back at the paced rate, never above it


def test_without_a_declared_rate_a_throttle_teaches_one() -> None:
    # Given: calls 10 ms apart, then a 429
    clock = SimulatedClock()
    bucket = TokenBucket(rate=None, burst=1)
    for _ in range(11):
        bucket.take(clock())
        clock.sleep(0.01)
    # When
    bucket.throttled(clock(), 1.0)
    # Then: half the pace that was throttled (100/s observed)
    assert bucket.rate == pytest.approx(50.0)
    assert bucket.delay(clock()) == pytest.approx(1.0)


def test_throttles_do_not_use_up_the_retry_budget_but_are_bounded() -> None:
    # Given: 8 throttles (more than max_attempts=6) then success
    clock = SimulatedClock()
    script: list[ProviderError] = [ThrottledError("scripted", "slow", status=429, retry_after=0.1) for _ in range(8)]
    provider = PacedProvider(clock, script=script)
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(3))
    # When
    outcome = executor.run(REQUEST, deadline=Deadline(clock() + 600, clock), idempotency_token="t")
    # Then
    assert outcome.ok and outcome.attempts == 9 and outcome.throttled == 8
    # Given: a provider that never stops throttling
    endless = PacedProvider(clock, script=[ThrottledError("scripted", "slow", status=429, retry_after=0.1)] * 50)
    executor = Executor({endless.name: endless}, clock=clock, sleep=clock.sleep, max_throttles=5)
    # When
    outcome = executor.run(REQUEST, deadline=Deadline(clock() + 600, clock), idempotency_token="t")
    # Then: a transient failure (its record is redelivered), not an endless loop
    assert not outcome.ok and outcome.throttled == 5 and isinstance(outcome.error, ThrottledError)


def test_retry_after_gets_jitter_so_paused_callers_do_not_return_together() -> None:
    clock = SimulatedClock()
    provider = PacedProvider(clock, script=[ThrottledError("scripted", "slow", status=429, retry_after=2.0)])
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(11))
    executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    assert 2.0 <= provider.calls[1] - provider.calls[0] <= 2.2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Fastly-RateLimit-Remaining": "10", "Fastly-RateLimit-Reset": "1010"}, 1.0),
        ({"Fastly-RateLimit-Remaining": "0", "Fastly-RateLimit-Reset": "1030"}, 30.0),
        ({"Fastly-RateLimit-Remaining": "99000", "Fastly-RateLimit-Reset": "1001"}, None),  # negligible
        ({"Ratelimit": '"default";r=50;t=30'}, 0.6),
        ({"Ratelimit": '"default";t=30;r=0'}, 30.0),
        ({"RateLimit-Remaining": "4", "RateLimit-Reset": "2"}, 0.5),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Limit-Per-Second": "50"}, 0.02),
        ({"X-RateLimit-Remaining": "80", "X-RateLimit-Limit-Per-Second": "50"}, None),
        ({"Fastly-RateLimit-Remaining": "soon"}, None),
        ({}, None),
    ],
)
def test_rate_signals_are_read_from_each_providers_headers(headers: dict[str, str], expected: float | None) -> None:
    wait = rate_signal_from_headers(headers, now=1000.0)
    assert wait == (None if expected is None else pytest.approx(expected))


def test_http_providers_surface_the_rate_signal_on_their_result() -> None:
    # Given: a response carrying rate-limit headers in the relative form (seconds to reset), so the figure
    # does not depend on the wall clock (each header form is read by the table test above)
    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"RateLimit-Remaining": "50", "RateLimit-Reset": "100"}
        return httpx.Response(200, json={"status": "ok", "id": "p1"}, headers=headers)

    config = fastly_config()
    provider = build_providers(
        config.providers,
        lambda settings: {"token": Secret(FASTLY_TOKEN)},
        {"fastly": httpx.Client(transport=httpx.MockTransport(answer))},
    )["fastly"]
    # When
    result = provider.purge(PurgeRequest("fastly", TargetKind.KEY, ("k",), False), idempotency_token="t")
    # Then: 100 s / 50 calls
    assert result.rate_wait == pytest.approx(2.0)


# --- every wait is bounded -----------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [1_000_000_000.0, float("inf"), 10.0**300])
def test_a_providers_absurd_retry_after_pauses_it_at_most_the_documented_maximum(asked: float) -> None:
    # Given: one 429 asking for an absurd wait, in a first batch that ends before it
    clock = SimulatedClock()
    provider = PacedProvider(clock, script=[ThrottledError("scripted", "slow", status=429, retry_after=asked)])
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(5))
    first = executor.run(REQUEST, deadline=Deadline(clock() + 30, clock), idempotency_token="t")
    assert first.deferred and first.retry_in is not None
    assert first.retry_in <= MAX_PROVIDER_WAIT_SECONDS * 1.1  # the cap, plus at most 10% jitter
    # When: a later batch of the same warm container, once the capped pause is over
    clock.sleep(MAX_PROVIDER_WAIT_SECONDS * 1.1)
    later = [executor.run(REQUEST, deadline=Deadline(clock() + 30, clock), idempotency_token="t") for _ in range(3)]
    # Then: the provider is called again
    assert all(outcome.ok for outcome in later)
    assert len(provider.calls) == 4


def test_a_far_future_rate_limit_reset_on_a_success_is_capped_too() -> None:
    # Given: a success whose headers say "your budget resets in 30 years"
    clock = SimulatedClock()
    provider = PacedProvider(clock, hint=30 * 365 * 86400.0)
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep)
    executor.run(REQUEST, deadline=Deadline(clock() + 30, clock), idempotency_token="t")
    # When: the next call
    executor.run(REQUEST, deadline=Deadline(clock() + 600, clock), idempotency_token="t")
    # Then: it waited the cap, not 30 years
    assert gaps(provider.calls) == [MAX_PROVIDER_WAIT_SECONDS]


@pytest.mark.parametrize(
    ("asked", "bounded"),
    [(None, None), (float("nan"), None), (-5.0, 0.0), (2.5, 2.5), (float("inf"), MAX_PROVIDER_WAIT_SECONDS)],
)
def test_bounded_wait(asked: float | None, bounded: float | None) -> None:
    assert bounded_wait(asked) == bounded


def test_a_nan_retry_after_backs_off_on_the_executors_own_schedule() -> None:
    clock = SimulatedClock()
    provider = PacedProvider(clock, script=[ThrottledError("scripted", "slow", status=429, retry_after=float("nan"))])
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(5))
    outcome = executor.run(REQUEST, deadline=Deadline(clock() + 30, clock), idempotency_token="t")
    assert outcome.ok and 0 <= provider.calls[1] - provider.calls[0] <= executor.base_backoff


def test_a_learned_rate_is_forgotten_and_later_batches_run_unpaced() -> None:
    # Given: a provider with no declared rate (F5 XC, Medianova) throttles once in a quick burst
    clock = SimulatedClock()
    provider = PacedProvider(clock, script=[ThrottledError("scripted", "slow", status=429, retry_after=1.0)])
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(2))
    for _ in range(5):
        executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    assert executor.buckets[provider.name].rate is not None  # it learned a rate
    # When: later batches, after the learned rate's memory
    clock.sleep(LEARNED_RATE_MEMORY_SECONDS)
    before = len(clock.sleeps)
    for _ in range(20):
        executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t")
    # Then: twenty calls with no pacing wait at all
    assert len(clock.sleeps) == before
    assert executor.buckets[provider.name].rate is None


def test_a_cut_rate_recovers_with_time_between_batches() -> None:
    # Given: a declared rate cut to its floor by a run of throttles
    clock = SimulatedClock()
    bucket = TokenBucket(rate=10.0, burst=1)
    for _ in range(10):
        bucket.throttled(clock(), 0.0)
    assert bucket.rate == pytest.approx(1.0)
    # When: a minute without calls (the next batch)
    clock.sleep(60)
    # Then: back at the declared rate, not 1 call/s for the container's life
    assert bucket.delay(clock()) == 0.0
    assert bucket.rate == 10.0


HEADER_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"]),
)


@settings(max_examples=300, deadline=None)
@given(
    retry_after=HEADER_VALUES,
    rate_headers=st.dictionaries(
        st.sampled_from(
            [
                "Fastly-RateLimit-Remaining",
                "Fastly-RateLimit-Reset",
                "Ratelimit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "X-RateLimit-Remaining",
                "X-RateLimit-Limit-Per-Second",
            ]
        ),
        HEADER_VALUES,
    ),
)
def test_no_header_value_pauses_a_provider_beyond_the_cap(retry_after: str, rate_headers: dict[str, str]) -> None:
    # Given: a 429 with any Retry-After, then a success with any rate-limit headers
    clock = SimulatedClock()
    throttle = ThrottledError("scripted", "slow", status=429, retry_after=parse_retry_after(retry_after))
    provider = PacedProvider(clock, script=[throttle], hint=rate_signal_from_headers(rate_headers))
    executor = Executor({provider.name: provider}, clock=clock, sleep=clock.sleep, rng=Random(1))
    # When
    executor.run(REQUEST, deadline=Deadline(clock() + 10 * MAX_PROVIDER_WAIT_SECONDS, clock), idempotency_token="t")
    # Then: no single wait, and no pause left behind, exceeds the cap (plus the jitter on a throttle)
    assert all(0 <= wait <= MAX_PROVIDER_WAIT_SECONDS * 1.1 for wait in clock.sleeps)
    assert executor.buckets[provider.name].pause_until - clock() <= MAX_PROVIDER_WAIT_SECONDS * 1.1
    tally.hostile("waits", 1)


def test_a_call_outside_run_is_paced_with_the_providers_purges_and_never_past_the_deadline() -> None:
    # Given: a provider paced at 1 call a second (burst 1), its token just taken by a purge
    clock = SimulatedClock()
    provider = ScriptedProvider([], clock, rate=1.0)
    executor = executor_for(provider, clock)
    assert executor.run(REQUEST, deadline=Deadline(clock() + 60, clock), idempotency_token="t").ok
    # When: a job-status poll asks for the next token
    executor.pace("scripted", Deadline(clock() + 60, clock))
    # Then: it waited for it, as a purge would have
    assert sum(clock.sleeps) >= 1 / PACING_HEADROOM - 1e-9
    # And: a poll whose wait would pass the deadline is refused, not waited for
    with pytest.raises(OutOfTimeError):
        executor.pace("scripted", Deadline(clock() + 0.1, clock))
