"""Settling fits inside the invocation: with a slow table, no ledger call starts after
`settle_by`, so the handler answers before Lambda's deadline; what was not written is reported, and the
claims left expire at the invocation's deadline. Simulated clock: each ledger call takes the longest the
service's DynamoDB client configuration allows."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from random import Random
from typing import Any

import httpx
from helpers import FASTLY_TOKEN, MemoryLedger, SimulatedClock, fastly_config

from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import Plan, PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import UnavailableError
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.execute import Executor, Outcome
from cdnpurge.runtime.ledger import LedgerOperation, Pair
from cdnpurge.runtime.service import AWS_CALL_SECONDS, PurgeService, Queues
from cdnpurge.runtime.settle import Settlement
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event


class SlowLedger(MemoryLedger):
    """Every write takes `AWS_CALL_SECONDS` of the simulated clock; `written` is set after each."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__()
        self.clock = clock
        self.calls: list[str] = []
        self.written = threading.Semaphore(0)

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        self.clock.sleep(AWS_CALL_SECONDS)
        super().complete(pairs, result)
        self.calls.append("complete")
        self.written.release()

    def release(self, pairs: Iterable[Pair], error: Exception, attempts: object = None) -> None:
        self.clock.sleep(AWS_CALL_SECONDS)
        super().release(pairs, error)
        self.calls.append("release")


def request(change: str) -> PurgeRequest:
    return PurgeRequest("fastly", TargetKind.KEY, (change,), False, frozenset({change}))


def test_no_ledger_call_starts_after_settle_by_and_what_is_left_is_reported() -> None:
    # Given: four requests, three succeed one after another, one fails; 10 s left to settle
    clock = SimulatedClock()
    ledger = SlowLedger(clock)
    requests = [request(f"c{i}") for i in range(4)]
    claimed = {("fastly", f"c{i}") for i in range(4)}
    settle_by = Deadline(clock() + 10, clock)
    settlement = Settlement(claimed, Plan(tuple(requests)), ledger, settle_by=settle_by)
    # When: each success arrives after the previous one is written (sequential writes of 7 s), then the failure
    for ok in requests[:2]:
        settlement.record(Outcome(ok, result=PurgeResult("id")))
        assert ledger.written.acquire(timeout=10)
    settlement.record(Outcome(requests[2], result=PurgeResult("id")))  # at 14 s: past settle_by
    settlement.record(Outcome(requests[3], error=UnavailableError("fastly", "503", status=503)))
    completed, failures = settlement.finish()
    # Then: the calls started before settle_by ran (ending at most one call after it); the rest did not
    assert clock() <= settle_by.ends_at + AWS_CALL_SECONDS
    assert ledger.calls == ["complete", "complete"]
    assert {failure.operation for failure in failures} == {LedgerOperation.COMPLETE, LedgerOperation.RELEASE}
    assert all("out of time" in failure.cause for failure in failures)
    unreleased = next(f for f in failures if f.operation is LedgerOperation.RELEASE)
    assert set(unreleased.pairs) == {("fastly", "c3")}
    assert completed == {("fastly", "c0"), ("fastly", "c1"), ("fastly", "c2")}  # purged: acknowledged


def test_without_a_deadline_everything_is_settled() -> None:
    clock = SimulatedClock()
    ledger = SlowLedger(clock)
    settlement = Settlement({("fastly", "c0"), ("fastly", "c1")}, Plan((request("c0"), request("c1"))), ledger)
    settlement.record(Outcome(request("c0"), result=PurgeResult("id")))
    settlement.record(Outcome(request("c1"), error=UnavailableError("fastly", "503", status=503)))
    _, failures = settlement.finish()
    assert failures == [] and ledger.calls == ["complete", "release"]


def test_the_handler_answers_before_lambdas_deadline_with_a_slow_table_and_a_failing_cdn() -> None:
    # Given: a 30 s invocation, a CDN answering 503 to everything (retried until the executor's deadline),
    # and a table whose writes take the longest a call may (the release of the failed claim)
    clock = SimulatedClock()
    ledger = SlowLedger(clock)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"msg": "down"})

    config = fastly_config()
    providers = build_providers(
        config.providers,
        lambda settings: {"token": Secret(FASTLY_TOKEN)},
        {"fastly": httpx.Client(transport=httpx.MockTransport(answer))},
    )
    executor = Executor(providers, clock=clock, sleep=clock.sleep, rng=Random(4), max_attempts=1000)
    service = PurgeService(config=config, providers=providers, ledger=ledger, executor=executor)
    answer_by = clock() + 30

    def remaining_ms() -> int:
        return max(0, int((answer_by - clock()) * 1000))

    event = sqs_event(s3_notification(s3_record("example-site-content", "a.html")))
    # When
    report = service.handle(event, remaining_ms=remaining_ms)
    # Then: the record goes back, and the answer came before the deadline
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert clock() < answer_by


class SlowSqs:
    """Every send takes the longest an SQS call may take on the simulated clock."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.sent: list[str] = []

    def send_message(self, **params: Any) -> None:
        self.clock.sleep(AWS_CALL_SECONDS)
        self.sent.append(params["MessageBody"])


def test_dead_lettering_with_a_slow_queue_stops_in_time_and_leaves_the_rest_to_sqs() -> None:
    # Given: a 30 s invocation, six malformed records (each to be dead-lettered), a queue taking 7 s a send
    clock = SimulatedClock()
    config = fastly_config()
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    sqs = SlowSqs(clock)
    service = PurgeService(
        config=config,
        providers=providers,
        ledger=MemoryLedger(),
        executor=Executor(providers, clock=clock, sleep=clock.sleep),
        queues=Queues(dead_letter_url="https://sqs.example/dlq"),
        sqs_factory=lambda: sqs,
    )
    answer_by = clock() + 30
    event = sqs_event(*(f"{{poison {i}" for i in range(6)))
    # When
    report = service.handle(event, remaining_ms=lambda: max(0, int((answer_by - clock()) * 1000)))
    # Then: answered in time; what was not sent stays with SQS (returned), nothing dropped
    assert clock() < answer_by
    returned = {item["itemIdentifier"] for item in report.response()["batchItemFailures"]}
    assert 0 < len(sqs.sent) < 6
    assert len(returned) + len(sqs.sent) == 6
