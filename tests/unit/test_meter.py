"""The shared rate meter (in-process): one account's rate split by whoever is busy, throttles shared, learned
rates that recover, all on an injected clock (slots and counts, never durations)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from helpers import SimulatedClock

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.gcra import (
    CUT_WINDOW_SECONDS,
    DECREASE,
    JITTER_MARGIN_SECONDS,
    LEARNED_RATE_MEMORY_SECONDS,
    MIN_SAMPLE,
    RECOVERY_PER_SECOND,
    BucketState,
    Draw,
    Limit,
    step,
)
from cdnpurge.core.registry import REGISTRY
from cdnpurge.runtime.meter import InProcessMeter

RATE, ONE_RATE = 10.0, 2.0
REQUESTS = Limit("requests", rate=RATE, burst=5)
BURST_ONE = Limit("requests", rate=ONE_RATE, burst=1)
UNPACED = Limit("requests", rate=None, burst=1)


def far(clock: SimulatedClock) -> Deadline:
    return Deadline(clock() + 3600.0, clock)


def slots(meter: InProcessMeter, clock: SimulatedClock, count: int, limit: Limit, scope: str = "acct") -> list[float]:
    """`count` reservations made at the current instant: when each may go."""
    taken = []
    for _ in range(count):
        reservation = meter.reserve(scope, [Draw(limit)], far(clock))
        assert reservation.granted
        taken.append(clock() + reservation.wait)
    return taken


def test_a_lone_caller_gets_the_whole_rate_after_its_burst() -> None:
    clock = SimulatedClock(1000.0)
    meter = InProcessMeter(clock)
    taken = slots(meter, clock, 25, REQUESTS)
    # The burst (less the jitter margin's worth of tokens) goes at once, then one slot every 1/rate.
    assert taken[0] == 1000.0
    gaps = [b - a for a, b in pairwise(taken[5:])]
    assert gaps == pytest.approx([1 / RATE] * len(gaps))
    assert 25 - 1 - (taken[-1] - 1000.0) * RATE <= REQUESTS.burst  # never more than rate x t + burst


def test_several_callers_share_one_sequence_of_slots_and_idle_ones_hold_nothing() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    # Given: callers A, B, C interleaving, the way parallel invocations reserve
    taken = []
    for _ in range(10):
        for _caller in "ABC":
            taken += slots(meter, clock, 1, REQUESTS)
    # Then: 30 slots paced at the account's rate (not a third of it each), never beyond its bucket
    assert all(sum(1 for t in taken if t <= at) <= REQUESTS.burst + at * RATE for at in taken)
    assert max(taken) == pytest.approx((30 - REQUESTS.burst) / RATE + JITTER_MARGIN_SECONDS)
    # And: after an idle spell, one caller has the whole burst again
    clock.sleep(60.0)
    again = slots(meter, clock, 3, REQUESTS)
    assert again == [clock()] * 3


def test_burst_one_slots_are_spaced_by_the_rate_plus_a_time_margin() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    taken = slots(meter, clock, 6, BURST_ONE)
    assert [b - a for a, b in pairwise(taken)] == pytest.approx([1 / ONE_RATE + JITTER_MARGIN_SECONDS] * 5)


def test_a_slot_beyond_the_deadline_is_refused_and_takes_nothing() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    slots(meter, clock, 6, BURST_ONE)  # the next slot is 3 s away
    refused = meter.reserve("acct", [Draw(BURST_ONE)], Deadline(clock() + 1.0, clock))
    assert not refused.granted
    assert refused.wait == pytest.approx(6 * (1 / ONE_RATE + JITTER_MARGIN_SECONDS))
    # Then: the refusal took nothing: the next caller with time gets that same slot
    assert slots(meter, clock, 1, BURST_ONE) == [pytest.approx(refused.wait)]


def test_scopes_are_independent() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    slots(meter, clock, 10, BURST_ONE, scope="one")
    assert slots(meter, clock, 1, BURST_ONE, scope="other") == [0.0]


def test_a_throttle_seen_by_one_caller_pushes_every_callers_slot_and_cuts_the_rate_once() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    slots(meter, clock, 5, REQUESTS)
    # When: four invocations report the same 429 (Retry-After 2 s)
    for _ in range(4):
        meter.throttled("acct", [REQUESTS], 2.0, far(clock), cut=True)
    # Then: the rate is cut once, not four times
    assert meter.rate("acct", REQUESTS) == pytest.approx(RATE * DECREASE)
    # And: nobody's next slot is before the pause ends
    assert slots(meter, clock, 1, REQUESTS)[0] >= 2.0
    # And: a 429 after the cut window cuts again; then the rate recovers with time, up to the declared one
    clock.sleep(CUT_WINDOW_SECONDS)
    meter.throttled("acct", [REQUESTS], 0.0, far(clock), cut=True)
    recovered = RATE * DECREASE + RECOVERY_PER_SECOND * RATE * CUT_WINDOW_SECONDS
    assert meter.rate("acct", REQUESTS) == pytest.approx(recovered * DECREASE)
    clock.sleep(120.0)
    assert meter.rate("acct", REQUESTS) == RATE


def test_a_pacing_hint_pushes_slots_without_cutting_the_rate() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    meter.throttled("acct", [REQUESTS], 1.5, far(clock), cut=False)
    assert meter.rate("acct", REQUESTS) == RATE
    assert slots(meter, clock, 1, REQUESTS)[0] >= 1.5


def test_a_first_429_on_a_fresh_provider_teaches_its_pause_not_a_floor_rate() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    slots(meter, clock, 1, UNPACED)
    meter.throttled("acct", [UNPACED], 1.0, far(clock), cut=True)
    assert meter.rate("acct", UNPACED) is None  # still unpaced
    # Then: the pause holds for every caller
    assert slots(meter, clock, 1, UNPACED)[0] >= 1.0


def test_a_fresh_provider_learns_half_the_account_wide_pace_that_was_throttled_and_forgets_it() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    # Given: three invocations calling an unpaced provider, 30 calls over 3 s account-wide (10/s)
    for _ in range(30):
        slots(meter, clock, 1, UNPACED)
        clock.sleep(0.1)
    meter.throttled("acct", [UNPACED], 0.0, far(clock), cut=True)
    assert MIN_SAMPLE <= 30
    assert meter.rate("acct", UNPACED) == pytest.approx(10.0 * DECREASE)
    clock.sleep(LEARNED_RATE_MEMORY_SECONDS)
    assert meter.rate("acct", UNPACED) is None


def test_akamai_style_buckets_are_reserved_together_and_the_tighter_one_binds() -> None:
    clock = SimulatedClock(0.0)
    meter = InProcessMeter(clock)
    requests, urls = Limit("requests", 50.0, 100), Limit("urls", 200.0, 1000)
    taken = []
    for _ in range(10):  # 10 calls of 500 URLs: the URL bucket binds (2.5 s a call after its burst)
        reservation = meter.reserve("akamai", [Draw(requests), Draw(urls, 500)], far(clock))
        taken.append(reservation.wait)
    assert taken[0] == 0.0
    assert taken[1] == pytest.approx(JITTER_MARGIN_SECONDS)  # the second fills the burst, less the margin
    assert [b - a for a, b in pairwise(taken[1:])] == pytest.approx([500 / 200.0] * 8)


def provider_config(extra: str) -> str:
    return (
        "providers:\n"
        f"  - {{name: eu, kind: fastly, service_id: S1, credentials: {{token: {{env: T}}}}{extra}}}\n"
        '  - {name: us, kind: fastly, service_id: S2, credentials: {token: {env: T}}, rate_scope: "main-account"}\n'
        'rules:\n  - {match: "{key*}", keys: ["{key}"]}\n'
    )


def test_rate_scope_names_the_account_and_defaults_to_the_provider() -> None:
    config = parse_config(provider_config(""), source="test")
    specs = {p.name: REGISTRY[p.kind].spec_for(p) for p in config.providers}
    assert specs["eu"].rate_scope == "fastly/eu"
    assert specs["us"].rate_scope == "fastly/main-account"
    shared = parse_config(provider_config(", rate_scope: main-account"), source="test")
    assert {REGISTRY[p.kind].spec_for(p).rate_scope for p in shared.providers} == {"fastly/main-account"}


def test_a_malformed_rate_scope_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="rate_scope"):
        parse_config(provider_config(', rate_scope: "two words"'), source="test")


def test_a_callers_own_margin_spaces_a_burst_one_bucket_and_leaves_a_roomy_one_to_its_tolerance() -> None:
    # Given: a caller that measured its calls reaching the provider 0.3 s after their slots
    one, roomy = Draw(Limit("requests", 10.0, 1)), Draw(Limit("requests", 40.0, 10))
    # Then: the call after its own on a burst-1 account is 0.3 s behind the rate's interval, not 0.1 s
    assert step(one, BucketState(), 0.0, margin=0.3).spacing == pytest.approx(0.1 + 0.3)
    assert step(one, BucketState(), 0.0).spacing == pytest.approx(0.1 + JITTER_MARGIN_SECONDS)
    # And: a bucket with room keeps its pace (its tolerance, less the fixed margin, absorbs lateness)
    assert step(roomy, BucketState(), 0.0, margin=0.3).spacing == pytest.approx(1 / 40.0)
    assert step(roomy, BucketState(), 0.0, margin=0.3).tolerance == pytest.approx(9 / 40.0 - JITTER_MARGIN_SECONDS)
