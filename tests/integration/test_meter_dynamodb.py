"""The rate meter on DynamoDB Local: threads racing on one scope get the slots the in-process meter hands
out, one write each while the scope is busy; throttles shared; the meter's item under its key prefix."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest
from helpers import SimulatedClock, create_template_table

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.gcra import JITTER_MARGIN_SECONDS, Draw, Limit
from cdnpurge.runtime.meter import InProcessMeter, MeterUnavailableError
from cdnpurge.runtime.meter_dynamodb import KEY_PREFIX, DynamoDBMeter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("meter")]

RATE = 20.0
LIMIT = Limit("requests", rate=RATE, burst=10)
THREADS = 8
EACH = 25


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[Any, str]:
    name = "cdnpurge-meter-test"
    create_template_table(dynamodb, "IdempotencyTable", name)
    return dynamodb, name


def test_racing_threads_get_exactly_the_in_process_meters_slots(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(1_000_000.0)  # frozen: every reservation is made at the same instant
    deadline = Deadline(clock() + 3600.0, clock)
    # One per invocation; the clock does not move during a write, so no write is taken to last any time
    meters = [DynamoDBMeter(client, name, clock=clock, first_lead=0.0) for _ in range(THREADS)]

    def reserve_all(meter: DynamoDBMeter) -> list[float]:
        return [meter.reserve(scope, [Draw(LIMIT)], deadline).wait for _ in range(EACH)]

    # When: eight invocations reserve 25 slots each, at once
    with ThreadPoolExecutor(THREADS) as pool:
        waits = sorted(w for waits in pool.map(reserve_all, meters) for w in waits)
    # Then: the same slots one in-process meter hands out to 200 reservations: none shared, none lost
    reference = InProcessMeter(clock)
    expected = sorted(reference.reserve(scope, [Draw(LIMIT)], deadline).wait for _ in range(THREADS * EACH))
    assert waits == pytest.approx(expected, abs=1e-6)
    assert all(b - a <= 1 / RATE + 1e-9 for a, b in pairwise(waits))
    # And: one write each, plus one lost race per invocation at most (its first write, from an empty cache)
    writes = sum(meter.writes for meter in meters)
    assert THREADS * EACH <= writes <= THREADS * EACH + THREADS
    item = client.get_item(TableName=name, Key={"id": {"S": KEY_PREFIX + scope}})["Item"]
    assert float(item["requests_tat"]["N"]) == pytest.approx(
        clock() + expected[-1] + 1 / RATE + (LIMIT.burst - 1) / RATE - JITTER_MARGIN_SECONDS
    )


def test_a_slot_past_the_deadline_is_refused_without_taking_it(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(2_000_000.0)
    one = Limit("requests", rate=1.0, burst=1)
    first, second = (DynamoDBMeter(client, name, clock=clock, first_lead=0.0) for _ in range(2))
    far = Deadline(clock() + 3600.0, clock)
    for _ in range(5):
        first.reserve(scope, [Draw(one)], far)
    # When: another invocation with 2 s left asks (its cache is empty: it learns the item from the refusal)
    refused = second.reserve(scope, [Draw(one)], Deadline(clock() + 2.0, clock))
    assert not refused.granted
    assert refused.wait == pytest.approx(5 * (1.0 + JITTER_MARGIN_SECONDS))
    # Then: the slot is still free for whoever has the time
    assert first.reserve(scope, [Draw(one)], far).wait == pytest.approx(refused.wait)


def test_a_throttle_reaches_every_invocation_through_the_item(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(3_000_000.0)
    far = Deadline(clock() + 3600.0, clock)
    seen, other = DynamoDBMeter(client, name, clock=clock), DynamoDBMeter(client, name, clock=clock)
    other.reserve(scope, [Draw(LIMIT)], far)
    # When: one invocation's call is answered 429, Retry-After 5 s (reported by three invocations)
    for meter in (seen, other, seen):
        meter.throttled(scope, [LIMIT], 5.0, far, cut=True)
    # Then: the other's next slot is after the pause, and the rate was cut once, at half
    assert other.reserve(scope, [Draw(LIMIT)], far).wait >= 5.0
    item = client.get_item(TableName=name, Key={"id": {"S": KEY_PREFIX + scope}})["Item"]
    assert float(item["requests_rate"]["N"]) == pytest.approx(RATE / 2)


def test_an_unreachable_table_is_reported_as_the_meter_being_unavailable(table: tuple[Any, str]) -> None:
    client, _name = table
    clock = SimulatedClock(0.0)
    meter = DynamoDBMeter(client, "no-such-table", clock=clock)
    with pytest.raises(MeterUnavailableError):
        meter.reserve("scope", [Draw(LIMIT)], Deadline(clock() + 60.0, clock))


LIMITS = {"paths": 3000, "wildcards": 15}


def test_items_in_progress_are_counted_across_invocations_and_expire_at_their_bound(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(4_000_000.0)
    far = Deadline(clock() + 3600.0, clock)
    first, second = DynamoDBMeter(client, name, clock=clock), DynamoDBMeter(client, name, clock=clock)
    assert first.hold(scope, "ta", {"paths": 2500}, LIMITS, seconds=60.0, deadline=far) == 0.0
    clock.sleep(10.0)
    assert first.hold(scope, "tb", {"wildcards": 15}, LIMITS, seconds=60.0, deadline=far) == 0.0
    # Then: another invocation (its cache empty) may not pass either limit, and learns when it may at the latest
    assert second.hold(scope, "tc", {"paths": 600}, LIMITS, seconds=60.0, deadline=far) == pytest.approx(50.0)
    assert second.hold(scope, "td", {"wildcards": 1}, LIMITS, seconds=60.0, deadline=far) == pytest.approx(
        60.0, abs=1.0
    )
    assert second.hold(scope, "te", {"paths": 500}, LIMITS, seconds=60.0, deadline=far) == 0.0  # 3,000 exactly
    # And: a hold nobody releases expires at its bound (the expired attributes are removed)
    clock.sleep(51.0)
    assert second.hold(scope, "tf", {"paths": 2000}, LIMITS, seconds=60.0, deadline=far) == 0.0
    item = client.get_item(TableName=name, Key={"id": {"S": KEY_PREFIX + scope}})["Item"]
    assert sum(float(v["N"]) for k, v in item.items() if k.startswith("ip_") and k.endswith("_paths")) == 2500
    assert not any(k.startswith(("ipx_ta", "ip_ta_")) for k in item)  # the wildcards held at 10 s still are


def test_a_hold_renamed_to_its_job_is_released_by_whoever_sees_the_job_complete(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(4_100_000.0)
    far = Deadline(clock() + 3600.0, clock)
    caller, verifier, other = (DynamoDBMeter(client, name, clock=clock) for _ in range(3))
    # Given: one call holds 15 wildcards under its token, then its invalidation's id
    assert caller.hold(scope, "tcall", {"wildcards": 15}, LIMITS, seconds=900.0, deadline=far) == 0.0
    caller.release(scope, "tcall", list(LIMITS), far, renamed="jI2J0I21PCUYOIK")
    assert caller.holders(scope) == ("jI2J0I21PCUYOIK",)
    assert other.hold(scope, "tnext", {"wildcards": 1}, LIMITS, seconds=900.0, deadline=far) == pytest.approx(
        900.0, abs=1.0
    )
    # When: another invocation (its cache empty) sees the job complete 20 s later
    clock.sleep(20.0)
    verifier.release(scope, "jI2J0I21PCUYOIK", list(LIMITS), far)
    # Then: the room is back at once for a caller whose cache still shows it full (the refusal is checked)
    assert other.hold(scope, "tnext", {"wildcards": 15}, LIMITS, seconds=900.0, deadline=far) == 0.0
    # And: a retry of the same attempt replaces its own hold rather than counting twice
    assert other.hold(scope, "tnext", {"wildcards": 15}, LIMITS, seconds=900.0, deadline=far) == 0.0
    assert other.holders(scope) == ("tnext",)


def test_a_hold_key_that_could_not_name_an_attribute_is_refused(table: tuple[Any, str]) -> None:
    client, name = table
    clock = SimulatedClock(4_200_000.0)
    meter = DynamoDBMeter(client, name, clock=clock)
    with pytest.raises(ValueError, match="not a hold key"):
        meter.hold("scope", "t_x #1", {"paths": 1}, LIMITS, seconds=60.0, deadline=Deadline(clock() + 60.0, clock))


class SlowWrites:
    """The DynamoDB client, every write taking `seconds` on the test's clock (a loaded host, a cold connection)."""

    def __init__(self, client: Any, clock: SimulatedClock, seconds: float) -> None:
        self._client, self._clock, self._seconds = client, clock, seconds

    def update_item(self, **request: Any) -> Any:
        answer = self._client.update_item(**request)
        self._clock.sleep(self._seconds)
        return answer


def test_slots_are_reserved_as_of_when_the_write_lands_so_a_slow_write_does_not_crowd_the_next_call(
    table: tuple[Any, str],
) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(5_000_000.0)
    far = Deadline(clock() + 3600.0, clock)
    one = Limit("requests", rate=10.0, burst=1)
    spacing = 1 / 10.0 + JITTER_MARGIN_SECONDS
    first = DynamoDBMeter(SlowWrites(client, clock, 0.3), name, clock=clock, first_lead=0.0)
    second = DynamoDBMeter(client, name, clock=clock, first_lead=0.0)
    first.reserve(scope, [Draw(one)], far)  # the first write is timed: 0.3 s
    clock.sleep(5.0)  # the scope idle again
    # When: an invocation reserves at an idle scope (its writes take 0.3 s), then another (quick) right behind
    started = clock()
    went = first.reserve(scope, [Draw(one)], far).wait + clock()  # its call leaves once the write landed
    following = second.reserve(scope, [Draw(one)], far).wait + clock()
    # Then: the next call is a whole spacing after the first one really left, not after its write started
    assert went == pytest.approx(started + 0.3)
    assert following - went >= spacing - 1e-6
