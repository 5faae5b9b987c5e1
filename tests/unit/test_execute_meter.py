"""The executor on the shared rate meter: several invocations (executors) of one account pace at its one rate,
defer what has no slot before their deadline, share a 429, and fall back to the static share (counted) when
the meter fails. A simulated clock drives every sleep: the figures are exact and no test takes time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from random import Random

import pytest
from helpers import SimulatedClock

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.gcra import JITTER_MARGIN_SECONDS, Draw, Limit
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import ProviderError, ThrottledError
from cdnpurge.core.spec import Capabilities, InProgressLimit, ProviderSpec
from cdnpurge.runtime.execute import MAX_CALLS_IN_FLIGHT, Executor
from cdnpurge.runtime.meter import InProcessMeter, MeterUnavailableError, Reservation

RATE = 4.0


@dataclass
class Account:
    """The CDN side: every call any invocation makes, in time order, and a script of errors to answer."""

    clock: SimulatedClock
    calls: list[float] = field(default_factory=list)
    script: list[ProviderError] = field(default_factory=list)


@dataclass
class AccountProvider:
    """One invocation's adapter for the shared account (each invocation builds its own)."""

    account: Account
    burst: int = 1
    rate: float | None = RATE
    name: str = "cdn"

    @property
    def spec(self) -> ProviderSpec:
        caps = Capabilities(max_targets={TargetKind.KEY: 10}, rate_per_second=self.rate, burst=self.burst)
        return ProviderSpec(self.name, caps, (), False, lambda target: target.value, rate_scope="cdn/account")

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.account.calls.append(self.account.clock())
        if self.account.script:
            raise self.account.script.pop(0)
        return PurgeResult(provider_id=str(len(self.account.calls)))


def request(number: int) -> PurgeRequest:
    return PurgeRequest("cdn", TargetKind.KEY, (f"k{number}",), False, frozenset({f"c{number}"}))


def invocations(count: int, account: Account, meter: object, *, burst: int = 1) -> list[Executor]:
    return [
        Executor(
            {"cdn": AccountProvider(account, burst=burst)},
            clock=account.clock,
            sleep=account.clock.sleep,
            rng=Random(1),
            rate_share=1 / count,
            meter=meter,  # type: ignore[arg-type]
        )
        for _ in range(count)
    ]


def test_invocations_take_turns_at_the_accounts_whole_rate_without_collisions() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    executors = invocations(8, account, InProcessMeter(clock))
    # When: eight invocations send 40 calls between them, in turn
    for number in range(40):
        outcome = executors[number % 8].run(
            request(number), deadline=Deadline(clock() + 600, clock), idempotency_token=str(number)
        )
        assert outcome.ok and outcome.unmetered == 0
    # Then: a burst-1 account sees its calls one rate-interval (plus the time margin) apart: no collision,
    # and not 1/8 of the rate each
    gaps = [b - a for a, b in pairwise(account.calls)]
    assert gaps == pytest.approx([1 / RATE + JITTER_MARGIN_SECONDS] * 39)


def test_an_idle_invocation_holds_no_share_one_busy_one_gets_the_whole_rate() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    busy, *_idle = invocations(4, account, InProcessMeter(clock), burst=4)
    for number in range(20):
        busy.run(request(number), deadline=Deadline(clock() + 600, clock), idempotency_token=str(number))
    # 20 calls: the burst at once, then one every 1/RATE: the whole rate, not a quarter of it
    assert account.calls[-1] == pytest.approx((20 - 4) / RATE + JITTER_MARGIN_SECONDS)


def test_a_call_with_no_slot_before_the_deadline_is_deferred_to_its_slot_not_slept_for() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    first, second = invocations(2, account, InProcessMeter(clock))
    for number in range(4):
        first.run(request(number), deadline=Deadline(clock() + 600, clock), idempotency_token=str(number))
    # When: the other invocation has 0.1 s left and the account's next slot is further off
    outcome = second.run(request(9), deadline=Deadline(clock() + 0.1, clock), idempotency_token="9")
    # Then: not called, deferred, due when the slot comes
    assert outcome.deferred and outcome.attempts == 0
    assert len(account.calls) == 4
    assert outcome.retry_in == pytest.approx(1 / RATE + JITTER_MARGIN_SECONDS)


def test_one_invocations_429_pauses_every_invocation_of_the_account() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock, script=[ThrottledError("cdn", "slow down", retry_after=3.0)])
    first, second = invocations(2, account, InProcessMeter(clock))
    throttled = first.run(request(1), deadline=Deadline(clock() + 600, clock), idempotency_token="1")
    assert throttled.ok and throttled.throttled == 1
    # When: the other invocation calls next; then: not before the pause asked for, from the first call
    second.run(request(2), deadline=Deadline(clock() + 600, clock), idempotency_token="2")
    assert account.calls[-1] - account.calls[0] >= 3.0


class FailingMeter:
    """A meter whose table cannot be reached."""

    def __init__(self) -> None:
        self.asked = 0

    def reserve(
        self, scope: str, draws: Sequence[Draw], deadline: Deadline, count: int = 1, *, margin: float = 0.0
    ) -> Reservation:
        self.asked += 1
        raise MeterUnavailableError("rate meter: table unreachable")

    def throttled(self, scope: str, limits: Sequence[Limit], pause: float, deadline: Deadline, *, cut: bool) -> None:
        raise MeterUnavailableError("rate meter: table unreachable")


def test_an_unreachable_meter_falls_back_to_the_static_share_and_is_counted() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    meter = FailingMeter()
    (executor, _other) = invocations(2, account, meter)
    outcomes = [
        executor.run(request(n), deadline=Deadline(clock() + 600, clock), idempotency_token=str(n)) for n in range(5)
    ]
    assert all(o.ok for o in outcomes)
    assert sum(o.unmetered for o in outcomes) == 5 == meter.asked
    # Paced at half the rate (two invocations' static share), less the fallback's headroom
    assert min(b - a for a, b in pairwise(account.calls)) >= 2 / RATE


def test_calls_in_flight_follow_rate_times_latency_bounded() -> None:
    clock = SimulatedClock(0.0)
    (executor,) = invocations(1, Account(clock), InProcessMeter(clock))
    assert executor.calls_in_flight("cdn") == 1  # nothing timed yet
    executor.latency["cdn"] = 0.5  # 4/s x 0.5 s
    assert executor.calls_in_flight("cdn") == 3
    executor.latency["cdn"] = 60.0
    assert executor.calls_in_flight("cdn") == MAX_CALLS_IN_FLIGHT


PATHS, WILDCARDS, HOLD = 5, 2, 60.0


@dataclass
class Distribution(AccountProvider):
    """A CloudFront-like provider: paths and tags count against 5 in progress, wildcards against 2."""

    @property
    def spec(self) -> ProviderSpec:
        caps = Capabilities(
            max_targets={TargetKind.PATH: 5, TargetKind.KEY: 5, TargetKind.PREFIX: 2},
            rate_per_second=100.0,
            burst=10,
            in_progress=(
                InProgressLimit("paths", PATHS, frozenset({TargetKind.PATH, TargetKind.KEY})),
                InProgressLimit("wildcards", WILDCARDS, frozenset({TargetKind.PREFIX})),
            ),
            in_progress_seconds=HOLD,
        )
        return ProviderSpec("cdn", caps, (), False, str, billing_key="EDIST", rate_scope="cloudfront/cdn")


def invalidation(kind: TargetKind, count: int, tag: str) -> PurgeRequest:
    return PurgeRequest("cdn", kind, tuple(f"/{tag}/{n}" for n in range(count)), False, frozenset({tag}))


def test_parallel_invocations_never_put_more_items_in_progress_than_the_distribution_takes() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    meter = InProcessMeter(clock)
    first, second = (
        Executor({"cdn": Distribution(account)}, clock=clock, sleep=clock.sleep, meter=meter) for _ in range(2)
    )
    # Given: one invocation has 4 paths (tags count as paths) in progress
    assert first.run(
        invalidation(TargetKind.KEY, 4, "a"), deadline=Deadline(clock() + 600, clock), idempotency_token="a"
    ).ok
    # When: another wants 3 more, and 2 wildcards (a separate limit)
    deferred = second.run(
        invalidation(TargetKind.PATH, 3, "b"), deadline=Deadline(clock() + 600, clock), idempotency_token="b"
    )
    wildcards = second.run(
        invalidation(TargetKind.PREFIX, 2, "c"), deadline=Deadline(clock() + 600, clock), idempotency_token="c"
    )
    # Then: the paths wait (deferred, not refused by the provider) until the first invalidation's hold ends;
    # the wildcards go at once
    assert deferred.deferred and deferred.attempts == 0
    assert deferred.retry_in == pytest.approx(HOLD - (clock() - account.calls[0]), abs=0.1)
    assert wildcards.ok
    clock.sleep(HOLD)
    assert second.run(
        invalidation(TargetKind.PATH, 3, "b"), deadline=Deadline(clock() + 600, clock), idempotency_token="b"
    ).ok
    assert len(account.calls) == 3


@dataclass
class LateAnswers(AccountProvider):
    """A burst-1 account whose answers take `seconds[n]` for its n-th call (0.01 s once the script runs out)."""

    seconds: list[float] = field(default_factory=list)

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        result = super().purge(request, idempotency_token=idempotency_token, deadline=deadline)
        self.account.clock.sleep(self.seconds.pop(0) if self.seconds else 0.01)
        return result


def test_an_invocation_whose_calls_run_late_spaces_the_calls_after_its_own_by_that_lateness() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    meter = InProcessMeter(clock)
    late = Executor({"cdn": LateAnswers(account, seconds=[0.01, 0.35])}, clock=clock, sleep=clock.sleep, meter=meter)
    # Given: one call answered at once, then one 0.34 s later than the quickest (an overloaded host)
    for number in range(2):
        assert late.run(request(number), deadline=Deadline(clock() + 600, clock), idempotency_token=str(number)).ok
    assert late.margin("cdn") == pytest.approx(0.34)
    # When: it makes its next call, and another invocation (no late calls) follows it
    quick = Executor({"cdn": AccountProvider(account)}, clock=clock, sleep=clock.sleep, meter=meter)
    assert quick.margin("cdn") == JITTER_MARGIN_SECONDS
    late.run(request(2), deadline=Deadline(clock() + 600, clock), idempotency_token="2")
    quick.run(request(3), deadline=Deadline(clock() + 600, clock), idempotency_token="3")
    # Then: the call after the late invocation's own is spaced by its lateness, not by the fixed margin
    assert account.calls[3] - account.calls[2] == pytest.approx(1 / RATE + 0.34)


class CountingMeter(InProcessMeter):
    """The in-process meter, counting reservations (each one write on DynamoDB)."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(clock)
        self.reservations = 0

    def reserve(
        self, scope: str, draws: Sequence[Draw], deadline: Deadline, count: int = 1, *, margin: float = 0.1
    ) -> Reservation:
        self.reservations += 1
        return super().reserve(scope, draws, deadline, count, margin=margin)


def test_one_record_invocations_lease_a_spare_slot_for_their_next_when_others_are_queued() -> None:
    clock = SimulatedClock(0.0)
    account = Account(clock)
    meter = CountingMeter(clock)
    (executor,) = invocations(1, account, meter)
    scope, draws = "cdn/account", [Draw(Limit("requests", RATE, 1))]
    deadline = Deadline(clock() + 600, clock)
    # Given: other invocations have three slots queued ahead (a storm)
    meter.reserve(scope, draws, deadline, 3)
    # When: one-record invocations of one warm container follow one another, with others queueing meanwhile
    for number in range(6):
        assert executor.run(request(number), deadline=deadline, idempotency_token=str(number)).ok
        meter.reserve(scope, draws, deadline, 1)
    # Then: after the first reservation found the queue, each reservation served two calls (4 for 6 calls)
    assert meter.reservations - 1 - 6 == 4
    # And: when the next invocation comes too late for its spare slot, spare slots stop
    clock.sleep(60.0)
    before = meter.reservations
    executor.run(request(6), deadline=deadline, idempotency_token="6")
    executor.run(request(7), deadline=deadline, idempotency_token="7")
    assert meter.reservations - before == 2


class OversleepingClock(SimulatedClock):
    """A starved process: the next sleep after `oversleep(seconds)` wakes that much late."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.late = 0.0

    def oversleep(self, seconds: float) -> None:
        self.late = seconds

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self.late)
        self.late = 0.0


def test_a_call_that_woke_too_late_for_its_burst_one_slot_takes_the_next_one_instead() -> None:
    clock = OversleepingClock()
    account = Account(clock)
    meter = InProcessMeter(clock)
    first, second = (
        Executor({"cdn": AccountProvider(account)}, clock=clock, sleep=clock.sleep, meter=meter) for _ in range(2)
    )
    deadline = Deadline(600.0, clock)
    assert first.run(request(0), deadline=deadline, idempotency_token="0").ok
    # When: the next call's process wakes 0.3 s after its slot (0.35 s after the first call)
    clock.oversleep(0.3)
    late = second.run(request(1), deadline=deadline, idempotency_token="1")
    assert first.run(request(2), deadline=deadline, idempotency_token="2").ok
    # Then: it was not sent on the slot it overslept (it would have reached the provider 0.05 s before the
    # next call): it took the next slot, which the call after it follows by a whole interval
    interval = 1 / RATE + JITTER_MARGIN_SECONDS
    assert late.ok and late.attempts == 1
    assert [b - a for a, b in pairwise(account.calls)] == pytest.approx([2 * interval, interval])
