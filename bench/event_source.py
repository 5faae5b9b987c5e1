"""Lambda's SQS event source mapping emulated in-process, driving the real `PurgeService` through a storm.

In-process rather than through moto's SQS (as `cdnpurge_local.event_source` does for the tests): a
10,000-record storm through a queue server would measure the queue server, not cdnpurge.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.cdn_host import FASTLY_TOKEN, MEDIANOVA_TOKEN, Limit
from bench.scenarios import LIMITS, Scenario, Storm, config_text

if TYPE_CHECKING:
    from cdnpurge.runtime.meter import Meter

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's invocation payload limit, which also caps SQS batches
MAX_RECEIVES = 5  # the queue's maxReceiveCount
LAMBDA_TIMEOUT = 120.0


def split_batches(records: list[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """What the event source hands one invocation: up to `batch_size` records and 6 MB."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(json.dumps(record)) + 2
        if current and (len(current) == batch_size or size + record_size > MAX_PAYLOAD_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        batches.append(current)
    return batches


@dataclass
class InvocationLog:
    invocations: int = 0
    redelivered: int = 0
    dead_lettered: int = 0
    requests: int = 0
    throttled_attempts: int = 0
    deferred: int = 0
    escalations: int = 0
    handler_cpu: float = 0.0  # thread CPU seconds inside PurgeService.handle
    verification_cpu: float = 0.0  # of which in verification (scheduling checks), when on


class EventSource:
    """Lambda's SQS event source mapping, in-process: `concurrency` invocations take batches off one queue;
    records a handler lists in `batchItemFailures` are delivered again (at once: the visibility timeout is
    not waited for), and dead-lettered after `MAX_RECEIVES` receives."""

    def __init__(self, handle: Callable[[Any, list[dict[str, Any]]], set[str]], batch_size: int) -> None:
        self.handle = handle
        self.batch_size = batch_size
        self.queue: deque[list[dict[str, Any]]] = deque()
        self.condition = threading.Condition()
        self.busy = 0
        self.redelivered = 0
        self.dead_lettered = 0

    def run(self, instances: Sequence[Any], records: list[dict[str, Any]]) -> float:
        self.queue.extend(split_batches(records, self.batch_size))
        started = time.monotonic()
        with ThreadPoolExecutor(len(instances)) as pool:
            for future in [pool.submit(self._poll, instance) for instance in instances]:
                future.result()
        return time.monotonic() - started

    def _poll(self, instance: Any) -> None:
        while True:
            with self.condition:
                while not self.queue and self.busy:
                    self.condition.wait()
                if not self.queue:
                    self.condition.notify_all()
                    return
                batch = self.queue.popleft()
                self.busy += 1
            failed: set[str] = {record["messageId"] for record in batch}
            try:
                failed = self.handle(instance, batch)
            finally:
                again = self._again([record for record in batch if record["messageId"] in failed])
                with self.condition:
                    self.queue.extend(split_batches(again, self.batch_size) if again else [])
                    self.busy -= 1
                    self.condition.notify_all()

    def _again(self, failed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        again = []
        for record in failed:
            receives = int(record["attributes"]["ApproximateReceiveCount"]) + 1
            if receives > MAX_RECEIVES:
                self.dead_lettered += 1
                continue
            redelivered = copy.deepcopy(record)
            redelivered["attributes"]["ApproximateReceiveCount"] = str(receives)
            again.append(redelivered)
        self.redelivered += len(again)
        return again


def run_cdnpurge(
    scenario: Scenario,
    storm: Storm,
    *,
    endpoints: dict[str, str],
    dynamodb: Any,
    table: str,
    ledger: str,
    batch_size: int,
    concurrency: int,
    verify: tuple[Any, str, Any] | None = None,
    limits: dict[str, Limit] = LIMITS,
    meter: Callable[[], Meter] | None = None,
    instances: int | None = None,
) -> tuple[float, InvocationLog, int]:
    """Drive the storm through `PurgeService.handle`; returns wall time, what happened, per-batch minimum.

    `meter`: builds each invocation's shared rate meter (None: each paces at 1/`concurrency`, the static
    share); `instances`: invocations running at once (default `concurrency`; more: over-subscription).

    `verify`: (SQS client, purge queue URL, origin versions) to run with the provider's `verify:` block on,
    its checks sent to that queue (`bench.verification` measures what that costs the storm)."""
    from cdnpurge.core.config import parse_config
    from cdnpurge.runtime.service import PurgeService, Queues, VerificationWiring
    from cdnpurge_local.event_source import LocalLambdaContext
    from cdnpurge_local.memory_ledger import MemoryLedger

    config = parse_config(
        config_text(scenario, endpoints, verify=verify is not None, limits=limits), source=scenario.name
    )
    environ = {"BENCH_FASTLY_TOKEN": FASTLY_TOKEN, "BENCH_MEDIANOVA_TOKEN": MEDIANOVA_TOKEN}
    shared_memory = MemoryLedger()

    def instance() -> PurgeService:
        # One Lambda instance, pacing at its share of each provider's rate (as MAXIMUM_CONCURRENCY sets it).
        checks = (
            {}
            if verify is None
            else {
                "sqs_client": verify[0],
                "queues": Queues(purge_url=verify[1]),
                "verification": VerificationWiring(origin=verify[2]),
            }
        )
        service = PurgeService.build(
            config,
            table_name=table,
            dynamodb_client=dynamodb,
            environ=environ,
            concurrency=concurrency,
            meter=None if meter is None else meter(),
            **checks,
        )
        if ledger == "memory":
            service.ledger = shared_memory
        if service.verification is not None:
            service.verification.handle = _cpu_timed(service.verification.handle, "verification_cpu")  # type: ignore[method-assign]
        return service

    log = InvocationLog()
    lock = threading.Lock()

    def _cpu_timed(call: Callable[..., Any], field: str) -> Callable[..., Any]:
        """`call`, adding the thread CPU time it takes to `log.<field>`."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                with lock:
                    setattr(log, field, getattr(log, field) + time.thread_time() - started)

        return timed

    def invoke(service: PurgeService, batch: list[dict[str, Any]]) -> set[str]:
        context = LocalLambdaContext(timeout_seconds=LAMBDA_TIMEOUT)
        handle = _cpu_timed(service.handle, "handler_cpu")
        report = handle({"Records": batch}, remaining_ms=context.get_remaining_time_in_millis)
        with lock:
            log.invocations += 1
            log.requests += len(report.run.outcomes)
            log.throttled_attempts += sum(o.throttled for o in report.run.outcomes)
            log.deferred += sum(1 for o in report.run.outcomes if o.deferred)
            log.escalations += len(report.run.plan.escalations)
        return {str(item["itemIdentifier"]) for item in report.response()["batchItemFailures"]}

    services = [instance() for _ in range(instances or concurrency)]
    source = EventSource(invoke, batch_size)
    wall = source.run(services, storm.records)
    log.redelivered, log.dead_lettered = source.redelivered, source.dead_lettered
    for service in services:
        for provider in service.providers.values():
            close = getattr(provider, "close", None) or getattr(getattr(provider, "inner", None), "close", None)
            if close is not None:
                close()
    batches = split_batches(storm.records, batch_size)
    per_batch = sum(storm.minimum(set().union(*(storm.targets[r["messageId"]] for r in b))) for b in batches)
    return wall, log, per_batch
