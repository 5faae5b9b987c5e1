"""The rate meter against a DynamoDB table that throttles every write and answers slowly: the provider calls
still go (paced at the static share, counted), within the stage's deadline, and the table is asked once per
`RETRY_AFTER_FAILURE_SECONDS`, not once per call.

The table is DynamoDB's JSON protocol on 127.0.0.1 (every UpdateItem answered HTTP 400
`ProvisionedThroughputExceededException`, each call moving the test's clock 1.5 s); the client is the
runtime's own `aws_client` (bounded, botocore's standard retries), so what is asserted is what the function
would do, counted on the test's clock, never timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import SimulatedClock, slow_dynamodb
from reliability import tally

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.spec import Capabilities, ProviderSpec
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.meter_dynamodb import RETRY_AFTER_FAILURE_SECONDS, DynamoDBMeter

CALLS = 40
STAGE_SECONDS = 10.0


def throttling(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Every request throttled: HTTP 400, as DynamoDB answers it."""
    return 400, {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }


@dataclass
class Recorder:
    """A provider at 20 calls a second that records when it was called."""

    clock: SimulatedClock
    calls: list[float] = field(default_factory=list)
    name: str = "cdn"

    @property
    def spec(self) -> ProviderSpec:
        caps = Capabilities(max_targets={TargetKind.KEY: 10}, rate_per_second=20.0, burst=5)
        return ProviderSpec(self.name, caps, (), False, lambda target: target.value, rate_scope="cdn/account")

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.calls.append(self.clock())
        return PurgeResult(provider_id=str(len(self.calls)))


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.usefixtures("aws_credentials")
def test_a_throttling_slow_meter_table_costs_one_bounded_call_per_interval_and_the_calls_still_go() -> None:
    # Given: 40 calls to make in a 10 s stage, the meter's table throttling every write at 1.5 s a call
    clock = SimulatedClock()
    provider = Recorder(clock)
    with slow_dynamodb(clock, throttling) as (client, state):
        meter = DynamoDBMeter(client, "cdnpurge-idempotency", clock=clock)
        executor = Executor({"cdn": provider}, clock=clock, sleep=clock.sleep, meter=meter)
        deadline = Deadline.after(STAGE_SECONDS, clock)
        # When
        outcomes = [
            executor.run(
                PurgeRequest("cdn", TargetKind.KEY, (f"k{n}",), False, frozenset({f"c{n}"})),
                deadline=deadline,
                idempotency_token=f"t{n}",
            )
            for n in range(CALLS)
        ]
    # Then: every call went, paced at the static share and counted as unmetered, before the deadline
    assert all(o.ok for o in outcomes)
    assert sum(o.unmetered for o in outcomes) == CALLS
    assert provider.calls[-1] <= deadline.ends_at
    # And: the table was asked once per interval after a failure (each time two attempts: botocore's retry),
    # not once per call (40 calls x 3 s would be 12 stages' worth)
    intervals = 1 + int((clock() - (deadline.ends_at - STAGE_SECONDS)) // RETRY_AFTER_FAILURE_SECONDS)
    assert state["calls"] <= 2 * intervals
    tally.hostile("deadline")
