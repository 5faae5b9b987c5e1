"""execute: send planned requests, paced to each provider's rate, retried within the time left.

Pacing is a token bucket per provider built from its declared (or configured) rate, paused when the
provider says so (`Retry-After`, rate-limit reset headers). Retryable failures back off with full
jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"), never past the deadline: work that
cannot finish in time is reported as deferred so its SQS records are redelivered, never dropped.
The clock and sleep are injected so tests and benchmarks can drive time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cdnpurge.models import PurgeRequest
from cdnpurge.providers.base import Provider, ProviderError, PurgeResult, ThrottledError, UnavailableError


@dataclass(frozen=True)
class Outcome:
    """The end state of one planned request."""

    request: PurgeRequest
    result: PurgeResult | None = None
    error: ProviderError | None = None
    attempts: int = 0
    throttled: int = 0
    deferred: bool = False  # stopped for lack of time; SQS will redeliver

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `burst`; `pause_until` honours a provider's explicit back-off."""

    rate: float | None
    burst: int
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)
    pause_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next call may go out (does not take a token)."""
        wait = max(0.0, self.pause_until - now)
        if self.rate is None:
            return wait
        tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate) if self.updated else self.tokens
        return max(wait, 0.0 if tokens >= 1 else (1 - tokens) / self.rate)

    def take(self, now: float) -> None:
        if self.rate is None:
            return
        if self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1

    def pause(self, now: float, seconds: float) -> None:
        self.pause_until = max(self.pause_until, now + seconds)


AttemptListener = Callable[[PurgeRequest, int, PurgeResult | ProviderError], None]


class Executor:
    """Runs requests against providers with pacing and retries; one instance per invocation or CLI run."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_attempts: int = 6,
        base_backoff: float = 0.2,
        max_backoff: float = 20.0,
        on_attempt: AttemptListener | None = None,
    ) -> None:
        self.providers = providers
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.on_attempt = on_attempt
        self.buckets = {
            name: TokenBucket(provider.spec.capabilities.rate_per_second, provider.spec.capabilities.burst)
            for name, provider in providers.items()
        }

    def run(self, request: PurgeRequest, *, deadline: float, idempotency_token: str) -> Outcome:
        provider = self.providers[request.provider]
        bucket = self.buckets[request.provider]
        attempts = throttled = 0
        last_error: ProviderError | None = None
        while attempts < self.max_attempts:
            wait = bucket.delay(self.clock())
            if self.clock() + wait > deadline:
                return Outcome(request, error=last_error, attempts=attempts, throttled=throttled, deferred=True)
            if wait:
                self.sleep(wait)
            bucket.take(self.clock())
            attempts += 1
            try:
                result = provider.purge(request, idempotency_token=idempotency_token)
            except ProviderError as error:
                self._notify(request, attempts, error)
                last_error = error
                if not error.retryable:
                    return Outcome(request, error=error, attempts=attempts, throttled=throttled)
                backoff = self._backoff(attempts)
                if isinstance(error, ThrottledError):
                    throttled += 1
                    backoff = max(backoff, error.retry_after or 0.0)
                    bucket.pause(self.clock(), backoff)
                elif isinstance(error, UnavailableError) and self.clock() + backoff > deadline:
                    return Outcome(request, error=error, attempts=attempts, deferred=True, throttled=throttled)
                else:
                    self.sleep(backoff)
                continue
            self._notify(request, attempts, result)
            return Outcome(request, result=result, attempts=attempts, throttled=throttled)
        return Outcome(request, error=last_error, attempts=attempts, throttled=throttled)

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1)))

    def _notify(self, request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError) -> None:
        if self.on_attempt is not None:
            self.on_attempt(request, attempt, what)
