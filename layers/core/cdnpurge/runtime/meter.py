"""The shared rate meter: one rate per provider account, whoever calls (every invocation, the CLI).

A `Meter` hands out slots in a scope's buckets (`cdnpurge.core.gcra`): `reserve` before every provider call,
`throttled` after a 429 (or a provider's own pacing hint) so every other caller slows down too. Two
implementations keep the same state with the same arithmetic:

- `InProcessMeter`: a dict under a lock, shared by the services of one process (unit tests, the bench's
  in-process event source);
- `DynamoDBMeter` (`cdnpurge.runtime.meter_dynamodb`): one item per scope, conditional writes; for the
  function and the CLI.

A reservation whose slot lies beyond the time left is refused, not made: the caller hands the record back
to SQS to come back at that slot, and no token is spent on a call that would never be sent.

Items in progress (CloudFront's paths and wildcards per distribution) are *held* under a key: the call's
idempotency token before the call, renamed to the provider's job id once the call is accepted, released
when the job is seen complete (or the call failed), and in any case forgotten at the hold's upper bound.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.gcra import (
    JITTER_MARGIN_SECONDS,
    BucketState,
    Draw,
    Hold,
    Limit,
    Step,
    after,
    cut,
    effective_rate,
    pushed,
    release_wait,
    slots_of,
    step,
    wait_for,
)
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.spec import ProviderSpec

# The metric counted each time a provider call was paced at the static share because the meter failed.
METER_UNAVAILABLE_METRIC = "RateMeterUnavailable"
# The bucket every call draws one token from (the provider's declared `rate_per_second` and `burst`).
REQUEST_BUCKET = "requests"
# What a hold's key may be (an idempotency token, a CloudFront invalidation id): part of an attribute name.
HOLD_KEY = re.compile(r"[A-Za-z0-9]{1,64}")


def checked_key(key: str) -> str:
    """`key` when it can name a hold, else ValueError (a provider's job id is input: never trusted)."""
    if not HOLD_KEY.fullmatch(key):
        raise ValueError(f"not a hold key: {key[:80]!r}")
    return key


class MeterUnavailableError(CdnpurgeError):
    """The meter could not be read or written: the caller paces at its static share instead."""


class Reservation(msgspec.Struct, frozen=True):
    """Granted: `waits` holds, per call reserved, the seconds until it may go (the calls of a lease, in order).
    Refused (`waits` empty): the first slot is `refused_wait` seconds away, beyond the time left; nothing was
    taken."""

    waits: tuple[float, ...]
    refused_wait: float = 0.0

    @property
    def granted(self) -> bool:
        return bool(self.waits)

    @property
    def wait(self) -> float:
        """Seconds until the first call may go (granted or not)."""
        return self.waits[0] if self.waits else self.refused_wait


def fit(
    draws: Sequence[Draw],
    states: Sequence[BucketState],
    now: float,
    *,
    count: int,
    within: float,
    paused: float,
    margin: float = JITTER_MARGIN_SECONDS,
) -> list[Step] | float:
    """The steps of a reservation of as many of `count` calls as have a slot within `within` seconds, or (none
    has) the seconds until the first slot; `margin` as in `cdnpurge.core.gcra.step`."""
    steps = [step(d, s, now, count, margin) for d, s in zip(draws, states, strict=True)]
    slots = [max(slot, paused) for slot in slots_of(steps)]
    fitting = sum(1 for slot in slots if wait_for(slot, now) <= within)
    if not fitting:
        return wait_for(slots[0], now)
    if fitting < count:
        steps = [step(d, s, now, fitting, margin) for d, s in zip(draws, states, strict=True)]
    return steps


class Meter(Protocol):
    """Slots in a scope's buckets, shared by every caller of the same account."""

    def reserve(
        self,
        scope: str,
        draws: Sequence[Draw],
        deadline: Deadline,
        count: int = 1,
        *,
        margin: float = JITTER_MARGIN_SECONDS,
    ) -> Reservation:
        """Take the slots of up to `count` calls (a lease: one write for several calls), each drawing `draws`,
        as many as lie before `deadline`; refused when none does. `margin`: how late the caller's calls reach
        the provider after their slots (`cdnpurge.core.gcra.step`)."""
        ...

    def throttled(self, scope: str, limits: Sequence[Limit], pause: float, deadline: Deadline, *, cut: bool) -> None:
        """No slot of `scope` before `pause` seconds from now, for every caller; `cut`: a 429 (the rate is
        cut), not a pacing hint on a success."""
        ...

    def hold(
        self,
        scope: str,
        key: str,
        amounts: Mapping[str, float],
        limits: Mapping[str, int],
        *,
        seconds: float,
        deadline: Deadline,
    ) -> float:
        """Count `amounts` (items per limit name) in progress in `scope` under `key` (replacing an earlier hold
        of the same key: a retry of one attempt) for at most `seconds`, unless a limit would be passed: 0.0
        when held, else the seconds until enough expires at the latest (nothing held; a release may come
        sooner)."""
        ...

    def release(
        self, scope: str, key: str, names: Sequence[str], deadline: Deadline, *, renamed: str | None = None
    ) -> None:
        """End the hold `key` (its items no longer in progress); with `renamed`, keep its items and expiry
        under that key instead (the job id the provider answered with, which a later status poll names).
        `names`: the scope's limit names. Nothing happens when no such hold is live."""
        ...

    def holders(self, scope: str) -> tuple[str, ...]:
        """The keys of the live holds of `scope` as last seen, the oldest first (whose jobs to ask about)."""
        ...


class InProcessMeter:
    """The meter of one process: its scopes' buckets under one lock. `clock`: epoch seconds (injected)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._states: dict[tuple[str, str], BucketState] = {}
        self._paused: dict[str, float] = {}
        self._holds: dict[str, dict[str, Hold]] = {}
        self._lock = threading.Lock()

    def reserve(
        self,
        scope: str,
        draws: Sequence[Draw],
        deadline: Deadline,
        count: int = 1,
        *,
        margin: float = JITTER_MARGIN_SECONDS,
    ) -> Reservation:
        with self._lock:
            now = self.clock()
            states = [self._states.get((scope, d.limit.name), BucketState()) for d in draws]
            paused = self._paused.get(scope, 0.0)
            steps = fit(draws, states, now, count=count, within=deadline.remaining(), paused=paused, margin=margin)
            if isinstance(steps, float):
                return Reservation((), steps)
            for draw, state, step_ in zip(draws, states, steps, strict=True):
                self._states[(scope, draw.limit.name)] = after(step_, state, now)
            return Reservation(tuple(wait_for(max(slot, paused), now) for slot in slots_of(steps)))

    def throttled(self, scope: str, limits: Sequence[Limit], pause: float, deadline: Deadline, *, cut: bool) -> None:
        with self._lock:
            now = self.clock()
            until = now + pause
            self._paused[scope] = max(self._paused.get(scope, 0.0), until)
            for limit in limits:
                key = (scope, limit.name)
                state = self._states.get(key, BucketState())
                self._states[key] = throttle_state(limit, state, until, now, cut_rate=cut)

    def hold(
        self,
        scope: str,
        key: str,
        amounts: Mapping[str, float],
        limits: Mapping[str, int],
        *,
        seconds: float,
        deadline: Deadline,
    ) -> float:
        with self._lock:
            now = self.clock()
            holds = {k: hold for k, hold in self._holds.get(scope, {}).items() if hold[0] > now and k != key}
            wait = release_wait(list(holds.values()), amounts, limits, now)
            if wait is not None:
                return wait
            self._holds[scope] = {**holds, checked_key(key): (now + seconds, dict(amounts))}
            return 0.0

    def release(
        self, scope: str, key: str, names: Sequence[str], deadline: Deadline, *, renamed: str | None = None
    ) -> None:
        with self._lock:
            holds = self._holds.get(scope, {})
            held = holds.pop(key, None)
            if held is not None and renamed is not None:
                holds[checked_key(renamed)] = held

    def holders(self, scope: str) -> tuple[str, ...]:
        with self._lock:
            now = self.clock()
            live = [(hold[0], key) for key, hold in self._holds.get(scope, {}).items() if hold[0] > now]
            return tuple(key for _until, key in sorted(live))

    def rate(self, scope: str, limit: Limit) -> float | None:
        """The rate `limit` is paced at now (tests and the bench read what a throttle taught)."""
        with self._lock:
            return effective_rate(limit, self._states.get((scope, limit.name), BucketState()), self.clock())


def throttle_state(limit: Limit, state: BucketState, until: float, now: float, *, cut_rate: bool) -> BucketState:
    """A bucket after a throttle: (`cut_rate`) its rate cut or learned, then its `tat` pushed so that no slot
    comes before `until`."""
    state = (cut(limit, state, now) if cut_rate else None) or state
    tat = pushed(limit, state, until, now)
    return state if tat is None else msgspec.structs.replace(state, tat=tat)


def limits_of(spec: ProviderSpec, request: PurgeRequest) -> list[Limit]:
    """The account buckets a call of `request` draws on: the request bucket, and the bucket its targets
    count against where the provider has one (Akamai's URLs, CP codes, tags)."""
    caps = spec.capabilities
    limits = [Limit(REQUEST_BUCKET, caps.rate_per_second, caps.burst)]
    item = caps.item_limits.get(request.kind)
    return limits if item is None else [*limits, item]


def in_progress_scope(spec: ProviderSpec) -> str | None:
    """Where a provider's items in progress are counted (CloudFront: per distribution, whichever provider
    entry names it), or None when it has no such limit."""
    if not spec.capabilities.in_progress:
        return None
    kind = spec.rate_scope.partition("/")[0]
    return f"{spec.rate_scope}/in-progress" if spec.billing_key is None else f"{kind}/{spec.billing_key}/in-progress"


def in_progress_of(spec: ProviderSpec, request: PurgeRequest) -> tuple[str, dict[str, float], dict[str, int]] | None:
    """Where and how much a call of `request` counts in progress (CloudFront's paths and wildcards per
    distribution): (scope, items per limit name, the limits), or None when the provider has no such limit."""
    caps = spec.capabilities
    amounts = {limit.name: float(len(request.targets)) for limit in caps.in_progress if request.kind in limit.kinds}
    scope = in_progress_scope(spec)
    if not amounts or scope is None:
        return None
    return scope, amounts, {limit.name: limit.limit for limit in caps.in_progress}


def draws_for(spec: ProviderSpec, request: PurgeRequest) -> list[Draw]:
    """What one call of `request` takes: one request token, and one item token per target."""
    return [
        Draw(limit, 1.0 if limit.name == REQUEST_BUCKET else float(len(request.targets)))
        for limit in limits_of(spec, request)
    ]
