"""The arithmetic of a shared rate meter: GCRA slots, shared throttles and learned rates, as pure functions.

A provider account's limits are token buckets (Cloudflare, Akamai, Fastly, Medianova...). The Generic Cell
Rate Algorithm keeps one number per bucket, its *theoretical arrival time* (`tat`): the instant the bucket
would be full again if nothing else were taken. A call taking `cost` tokens of a bucket of `burst` tokens
refilled at `rate` a second may go at `slot = max(now, tat - (burst - cost) / rate)`, after which
`tat = max(tat, now) + cost / rate`. Every caller reserves its slot first (one write), then waits for it:
idle callers hold nothing, so one busy caller gets the whole rate, and N busy callers share it exactly.

Jitter margin: a call leaves at its slot but reaches the provider a little later (thread scheduling, the
network, clocks of different machines). Reserving as if the bucket were `JITTER_MARGIN_SECONDS` smaller
keeps every arrival inside the provider's limit as long as no call is later than that margin relative to
another. With a burst of 1 (Medianova, Gotipath) the bucket has no room to shrink, so calls are spaced
`1 / rate + margin` apart instead: a time margin, not a percentage of the rate. The margin is the caller's
(`step`'s `margin`, never below `JITTER_MARGIN_SECONDS`): a caller whose calls run later than that spaces the
calls after its own by its own lateness (buckets with room keep the fixed margin inside their tolerance).

Throttles are shared: a 429 pushes `tat` so no caller's slot comes before the provider's Retry-After, and
cuts the rate multiplicatively (at most once per `CUT_WINDOW_SECONDS`, however many callers saw the same
429). The cut recovers additively with time. A provider with no declared rate is unpaced: its calls are
only counted, and the first 429 learns a rate from the account-wide pace of at least `MIN_SAMPLE` calls
(fewer teach nothing but the pause), which is forgotten `LEARNED_RATE_MEMORY_SECONDS` after its last 429.

Both meters (in-process and DynamoDB) keep this state and decide with these functions, so they cannot
disagree on what a slot is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec
from msgspec.structs import replace

# How much later than its slot a call may reach the provider without being throttled: thread wake-ups and
# the network on a busy host (measured on the benchmark's 2 shared cores: 50 ms still let 1 call in 30 collide).
JITTER_MARGIN_SECONDS = 0.1
# AIMD on the shared rate: a throttle multiplies it by DECREASE (never below FLOOR x the declared rate)...
DECREASE = 0.5
FLOOR = 0.1
# ... and each second without one adds this much x the declared (or learned) rate back: a halved rate is
# whole again 2 s later. With the meter, callers no longer collide, so a 429 is mostly a passing event (a call
# that left late, the provider's own hiccup); a caller outside the meter still gets the rate cut every time it
# crowds the account, a sawtooth whose 429s cost one call each.
RECOVERY_PER_SECOND = 0.25
# One cut per window: callers that saw the same 429 (sent before the first cut) cut once, not N times.
CUT_WINDOW_SECONDS = 1.0
# A provider with no declared rate: a rate is learned only from this many calls in the counting window...
MIN_SAMPLE = 8
# ... which restarts after this long (an idle hour must not dilute the pace a 429 is measured against) ...
COUNT_WINDOW_SECONDS = 60.0
# ... never below this, and forgotten (back to unpaced) this long after its last throttle.
MIN_LEARNED_RATE = 0.2
LEARNED_RATE_MEMORY_SECONDS = 300.0


class Limit(msgspec.Struct, frozen=True):
    """One bucket of an account: `name` is unique within its scope (`requests`, `urls`...). `rate` None: no
    declared rate (unpaced until a throttle teaches one)."""

    name: str
    rate: float | None
    burst: int


class Draw(msgspec.Struct, frozen=True):
    """What one call takes from one bucket."""

    limit: Limit
    cost: float = 1.0


class BucketState(msgspec.Struct, frozen=True):
    """What the meter keeps of one bucket (epoch seconds). `rate` None: the declared rate, uncut."""

    tat: float = 0.0
    rate: float | None = None  # the cut or learned rate as of `rate_at`
    rate_at: float = 0.0
    base: float | None = None  # the learned rate (no declared one): the unit of recovery
    cut_at: float = 0.0
    calls: float = 0.0  # unpaced buckets: calls counted since `since`
    since: float = 0.0


def effective_rate(limit: Limit, state: BucketState, now: float) -> float | None:
    """The rate to pace at now: the declared one, or a cut one recovering with time, or a learned one (None:
    unpaced)."""
    if state.rate is None:
        return limit.rate
    base = limit.rate if limit.rate is not None else state.base
    if limit.rate is None and now - state.cut_at >= LEARNED_RATE_MEMORY_SECONDS:
        return None
    assert base is not None
    raised = state.rate + RECOVERY_PER_SECOND * base * max(0.0, now - state.rate_at)
    return raised if limit.rate is None else min(limit.rate, raised)


class Step(msgspec.Struct, frozen=True):
    """How one bucket's state moves for a reservation of `count` calls made at `now`: `increment` seconds added
    to `tat` (or, when `absolute`, `tat` set to `now + increment`); the calls' slots follow from `base`, the
    `tat` the reservation starts from (`now` when absolute), `spacing` apart."""

    limit: Limit
    rate: float | None  # None: an unpaced bucket, only counted
    spacing: float  # seconds of `tat` one call takes
    tolerance: float
    absolute: bool
    now: float
    base: float
    count: int
    cost: float  # tokens one call takes

    @property
    def increment(self) -> float:
        return self.count * self.spacing

    def slot(self, call: int, base: float | None = None) -> float:
        """When call number `call` (from 0) of the reservation may go; `base`: the `tat` it really started from
        (a DynamoDB addition learns it from the item it wrote)."""
        if self.rate is None:
            return self.now
        start = self.base if base is None else base
        return max(self.now, start + call * self.spacing - self.tolerance)


def step(draw: Draw, state: BucketState, now: float, count: int = 1, margin: float = JITTER_MARGIN_SECONDS) -> Step:
    """One bucket's part of a reservation of `count` calls made at `now`, given the state last seen; `margin`:
    how late after its slot the caller's calls may reach the provider (at least `JITTER_MARGIN_SECONDS`; a
    caller that measures its calls running later passes more, and a bucket of one call spaces the calls
    after its own by that)."""
    rate = effective_rate(draw.limit, state, now)
    if rate is None:
        absolute = now - state.since >= COUNT_WINDOW_SECONDS
        return Step(draw.limit, None, 0.0, 0.0, absolute, now, now, count, draw.cost)
    # A bucket with room for more than this call absorbs lateness up to its tolerance less the fixed margin;
    # one without (burst 1) spaces the next call by the caller's own lateness.
    margin = max(JITTER_MARGIN_SECONDS, margin) if draw.limit.burst <= draw.cost else JITTER_MARGIN_SECONDS
    room = (draw.limit.burst - draw.cost) / rate - margin
    spacing = draw.cost / rate + max(0.0, -room)
    absolute = state.tat < now
    return Step(
        draw.limit, rate, spacing, max(0.0, room), absolute, now, now if absolute else state.tat, count, draw.cost
    )


def after(step_: Step, state: BucketState, now: float) -> BucketState:
    """The bucket's state once the reservation `step_` is written."""
    if step_.rate is None:
        if step_.absolute:
            return replace(state, calls=step_.cost * step_.count, since=now)
        return replace(state, calls=state.calls + step_.cost * step_.count)
    tat = now + step_.increment if step_.absolute else state.tat + step_.increment
    return replace(state, tat=tat)


def slots_of(steps: Sequence[Step], bases: Sequence[float | None] | None = None) -> list[float]:
    """When each call of a reservation may go: when every bucket it draws from allows it."""
    count = steps[0].count
    starts = bases or [None] * len(steps)
    return [max(s.slot(call, base) for s, base in zip(steps, starts, strict=True)) for call in range(count)]


def pushed(limit: Limit, state: BucketState, until: float, now: float) -> float | None:
    """The `tat` that makes the next slot of this bucket no earlier than `until` (a provider's Retry-After),
    or None when it already is (or the bucket is unpaced and has no slots)."""
    rate = effective_rate(limit, state, now)
    if rate is None:
        return None
    tolerance = max(0.0, (limit.burst - 1) / rate - JITTER_MARGIN_SECONDS)
    target = until + tolerance
    return target if target > state.tat else None


def cut(limit: Limit, state: BucketState, now: float) -> BucketState | None:
    """The state after a throttle's rate cut, or None when no cut is due: one was made within
    `CUT_WINDOW_SECONDS`, or the bucket is unpaced and too few calls were counted to learn a rate from (a
    first 429 on a fresh provider teaches only its pause, never a floor rate)."""
    if state.rate is not None and now - state.cut_at < CUT_WINDOW_SECONDS:
        return None
    rate = effective_rate(limit, state, now)
    if rate is None:
        span = now - state.since
        if state.calls < MIN_SAMPLE or span <= 0 or span >= COUNT_WINDOW_SECONDS:
            return None
        learned = max(MIN_LEARNED_RATE, state.calls / span * DECREASE)
        return replace(state, rate=learned, base=learned, rate_at=now, cut_at=now, calls=0.0, since=now)
    floor = FLOOR * limit.rate if limit.rate is not None else MIN_LEARNED_RATE
    return replace(state, rate=max(floor, rate * DECREASE), rate_at=now, cut_at=now)


def wait_for(slot: float, now: float) -> float:
    """Seconds until `slot`, never negative, never NaN."""
    return 0.0 if math.isnan(slot) else max(0.0, slot - now)


Hold = tuple[float, Mapping[str, float]]  # (until, items in progress per limit name)


def release_wait(
    holds: Sequence[Hold], amounts: Mapping[str, float], limits: Mapping[str, int], now: float
) -> float | None:
    """None when `amounts` fit beside the holds unexpired at `now` under every limit; else the seconds until
    enough of them expire. An amount larger than its limit alone fits once nothing else is held (the
    provider's own per-call limit is the adapter's to enforce)."""
    live = sorted(((until, held) for until, held in holds if until > now), key=lambda hold: hold[0])

    def fits(remaining: Sequence[Hold]) -> bool:
        for name, cap in limits.items():
            amount = amounts.get(name, 0)
            if amount and remaining and sum(held.get(name, 0) for _, held in remaining) + amount > cap:
                return False
        return True

    if fits(live):
        return None
    # The holds expire in order: the first expiry after which the amounts fit (nothing held always fits).
    return next(until - now for index, (until, _held) in enumerate(live) if fits(live[index + 1 :]))
