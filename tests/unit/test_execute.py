"""Executor: pacing, retries and deadlines, on a simulated clock (no real sleeping, exact figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from helpers import SimulatedClock

from cdnpurge.execute import Executor, TokenBucket
from cdnpurge.models import PurgeRequest, TargetKind
from cdnpurge.providers.base import (
    Capabilities,
    ProviderError,
    ProviderSpec,
    PurgeResult,
    RejectedError,
    ThrottledError,
    UnavailableError,
)


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

    def purge(self, request: PurgeRequest, *, idempotency_token: str) -> PurgeResult:
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
    outcome = executor_for(provider, clock).run(REQUEST, deadline=clock() + 60, idempotency_token="t")
    # Then
    assert outcome.ok and outcome.attempts == 2 and outcome.throttled == 1
    assert provider.calls[1] - provider.calls[0] >= 3.0


def test_rejected_is_not_retried() -> None:
    clock = SimulatedClock()
    provider = ScriptedProvider([RejectedError("scripted", "bad", status=400)], clock)
    outcome = executor_for(provider, clock).run(REQUEST, deadline=clock() + 60, idempotency_token="t")
    assert not outcome.ok and outcome.attempts == 1 and not outcome.deferred
    assert isinstance(outcome.error, RejectedError)


def test_unavailable_backs_off_with_jitter_and_gives_up_after_max_attempts() -> None:
    # Given: the provider never recovers
    clock = SimulatedClock()
    provider = ScriptedProvider([UnavailableError("scripted", "down", status=503) for _ in range(10)], clock)
    # When
    outcome = executor_for(provider, clock).run(REQUEST, deadline=clock() + 600, idempotency_token="t")
    # Then: six attempts, each back-off within its exponential cap
    assert not outcome.ok and outcome.attempts == 6 and not outcome.deferred
    caps = [0.2 * 2**i for i in range(5)]
    assert all(0 <= slept <= cap for slept, cap in zip(clock.sleeps, caps, strict=False))


def test_retry_after_beyond_the_deadline_defers_instead_of_waiting() -> None:
    # Given
    clock = SimulatedClock()
    provider = ScriptedProvider([ThrottledError("scripted", "slow down", status=429, retry_after=120.0)], clock)
    # When
    outcome = executor_for(provider, clock).run(REQUEST, deadline=clock() + 30, idempotency_token="t")
    # Then: no call after the deadline, reported as deferred so SQS redelivers it
    assert outcome.deferred and not outcome.ok and len(provider.calls) == 1
    assert clock() <= 1000.0 + 30


def test_pacing_spreads_calls_at_the_declared_rate() -> None:
    # Given: 2 calls a second, burst 1
    clock = SimulatedClock()
    provider = ScriptedProvider([], clock, rate=2.0)
    executor = executor_for(provider, clock)
    # When
    for _ in range(5):
        assert executor.run(REQUEST, deadline=clock() + 60, idempotency_token="t").ok
    # Then
    gaps = [b - a for a, b in zip(provider.calls, provider.calls[1:], strict=False)]
    assert all(abs(gap - 0.5) < 1e-9 for gap in gaps)


def test_token_bucket_pause_holds_every_caller() -> None:
    bucket = TokenBucket(rate=None, burst=1)
    bucket.pause(now=10.0, seconds=5.0)
    assert bucket.delay(12.0) == 3.0 and bucket.delay(16.0) == 0.0
