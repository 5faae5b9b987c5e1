"""execute: send planned requests, paced to each provider's rate, retried within the time left.

With a shared meter (`cdnpurge.runtime.meter`, the normal case in the function and the CLI), every call
first reserves its slot in its account's buckets, and 429s and pacing hints are reported to the meter, so
every invocation of every stack paces at one account-wide rate (docs: rate sharing). A slot beyond the
deadline defers the request (its records come back to SQS when the slot is due). When the meter cannot be
reached, the call is paced by this process's own token bucket below, at its static share of the rate, and
counted (`Outcome.unmetered`, metric `RateMeterUnavailable`).

The fallback pacing is a token bucket per provider (`TokenBucket`), fed by three signals:

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

`execute_plan` runs a plan's requests on threads of their own per provider, so one slow or throttled CDN
never delays another, with about rate x latency calls in flight to each (`Executor.calls_in_flight`), and
hands each outcome to the settle stage the moment it is known.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping

import msgspec

from cdnpurge.core.answers import MAX_PROVIDER_WAIT_SECONDS, answer_number
from cdnpurge.core.boundary import unexpected
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.gcra import JITTER_MARGIN_SECONDS, Draw
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, PurgeResult
from cdnpurge.core.provider_errors import ProviderError, ThrottledError, UnexpectedError
from cdnpurge.runtime.meter import Meter, MeterUnavailableError, draws_for, limits_of
from cdnpurge.runtime.meter_holds import InProgressHolds

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
# Calls in flight to one provider from one invocation: about rate x latency (so the rate, not the round trip,
# is the limit), at most this many.
MAX_CALLS_IN_FLIGHT = 8
# Weight of the newest call in a provider's smoothed latency.
LATENCY_WEIGHT = 0.2
# One reservation in the shared meter leases the slots of the calls queued for the next this many seconds of
# the provider's rate (at most MAX_LEASE calls).
LEASE_SECONDS = 0.25
MAX_LEASE = 16
# A provider paced at one call per this many seconds or slower (burst-1 accounts: Medianova, Gotipath) whose
# meter showed a backlog at the last reservation (other callers' slots ahead of this one: a storm, records
# queued) leases one slot more than the plan's calls: kept by the warm executor for its next invocation,
# which comes well within that interval while records are queued. One-record batches would otherwise make
# every call a reservation (a write) of its own.
SPARE_SLOT_INTERVAL = 0.1
# How late after their slots this process's calls reach a provider is measured over the last LATE_CALLS calls
# (the call's end, less its slot, less the quickest round trip seen): the longest of them, within
# [JITTER_MARGIN_SECONDS, MAX_MARGIN_SECONDS], is the margin its reservations space the following calls by.
LATE_CALLS = 16
MAX_MARGIN_SECONDS = 0.5
# A leased slot dropped unused (the next invocation came too late for it) stops spare slots for this long.
SPARE_PAUSE_SECONDS = 60.0
# Reservations one call may make when the slots it gets are already overdue (a starved process).
MAX_LEASE_ATTEMPTS = 3


class _Turn(msgspec.Struct, frozen=True):
    """How a call's wait for its slot ended: `deferred_for` seconds until one (none before the deadline), or
    None after `waited` seconds; `unmetered`: 1 when the static share paced it."""

    deferred_for: float | None
    waited: float = 0.0
    unmetered: int = 0
    slot: float | None = None  # when the call's metered slot was (executor clock)


class _Lease(msgspec.Struct):
    """Slots of one provider reserved in the shared meter and not yet used (executor clock), for `draws`."""

    lock: threading.Lock = msgspec.field(default_factory=threading.Lock)
    draws: tuple[Draw, ...] = ()
    slots: deque[float] = msgspec.field(default_factory=deque)
    backlog: bool = False  # other callers' slots lay ahead of this one at the last reservation
    late: deque[float] = msgspec.field(default_factory=lambda: deque(maxlen=LATE_CALLS))  # seconds, the last calls
    fastest: float = math.inf  # the quickest round trip seen: the part of a call's time that is not lateness
    no_spare_until: float = 0.0  # a leased slot went unused: no spare slot before then (executor clock)


class Outcome(msgspec.Struct, frozen=True):
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
    unmetered: int = 0  # calls paced at the static share because the shared meter could not be reached
    token: str = ""  # the idempotency token the calls carried (CloudFront's CallerReference)

    @property
    def ok(self) -> bool:
        return self.result is not None


class TokenBucket:
    """`rate` tokens a second up to `burst`; `pause_until` honours a provider's explicit back-off.

    `rate` moves between `FLOOR x ceiling` and `ceiling` (the declared rate) by AIMD on throttles and
    successes; `None` means no pacing until a throttle teaches one. A plain class: only `rate` and `burst`
    are given, everything else is state that starts from them.
    """

    __slots__ = (
        "base",
        "burst",
        "ceiling",
        "pause_until",
        "rate",
        "recent",
        "recovered_at",
        "throttled_at",
        "tokens",
        "updated",
    )

    def __init__(self, rate: float | None, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = 0.0
        self.pause_until = 0.0
        self.ceiling = rate  # the declared rate: never exceeded
        self.base = rate  # the declared or learned rate: the unit of recovery steps
        self.recent: deque[float] = deque(maxlen=_RECENT_CALLS)
        self.recovered_at = 0.0  # when time-based recovery was last applied
        self.throttled_at = 0.0

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


# Told of every attempt: the request, the attempt's number, what it gave, and the request token it sent (the
# attempt's own, e.g. CloudFront's CallerReference, never one recomputed from the request alone).
AttemptListener = Callable[[PurgeRequest, int, PurgeResult | ProviderError, str], None]


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
        meter: Meter | None = None,
    ) -> None:
        """`redact`: cleans the text of exceptions no adapter mapped (the providers redact their own errors);
        `meter`: the account-wide rate meter (None: every call paced by this executor's buckets, at
        `rate_share`, the static share)."""
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
        self.meter = meter
        self.latency: dict[str, float] = {}  # smoothed seconds a call to each provider takes
        self.queued: dict[str, int] = {}  # requests of the running plan not yet started, per provider
        self._leases = {name: _Lease() for name in providers}
        self.buckets = {name: self._bucket(provider) for name, provider in providers.items()}
        self._locks = {name: threading.Lock() for name in providers}
        self.holds = None if meter is None else InProgressHolds(meter, dict(providers), self.pace)

    def adopt_pacing(self, previous: Executor, names: Iterable[str]) -> None:
        """Take over `previous`'s pacing state for `names` (providers whose settings did not change when the
        configuration was reloaded): a rate cut or a pause asked for before the reload still holds."""
        for name in names:
            if name in self.buckets and name in previous.buckets:
                self.buckets[name] = previous.buckets[name]

    def pace(self, provider: str, deadline: Deadline) -> None:
        """Take `provider`'s next token before a call made outside `run` (a job-status poll), so those calls
        share the provider's rate with its purges; `OutOfTimeError` when the wait would pass `deadline`."""
        bucket = self.buckets[provider]
        with self._locks[provider]:
            deadline.sleep(bucket.delay(self.clock()), self.sleep, what=f"pacing {provider}")
            bucket.take(self.clock())

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
        unmetered = 0

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
                unmetered=unmetered,
                token=idempotency_token,
            )

        while True:
            began = self.clock()
            turn = self._take_turn(request, deadline, idempotency_token)
            unmetered += turn.unmetered
            if turn.deferred_for is not None:
                return outcome(error=last_error, deferred=True, retry_in=turn.deferred_for)
            attempts += 1
            try:
                result = self._purge(provider, request, idempotency_token, deadline, turn)
            except OutOfTimeError:  # the call could not start in time: nothing was sent
                return outcome(error=last_error, deferred=True)
            except Exception as exc:  # the per-request fault boundary (`cdnpurge.core.boundary`)
                error = exc if isinstance(exc, ProviderError) else self._unexpected(request, exc)
                self._notify(request, attempts, error, idempotency_token)
                last_error = error
                if not error.retryable:
                    return outcome(error=error)
                if isinstance(error, ThrottledError):
                    throttled += 1
                    pause = self._throttle_wait(throttled, bounded_wait(error.retry_after))
                    unmetered += self._report(request, deadline, pause, cut=True)
                    with lock:
                        bucket.throttled(self.clock(), pause)
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
            # A call's round trip, its reservation included (the fallback bucket's own wait is not excluded).
            self._observe_latency(request.provider, self.clock() - began - turn.waited)
            hint = bounded_wait(result.rate_wait) or 0.0  # the provider's hint is account-wide: no share
            unmetered += self._report(request, deadline, hint, cut=False)
            with lock:
                rate_wait = bounded_wait(result.rate_wait / self.rate_share) if result.rate_wait else None
                bucket.succeeded(self.clock(), rate_wait)
            self._notify(request, attempts, result, idempotency_token)
            return outcome(result=result)

    def _take_turn(self, request: PurgeRequest, deadline: Deadline, token: str) -> _Turn:
        """Wait for this call's slot in the shared meter or, without one, for a token of the static share.

        At a burst-1 account, a call that woke more than half the jitter margin after its slot (a starved
        process) is not sent on it: it would reach the provider just before the next caller's call. It
        takes the next slot instead (the late one goes unused), at most `MAX_LEASE_ATTEMPTS` times."""
        waited, attempts = 0.0, 0
        while True:
            metered = self._metered_wait(request, deadline)
            if metered is None:
                bucket, lock = self.buckets[request.provider], self._locks[request.provider]
                return _Turn(self._static_share_wait(bucket, lock, deadline), unmetered=1)
            granted, wait = metered
            if not granted:
                return _Turn(wait)
            slot = self.clock() + wait
            try:
                deadline.sleep(wait, self.sleep, what=f"waiting for {request.provider}'s slot")
            except OutOfTimeError:  # the slot was taken, but the time to wait for it is gone (a slow write)
                return _Turn(wait)
            waited, attempts = waited + wait, attempts + 1
            if attempts < MAX_LEASE_ATTEMPTS and self._woke_late(request.provider, slot):
                continue
            held = None if self.holds is None else self.holds.hold(request, token, deadline)
            return _Turn(held, waited=waited, slot=slot)

    def _woke_late(self, name: str, slot: float) -> bool:
        """Whether a call to a burst-1 account is past its slot by more than half the jitter margin."""
        return self.providers[name].spec.capabilities.burst <= 1 and self.clock() - slot > JITTER_MARGIN_SECONDS / 2

    def _purge(
        self, provider: Provider, request: PurgeRequest, token: str, deadline: Deadline, turn: _Turn
    ) -> PurgeResult:
        """One call; its items in progress settled by its answer (`InProgressHolds.settle`), and (a metered
        call) how late it ran measured (`margin`)."""
        sent = self.clock()
        try:
            result = provider.purge(request, idempotency_token=token, deadline=deadline)
        except Exception as exc:
            if self.holds is not None:
                self.holds.settle(request, token, deadline, exc)
            raise
        finally:
            if turn.slot is not None:
                lease, answered = self._leases[request.provider], self.clock()
                lease.fastest = min(lease.fastest, answered - sent)
                lease.late.append(answered - turn.slot - lease.fastest)
        if self.holds is not None:
            self.holds.settle(request, token, deadline, result)
        return result

    def margin(self, name: str) -> float:
        """How late after their slots this process's calls to `name` reach it: the most of its last calls
        (`LATE_CALLS`), within [JITTER_MARGIN_SECONDS, MAX_MARGIN_SECONDS]. Reserved with it, the calls after
        this process's own are spaced by its own lateness: an overloaded host spaces itself, a quick one
        does not pay for it."""
        late = max(self._leases[name].late, default=0.0)
        return min(MAX_MARGIN_SECONDS, max(JITTER_MARGIN_SECONDS, late))

    def _report(self, request: PurgeRequest, deadline: Deadline, pause: float, *, cut: bool) -> int:
        """Tell every caller of the account (through the meter) to wait `pause` seconds; 1 when the meter could
        not be told (counted as unmetered), else 0."""
        if self.meter is None or pause <= 0:
            return 0
        spec = self.providers[request.provider].spec
        try:
            self.meter.throttled(spec.rate_scope, limits_of(spec, request), pause, deadline, cut=cut)
        except MeterUnavailableError:
            return 1
        return 0

    def _static_share_wait(self, bucket: TokenBucket, lock: threading.Lock, deadline: Deadline) -> float | None:
        """Wait for a token of this executor's own bucket (the static share); the seconds until one when that
        lies beyond the deadline. Callers of one provider share its bucket: wait, then take, atomically."""
        with lock:
            wait = bucket.delay(self.clock())
            try:
                if deadline.expired():
                    raise OutOfTimeError("not started, past the deadline")
                deadline.sleep(wait, self.sleep, what="pacing")
            except OutOfTimeError:
                return wait
            bucket.take(self.clock())
        return None

    def _metered_wait(self, request: PurgeRequest, deadline: Deadline) -> tuple[bool, float] | None:
        """This call's slot from the shared meter: (True, seconds to wait) once reserved, (False, seconds until a
        slot) when none is free before the deadline; None when there is no meter or it failed (the caller
        paces at its static share).

        Slots are leased: one reservation takes the slots of the calls this invocation is about to make to
        the provider (`lease_size`), one thread at a time, and the next callers take theirs from the lease, so
        a write to the meter is shared by several calls and the calls of one invocation never race each
        other for the meter's item. A leased slot more than half the jitter margin overdue is dropped unused
        (a call that late, plus the network's own jitter, could meet the next ones at the provider)."""
        if self.meter is None:
            return None
        spec = self.providers[request.provider].spec
        draws = tuple(draws_for(spec, request))
        lease = self._leases[request.provider]
        with lease.lock:
            for _ in range(MAX_LEASE_ATTEMPTS):  # then a late slot is used rather than none
                now = self.clock()
                while lease.slots and (lease.draws != draws or lease.slots[0] < now - JITTER_MARGIN_SECONDS / 2):
                    lease.slots.popleft()
                    lease.no_spare_until = now + SPARE_PAUSE_SECONDS
                if lease.slots:
                    break
                count = self.lease_size(request.provider)
                try:
                    reservation = self.meter.reserve(
                        spec.rate_scope, draws, deadline, count, margin=self.margin(request.provider)
                    )
                except OutOfTimeError:
                    return (False, 0.0)
                except MeterUnavailableError:
                    return None
                if not reservation.granted:
                    return (False, reservation.wait)
                now = self.clock()
                lease.draws = draws
                rate = spec.capabilities.rate_per_second
                lease.backlog = rate is not None and reservation.wait > 2 / rate
                lease.slots.extend(now + wait for wait in reservation.waits)
            slot = lease.slots.popleft()
        return (True, max(0.0, slot - self.clock()))

    def lease_size(self, name: str) -> int:
        """How many calls' slots one reservation takes: the calls this invocation has queued for the provider
        (so no slot is leased for a call that will not be made), at most `LEASE_SECONDS` of its rate or the
        calls it keeps in flight, whichever is more, and never more than `MAX_LEASE`; plus a spare slot for the
        next invocation when the meter shows a backlog and the account is paced slowly (`SPARE_SLOT_INTERVAL`)."""
        rate = self.providers[name].spec.capabilities.rate_per_second
        horizon = 1 if rate is None else math.ceil(rate * LEASE_SECONDS)
        queued = self.queued.get(name, 0)
        size = max(1, min(MAX_LEASE, queued + 1, max(horizon, self.calls_in_flight(name))))
        lease = self._leases[name]
        spare = (
            rate is not None
            and 1 / rate >= SPARE_SLOT_INTERVAL
            and lease.backlog
            and lease.no_spare_until <= self.clock()
            and size == queued + 1
        )
        return size + 1 if spare else size

    def _observe_latency(self, name: str, seconds: float) -> None:
        previous = self.latency.get(name)
        self.latency[name] = seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)

    def calls_in_flight(self, name: str) -> int:
        """How many calls to provider `name` one invocation keeps in flight: about rate x latency (plus one),
        so with 100 ms round trips a 20/s account is not held to 10/s. One for an unpaced provider or before
        any call was timed; with no shared meter the static share's rate counts."""
        rate = self.providers[name].spec.capabilities.rate_per_second
        latency = self.latency.get(name)
        if rate is None or latency is None:
            return 1
        share = 1.0 if self.meter is not None else self.rate_share
        return max(1, min(MAX_CALLS_IN_FLIGHT, math.ceil(rate * share * latency) + 1))

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

    def _notify(self, request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError, token: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(request, attempt, what, token)


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
    """Each provider's queue runs on threads of its own, so one slow or throttled CDN never delays another;
    within a provider, up to `executor.calls_in_flight` calls at once (about rate x latency, read again as
    each call ends), so a 100 ms round trip does not cap the rate one invocation reaches.

    `on_outcome` is called on a provider's thread as each request ends (the settle stage marks pairs
    complete from it); the outcomes are returned in the plan's order. `token_for` names each request's
    attempt (`request_token` with the changes' generations).
    """
    by_provider: dict[str, deque[PurgeRequest]] = defaultdict(deque)
    for request in requests:
        by_provider[request.provider].append(request)
    outcomes: list[Outcome] = []
    problems: list[BaseException] = []
    condition = threading.Condition()
    active: dict[str, int] = dict.fromkeys(by_provider, 0)

    def start(name: str) -> None:
        """One more worker on provider `name` (called holding `condition`)."""
        active[name] += 1
        threading.Thread(target=work, args=(name,), name=f"purge-{name}", daemon=True).start()

    def work(name: str) -> None:
        queue = by_provider[name]
        while True:
            with condition:
                if not queue or problems:
                    active[name] -= 1
                    condition.notify_all()
                    return
                request = queue.popleft()
                executor.queued[name] = len(queue)
                while queue and active[name] < min(executor.calls_in_flight(name), len(queue) + 1):
                    start(name)
            try:
                outcome = executor.run(request, deadline=deadline, idempotency_token=token_for(request))
                on_outcome(outcome)
            except BaseException as problem:  # re-raised on the caller's thread, as a thread pool would
                with condition:
                    problems.append(problem)
                continue
            with condition:
                outcomes.append(outcome)

    with condition:
        for name in by_provider:
            start(name)
        condition.wait_for(lambda: not any(active.values()))
    if problems:
        raise problems[0]
    order = {id(r): i for i, r in enumerate(requests)}
    return tuple(sorted(outcomes, key=lambda o: order[id(o.request)]))
