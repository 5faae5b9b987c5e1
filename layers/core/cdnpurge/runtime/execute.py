"""execute: send planned requests, paced to each provider's rate, retried within the time left.

Pacing is a token bucket per provider (`TokenBucket`), fed by three signals:

- the declared (or configured) rate and burst, times `rate_share`: with `MaximumConcurrency` invocations
  running at once, each takes `1 / MaximumConcurrency` of the budget, so parallel invocations never
  multiply the rate a provider sees; the rate is then paced at `PACING_HEADROOM` of that, because callers
  pacing at exactly the provider's rate keep its bucket empty once their bursts are spent, and then any
  jitter in when calls arrive (a delayed call followed by one on time) is a 429;
- the provider's live rate-limit headers on successful responses (`PurgeResult.rate_wait`): the budget left
  is spread over the time until it resets, so the executor slows down *before* a 429;
- throttling (429, Retry-After, reset headers, CloudFront's in-progress limit): every caller pauses for the
  time asked (plus jitter), and the bucket's rate is cut multiplicatively, then recovers additively on
  successes *and with time* (AIMD), so a cut made in one batch is gone a minute later, not kept for the
  warm container's life. A provider without a declared rate gets one learned from the pace that was
  throttled, and forgets it after `LEARNED_RATE_MEMORY_SECONDS` without another throttle.

Every wait a provider names (Retry-After, rate-limit reset headers, Akamai's refill, CloudFront's
in-progress back-off) passes through `bounded_wait` before anything pauses on it: at most
`MAX_PROVIDER_WAIT_SECONDS`, and an infinite or non-numeric value never pauses a provider for good.

Throttles do not use up the retry budget for errors (`max_attempts`); they are bounded by the deadline and
`max_throttles`. Other retryable failures back off with full jitter (AWS Architecture Blog, "Exponential
Backoff and Jitter"). Nothing waits past the deadline: work that cannot finish in time is reported as
deferred, so its SQS records are returned in `batchItemFailures` and redelivered, never dropped.
The clock, sleep and random source are injected so tests and benchmarks can drive time.

`execute_plan` runs a plan's requests with one thread per provider, so one slow or throttled CDN never
delays another, and hands each outcome to the settle stage the moment it is known.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cdnpurge.core.answers import MAX_PROVIDER_WAIT_SECONDS, answer_number
from cdnpurge.core.boundary import unexpected
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, PurgeResult
from cdnpurge.core.provider_errors import ProviderError, ThrottledError, UnexpectedError

# AIMD: a throttle multiplies the rate by DECREASE (never below FLOOR x the declared rate); each success
# adds RECOVERY x the declared (or learned) rate back, up to the declared rate.
DECREASE = 0.5
FLOOR = 0.1
RECOVERY = 0.02
# Additive increase with time as well: each second without a throttle adds this much x the declared (or
# learned) rate back, so a rate cut to the floor is back at the declared rate about 45 s later.
RECOVERY_PER_SECOND = 0.02
# With no declared rate, the first throttle sets one from the pace of the last calls (at least this)...
MIN_LEARNED_RATE = 0.2
# ... which is forgotten (back to unpaced) after this long without another throttle.
LEARNED_RATE_MEMORY_SECONDS = 300.0
_RECENT_CALLS = 16
# Pace at this fraction of the declared rate: the provider's bucket regains 5% of its rate as slack.
PACING_HEADROOM = 0.95


@dataclass(frozen=True)
class Outcome:
    """The end state of one planned request."""

    request: PurgeRequest
    result: PurgeResult | None = None
    error: ProviderError | None = None
    attempts: int = 0
    throttled: int = 0
    deferred: bool = False  # stopped for lack of time; SQS will redeliver
    seconds: float = 0.0  # from the first wait for a token to the outcome: pacing, calls and retries
    # For a deferred or throttled outcome: seconds until the provider may be called again (its pause or
    # pacing delay, or the back-off that did not fit): when a retry of its records is due.
    retry_in: float | None = None
    token: str = ""  # the idempotency token the calls carried (CloudFront's CallerReference)

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `burst`; `pause_until` honours a provider's explicit back-off.

    `rate` moves between `FLOOR x ceiling` and `ceiling` (the declared rate) by AIMD on throttles and
    successes; `None` means no pacing until a throttle teaches one.
    """

    rate: float | None
    burst: int
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)
    pause_until: float = field(init=False, default=0.0)
    ceiling: float | None = field(init=False)  # the declared rate: never exceeded
    base: float | None = field(init=False)  # the declared or learned rate: the unit of recovery steps
    recent: deque[float] = field(init=False)
    recovered_at: float = field(init=False, default=0.0)  # when time-based recovery was last applied
    throttled_at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.ceiling = self.base = self.rate
        self.recent = deque(maxlen=_RECENT_CALLS)

    def recover(self, now: float) -> None:
        """Additive increase with time: `RECOVERY_PER_SECOND x base` per second since the last look, up to
        the declared rate; a learned rate is forgotten `LEARNED_RATE_MEMORY_SECONDS` after its throttle."""
        if self.rate is None or self.base is None:
            return
        if self.ceiling is None and now - self.throttled_at >= LEARNED_RATE_MEMORY_SECONDS:
            self.rate = self.base = None
            return
        if self.recovered_at:
            if self.updated:  # tokens earned so far at the old rate are kept
                self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
                self.updated = now
            raised = self.rate + RECOVERY_PER_SECOND * self.base * max(0.0, now - self.recovered_at)
            self.rate = raised if self.ceiling is None else min(self.ceiling, raised)
        self.recovered_at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next call may go out (does not take a token)."""
        self.recover(now)
        wait = max(0.0, self.pause_until - now)
        if self.rate is None:
            return wait
        tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate) if self.updated else self.tokens
        return max(wait, 0.0 if tokens >= 1 else (1 - tokens) / self.rate)

    def take(self, now: float) -> None:
        self.recover(now)
        self.recent.append(now)
        if self.rate is None:
            return
        if self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1

    def pause(self, now: float, seconds: float) -> None:
        self.pause_until = max(self.pause_until, now + seconds)

    def throttled(self, now: float, seconds: float) -> None:
        """The provider said slow down: pause every caller, and cut the rate (or learn one)."""
        self.recover(now)
        self.pause(now, seconds)
        self.throttled_at = self.recovered_at = now
        if self.rate is None:
            span = self.recent[-1] - self.recent[0] if len(self.recent) > 1 else 0.0
            observed = (len(self.recent) - 1) / span if span > 0 else 1.0
            self.rate = self.base = max(MIN_LEARNED_RATE, observed * DECREASE)
            self.tokens = min(self.tokens, 1.0)
            return
        assert self.base is not None
        floor = FLOOR * self.base if self.ceiling is not None else MIN_LEARNED_RATE
        self.rate = max(floor, self.rate * DECREASE)
        self.tokens = min(self.tokens, 1.0)  # no burst right after a throttle

    def succeeded(self, now: float, rate_wait: float | None) -> None:
        """A call went through: recover the rate a little; honour the provider's own pacing hint."""
        self.recover(now)
        if rate_wait:
            self.pause(now, rate_wait)
        if self.rate is None or self.base is None:
            return
        step = RECOVERY * self.base
        self.rate = self.rate + step if self.ceiling is None else min(self.ceiling, self.rate + step)


def bounded_wait(seconds: float | None) -> float | None:
    """A wait a provider asked for, made safe to pause on: the one place every externally supplied wait is
    capped. At most `MAX_PROVIDER_WAIT_SECONDS` (infinity included), never negative; None when it names no
    number (NaN), so the executor backs off on its own schedule instead."""
    return answer_number(seconds, low=0.0, high=MAX_PROVIDER_WAIT_SECONDS)


AttemptListener = Callable[[PurgeRequest, int, PurgeResult | ProviderError], None]


class Executor:
    """Runs requests against providers with pacing and retries; one instance per invocation or CLI run
    (or kept across warm invocations: pacing state is per provider, not per batch)."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_attempts: int = 6,
        max_throttles: int = 20,
        base_backoff: float = 0.2,
        max_backoff: float = 20.0,
        rate_share: float = 1.0,
        on_attempt: AttemptListener | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        """`redact`: cleans the text of exceptions no adapter mapped (the providers redact their own errors)."""
        if not 0 < rate_share <= 1:
            raise ValueError(f"rate_share must be in (0, 1], got {rate_share}")
        self.providers = providers
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts
        self.max_throttles = max_throttles
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.rate_share = rate_share
        self.on_attempt = on_attempt
        self.redact = redact
        self.buckets = {name: self._bucket(provider) for name, provider in providers.items()}
        self._locks = {name: threading.Lock() for name in providers}

    def adopt_pacing(self, previous: Executor, names: Iterable[str]) -> None:
        """Take over `previous`'s pacing state for `names` (providers whose settings did not change when the
        configuration was reloaded): a rate cut or a pause asked for before the reload still holds."""
        for name in names:
            if name in self.buckets and name in previous.buckets:
                self.buckets[name] = previous.buckets[name]

    def _bucket(self, provider: Provider) -> TokenBucket:
        caps = provider.spec.capabilities
        rate = None if caps.rate_per_second is None else caps.rate_per_second * self.rate_share * PACING_HEADROOM
        return TokenBucket(rate, max(1, int(caps.burst * self.rate_share)))

    def run(self, request: PurgeRequest, *, deadline: Deadline, idempotency_token: str) -> Outcome:
        """Pace, call, retry: nothing waits or calls past `deadline` (the provider's call itself ends before
        it, `cdnpurge.runtime.bounded`); what does not fit is deferred with when its retry is due."""
        provider = self.providers[request.provider]
        bucket = self.buckets[request.provider]
        lock = self._locks[request.provider]
        attempts = throttled = failures = 0
        last_error: ProviderError | None = None
        started = self.clock()

        def outcome(
            *,
            result: PurgeResult | None = None,
            error: ProviderError | None = None,
            deferred: bool = False,
            retry_in: float | None = None,
        ) -> Outcome:
            seconds = self.clock() - started
            return Outcome(
                request,
                result,
                error,
                attempts,
                throttled,
                deferred=deferred,
                seconds=seconds,
                retry_in=retry_in,
                token=idempotency_token,
            )

        while True:
            with lock:  # callers of one provider share its bucket: wait, then take a token, atomically
                wait = bucket.delay(self.clock())
                try:
                    if deadline.expired():
                        raise OutOfTimeError(f"{request.provider}: not started, past the deadline")
                    deadline.sleep(wait, self.sleep, what=f"pacing {request.provider}")
                except OutOfTimeError:
                    return outcome(error=last_error, deferred=True, retry_in=wait)
                bucket.take(self.clock())
            attempts += 1
            try:
                result = provider.purge(request, idempotency_token=idempotency_token, deadline=deadline)
            except OutOfTimeError:  # the call could not start in time: nothing was sent
                return outcome(error=last_error, deferred=True)
            except Exception as exc:  # the per-request fault boundary (`cdnpurge.core.boundary`)
                error = exc if isinstance(exc, ProviderError) else self._unexpected(request, exc)
                self._notify(request, attempts, error)
                last_error = error
                if not error.retryable:
                    return outcome(error=error)
                if isinstance(error, ThrottledError):
                    throttled += 1
                    with lock:
                        bucket.throttled(self.clock(), self._throttle_wait(throttled, bounded_wait(error.retry_after)))
                        retry_in = bucket.delay(self.clock())
                    if throttled >= self.max_throttles:
                        return outcome(error=error, retry_in=retry_in)
                    continue
                failures += 1
                if failures >= self.max_attempts:
                    return outcome(error=error)
                backoff = self._backoff(failures)
                try:
                    deadline.sleep(backoff, self.sleep, what=f"backing off {request.provider}")
                except OutOfTimeError:
                    return outcome(error=error, deferred=True, retry_in=backoff)
                continue
            with lock:
                rate_wait = bounded_wait(result.rate_wait / self.rate_share) if result.rate_wait else None
                bucket.succeeded(self.clock(), rate_wait)
            self._notify(request, attempts, result)
            return outcome(result=result)

    def _unexpected(self, request: PurgeRequest, error: Exception) -> UnexpectedError:
        """What no adapter mapped, as this request's permanent failure, its message redacted."""
        return UnexpectedError(request.provider, unexpected(error, f"calling {request.provider}", redact=self.redact))

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1)))

    def _throttle_wait(self, throttled: int, retry_after: float | None) -> float:
        """What the provider asked for plus up to 10% jitter (so paused callers do not all return at once),
        or an exponential full-jitter back-off when it named no time."""
        if retry_after is None:
            return self._backoff(throttled)
        return retry_after + self.rng.uniform(0, min(1.0, 0.1 * retry_after))

    def _notify(self, request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError) -> None:
        if self.on_attempt is not None:
            self.on_attempt(request, attempt, what)


def request_token(request: PurgeRequest, generations: Mapping[str, str] | None = None) -> str:
    """The idempotency token of one attempt at one request (CloudFront's CallerReference, log correlation).

    It identifies the *attempt*, not only the content: the request's provider, kind, targets and mode, and
    each change it serves with that change's purge generation (`generations`: the ledger's `Attempt` for a
    first purge, `verify-<n>` for verification's n-th re-purge). So a retry of the same attempt (botocore's
    retry, a redelivery that continues it) gets the same token and CloudFront creates nothing new, while a
    re-purge of a stale path, or a change purged again after the idempotency window, is a new invalidation:
    CloudFront answers a repeated reference with the invalidation it created the first time.
    """
    attempts = generations or {}
    canonical = json.dumps(
        [
            request.provider,
            request.kind.value,
            list(request.targets),
            request.soft,
            sorted((change, attempts.get(change, "")) for change in request.change_ids),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def execute_plan(
    requests: tuple[PurgeRequest, ...],
    executor: Executor,
    deadline: Deadline,
    on_outcome: Callable[[Outcome], None],
    token_for: Callable[[PurgeRequest], str] = request_token,
) -> tuple[Outcome, ...]:
    """Each provider's queue runs on its own thread, so one slow or throttled CDN never delays another.

    `on_outcome` is called on the provider's thread as each request ends (the settle stage marks pairs
    complete from it); the outcomes are returned in the plan's order. `token_for` names each request's
    attempt (`request_token` with the changes' generations).
    """
    by_provider: dict[str, list[PurgeRequest]] = defaultdict(list)
    for request in requests:
        by_provider[request.provider].append(request)

    def run_all(queue: list[PurgeRequest]) -> list[Outcome]:
        outcomes = []
        for request in queue:
            outcome = executor.run(request, deadline=deadline, idempotency_token=token_for(request))
            on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes

    with ThreadPoolExecutor(max(1, len(by_provider))) as pool:
        results = dict(zip(by_provider, pool.map(run_all, by_provider.values()), strict=True))
    order = {id(r): i for i, r in enumerate(requests)}
    flat = [outcome for outcomes in results.values() for outcome in outcomes]
    return tuple(sorted(flat, key=lambda o: order[id(o.request)]))
