"""The rate meter on DynamoDB Local: threads racing on one scope get the slots the in-process meter hands
out, one write each while the scope is busy; throttles shared; the meter's item under its key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import boto3
import pytest
from helpers import SimulatedClock, create_template_table

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.gcra import JITTER_MARGIN_SECONDS, Draw, Limit
from cdnpurge.runtime.meter import InProcessMeter, MeterUnavailableError
from cdnpurge.runtime.meter_dynamodb import KEY_PREFIX, DynamoDBMeter
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DynamoDBLocal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("meter")]

RATE = 20.0
LIMIT = Limit("requests", rate=RATE, burst=10)
THREADS = 8
EACH = 25


@pytest.fixture(scope="module")
def table() -> Iterator[tuple[Any, str]]:
    with DynamoDBLocal() as dynamodb:
        client = local_client(boto3.session.Session(), "dynamodb", endpoint=dynamodb.endpoint, region="us-east-1")
        name = "cdnpurge-meter-test"
        create_template_table(client, "IdempotencyTable", name)
        yield client, name


def test_racing_threads_get_exactly_the_in_process_meters_slots(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(1_000_000.0)  # frozen: every reservation is made at the same instant
    deadline = Deadline(clock() + 3600.0, clock)
    meters = [DynamoDBMeter(client, name, clock=clock) for _ in range(THREADS)]  # one per invocation

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
    first, second = DynamoDBMeter(client, name, clock=clock), DynamoDBMeter(client, name, clock=clock)
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


def test_items_in_progress_are_counted_across_invocations_and_released_with_time(table: tuple[Any, str]) -> None:
    client, name = table
    scope = uuid.uuid4().hex
    clock = SimulatedClock(4_000_000.0)
    far = Deadline(clock() + 3600.0, clock)
    limits = {"paths": 3000, "wildcards": 15}
    first, second = DynamoDBMeter(client, name, clock=clock), DynamoDBMeter(client, name, clock=clock)
    assert first.hold(scope, {"paths": 2500}, limits, 60.0, far) == 0.0
    clock.sleep(10.0)
    assert first.hold(scope, {"wildcards": 15}, limits, 60.0, far) == 0.0
    # Then: another invocation (its cache empty) may not pass either limit, and learns when it may
    assert second.hold(scope, {"paths": 600}, limits, 60.0, far) == pytest.approx(50.0)
    assert second.hold(scope, {"wildcards": 1}, limits, 60.0, far) == pytest.approx(60.0, abs=1.0)
    assert second.hold(scope, {"paths": 500}, limits, 60.0, far) == 0.0  # 3,000 exactly
    # And: once the first holds expire, their room is back (the expired attributes are removed)
    clock.sleep(51.0)
    assert second.hold(scope, {"paths": 2000}, limits, 60.0, far) == 0.0
    item = client.get_item(TableName=name, Key={"id": {"S": KEY_PREFIX + scope}})["Item"]
    assert sum(float(v["N"]) for k, v in item.items() if k.startswith("ip_") and k.endswith("_paths")) == 2500
