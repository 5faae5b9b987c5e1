"""Coalescing across batches, measured: a storm of uploads sharing 40 surrogate keys (Fastly) or cache tags
(CloudFront), spread over many SQS batches, with `coalesce_seconds` on; and a lone change's time to purge.

    python -m bench.coalescing            # 10,000 uploads at BatchSize 100 and 1,000, both providers
    python -m bench.coalescing --quick    # 1,000 uploads

What runs: the fake CDN process (`bench.cdn_host`), DynamoDB Local with the template's table (`LocalStack`),
the real `PurgeService` with its windows and ledger on that table, and the purge queue with Lambda's event
source over it emulated in-process (`SimulatedQueue`): batches of BatchSize, a batching window, two
invocations at a time, records in `batchItemFailures` delivered again, and the flush messages the service
sends itself (`DelaySeconds`) delivered when due. Everything runs on the bench's clock (`BenchClock`): real
time while anything runs, jumping over idle waits (a delayed flush message, a batching window), so a
60-second window costs no real minute and the times reported are what a deployment would see, less the
network.

Per run: CDN calls and targets sent (keys, or billed tag items at CloudFront) against the minimum across
batches (every shared target once, in the fewest calls) and against what coalescing per batch sends
(each batch's minimum: what main did before), targets lost (must be 0), and the window purges. The lone
change: the bench-clock time from its enqueueing to the end of the invocation that purged it, against
`coalesce_seconds + MaximumBatchingWindowInSeconds`. The results go to `bench/results/coalescing-<time>.json`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import use_local_aws
from bench.cdn_host import FASTLY_TOKEN, CdnHost
from bench.event_source import LAMBDA_TIMEOUT, MAX_RECEIVES, split_batches
from bench.scenarios import BUCKET, LIMITS, Scenario, Storm, config_text, lost_targets, make_storm
from cdnpurge_local.event_builders import sqs_record

RESULTS = Path(__file__).parent / "results"
WINDOW_SECONDS = 60  # coalesce_seconds in these runs
BATCHING_WINDOW_SECONDS = 10  # the template's MaximumBatchingWindowInSeconds default
CONCURRENCY = 2
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-purge"
EPOCH = 1_800_000_000.0
_COALESCE = f", coalesce_seconds: {WINDOW_SECONDS}"
SCENARIOS = (
    Scenario("fastly-sections", "fastly", "s3", '[{match: "assets/{dir}/{name}", keys: ["Section-{dir}"]}]', _COALESCE),
    Scenario(
        "cloudfront-tags",
        "cloudfront",
        "s3",
        '[{match: "assets/{dir}/{name}", keys: ["Section-{dir}"]}]',
        settings=f", cache_tags: true{_COALESCE}",
    ),
)


class BenchClock:
    """Epoch seconds: real time while anything runs, plus every idle wait skipped (`skip_to`)."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._skipped = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return EPOCH + time.monotonic() - self._started + self._skipped

    def skip_to(self, at: float) -> None:
        with self._lock:
            self._skipped += max(0.0, at - self())


@dataclass(order=True)
class _Pending:
    visible_at: float
    number: int
    record: dict[str, Any] = field(compare=False)


class SimulatedQueue:
    """The purge queue and the event source mapping over it, on `clock`; also the service's SQS client.

    A batch is handed out when `batch_size` records are visible, or when the oldest visible one has waited
    the batching window. When no invocation is running and none is due, nothing can happen before the next
    record becomes visible or the next batching window ends: the clock skips there.
    """

    def __init__(self, clock: BenchClock, batch_size: int, batching_window: float) -> None:
        self.clock = clock
        self.batch_size = batch_size
        self.batching_window = batching_window
        self._pending: list[_Pending] = []
        self._numbers = 0
        self._running = 0
        self._changed = threading.Condition()
        self.own_messages = 0
        self.redelivered = 0
        self.dead_lettered = 0

    def put(self, record: dict[str, Any], visible_at: float) -> None:
        with self._changed:
            self._numbers += 1
            bisect.insort(self._pending, _Pending(visible_at, self._numbers, record))
            self._changed.notify_all()

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0, MessageAttributes: Any = None
    ) -> dict[str, str]:
        """SQS SendMessage (the service's flush messages, re-purges, dead letters): visible after the delay."""
        self.own_messages += 1
        message_id = f"own-{self.own_messages:06d}"
        self.put(sqs_record(MessageBody, message_id=message_id), self.clock() + DelaySeconds)
        return {"MessageId": message_id}

    def change_message_visibility(self, **_: Any) -> dict[str, Any]:
        return {}  # records in batchItemFailures come back at once here

    def next_batch(self) -> list[dict[str, Any]] | None:
        with self._changed:
            while True:
                now = self.clock()
                visible = bisect.bisect_right(self._pending, _Pending(now, sys.maxsize, {}))
                if visible >= self.batch_size or (
                    visible and now >= self._pending[0].visible_at + self.batching_window
                ):
                    taken = self._pending[: min(visible, self.batch_size)]
                    del self._pending[: len(taken)]
                    self._running += 1
                    return [pending.record for pending in taken]
                if not self._pending and not self._running:
                    self._changed.notify_all()
                    return None
                if not self._running:  # nothing can change before the next event: skip to it
                    head = self._pending[0].visible_at
                    self.clock.skip_to(head + self.batching_window if visible else head)
                    continue
                self._changed.wait(0.05)

    def finished(self, batch: list[dict[str, Any]], failed: set[str]) -> None:
        now = self.clock()
        with self._changed:
            self._running -= 1
            for record in batch:
                if record["messageId"] not in failed:
                    continue
                receives = int(record["attributes"]["ApproximateReceiveCount"]) + 1
                if receives > MAX_RECEIVES:
                    self.dead_lettered += 1
                    continue
                again = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": str(receives)}}
                self.redelivered += 1
                self._numbers += 1
                bisect.insort(self._pending, _Pending(now, self._numbers, again))
            self._changed.notify_all()


@dataclass
class Run:
    scenario: str
    size: int
    batch_size: int
    batches: int
    calls: int
    targets_sent: int  # keys at Fastly; tag items (each billed) at CloudFront
    minimum_calls: int
    minimum_targets: int
    per_batch_calls: int  # what coalescing within each batch only needs (main before this change)
    per_batch_targets: int
    lost: int
    window_purges: int
    fallbacks: int
    redelivered: int
    dead_lettered: int
    bench_seconds: float
    wall_seconds: float

    @property
    def within_twice_the_minimum(self) -> bool:
        return self.calls <= 2 * self.minimum_calls and self.targets_sent <= 2 * self.minimum_targets


def run_storm(
    scenario: Scenario, storm: Storm, *, host: CdnHost, dynamodb: Any, table: str, batch_size: int, clock: BenchClock
) -> tuple[SimulatedQueue, list[tuple[float, Any]]]:
    """Drive `storm` through two service instances over one simulated queue; returns the queue and, per
    invocation, (bench time it ended, its report)."""
    from cdnpurge.core.config import parse_config
    from cdnpurge.runtime.coalesce import DynamoDBWindows
    from cdnpurge.runtime.service import PurgeService, Queues
    from cdnpurge_local.event_source import LocalLambdaContext

    config = parse_config(config_text(scenario, host.endpoints), source=scenario.name)
    queue = SimulatedQueue(clock, batch_size, BATCHING_WINDOW_SECONDS)
    queues = Queues(purge_url=QUEUE_URL, batching_window_seconds=BATCHING_WINDOW_SECONDS)

    def instance() -> PurgeService:
        service = PurgeService.build(
            config,
            table_name=table,
            dynamodb_client=dynamodb,
            environ={"BENCH_FASTLY_TOKEN": FASTLY_TOKEN},
            concurrency=CONCURRENCY,
            queues=queues,
            sqs_client=queue,
        )
        service.windows = DynamoDBWindows(dynamodb, table, clock=clock)
        return service

    reports: list[tuple[float, Any]] = []
    lock = threading.Lock()

    def poll(service: PurgeService) -> None:
        while (batch := queue.next_batch()) is not None:
            failed = {record["messageId"] for record in batch}
            try:
                context = LocalLambdaContext(timeout_seconds=LAMBDA_TIMEOUT)
                report = service.handle({"Records": batch}, remaining_ms=context.get_remaining_time_in_millis)
                failed = {str(item["itemIdentifier"]) for item in report.response()["batchItemFailures"]}
                with lock:
                    reports.append((clock(), report))
            finally:
                queue.finished(batch, failed)

    now = clock()
    for record in storm.records:
        queue.put(record, now)
    services = [instance() for _ in range(CONCURRENCY)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for future in [pool.submit(poll, service) for service in services]:
            future.result()
    for service in services:
        for provider in service.providers.values():
            close = getattr(provider, "close", None) or getattr(getattr(provider, "inner", None), "close", None)
            if close is not None:
                close()
    return queue, reports


def measure_storm(
    scenario: Scenario, size: int, batch_size: int, *, host: CdnHost, dynamodb: Any, table: str, run: str
) -> Run:
    storm = make_storm(scenario, size, run)
    host.reset()
    clock = BenchClock()
    started, bench_started = time.monotonic(), clock()
    queue, reports = run_storm(
        scenario, storm, host=host, dynamodb=dynamodb, table=table, batch_size=batch_size, clock=clock
    )
    stats = host.stats(scenario.provider)
    batches = split_batches(storm.records, batch_size)
    per_batch = [set().union(*(storm.targets[record["messageId"]] for record in batch)) for batch in batches]
    return Run(
        scenario=scenario.name,
        size=size,
        batch_size=batch_size,
        batches=len(batches),
        calls=stats.calls,
        targets_sent=len(stats.purged),
        minimum_calls=storm.minimum(storm.expected),
        minimum_targets=len(storm.expected),
        per_batch_calls=sum(storm.minimum(owed) for owed in per_batch),
        per_batch_targets=sum(len(owed) for owed in per_batch),
        lost=lost_targets(storm.expected, stats.purged),
        window_purges=sum(1 for _, r in reports for flush in r.run.coalescing.flushes if flush.purged),
        fallbacks=sum(len(r.run.coalescing.fallbacks) for _, r in reports),
        redelivered=queue.redelivered,
        dead_lettered=queue.dead_lettered,
        bench_seconds=round(clock() - bench_started, 1),
        wall_seconds=round(time.monotonic() - started, 1),
    )


def lone_change(scenario: Scenario, *, host: CdnHost, dynamodb: Any, table: str) -> dict[str, Any]:
    """One upload on a quiet queue: bench seconds from its enqueueing to the end of the invocation that
    purged its key (an upper bound of its time to purge)."""
    storm = make_storm(scenario, 1, f"lone-{scenario.provider}")
    host.reset()
    clock = BenchClock()
    enqueued = clock()
    _, reports = run_storm(scenario, storm, host=host, dynamodb=dynamodb, table=table, batch_size=100, clock=clock)
    purged_at = min(
        (at for at, report in reports if any(f.purged for f in report.run.coalescing.flushes)), default=math.inf
    )
    seconds = purged_at - enqueued
    bound = WINDOW_SECONDS + BATCHING_WINDOW_SECONDS
    return {
        "scenario": scenario.name,
        "time_to_purge_seconds": round(seconds, 2),
        "bound_seconds": bound,
        "within_bound": seconds <= bound,
        "lost": lost_targets(storm.expected, host.stats(scenario.provider).purged),
    }


def table(runs: Sequence[Run]) -> str:
    header = (
        f"{'scenario':<16} {'size':>6} {'batch':>5} {'batches':>7} {'calls':>5} {'targets':>7} "
        f"{'min':>7} {'per-batch':>11} {'x min':>5} {'lost':>4} {'windows':>7} {'bench s':>7} {'wall s':>6}"
    )
    lines = [header]
    for run in runs:
        ratio = max(run.calls / run.minimum_calls, run.targets_sent / run.minimum_targets)
        lines.append(
            f"{run.scenario:<16} {run.size:>6} {run.batch_size:>5} {run.batches:>7} {run.calls:>5} "
            f"{run.targets_sent:>7} {f'{run.minimum_calls}/{run.minimum_targets}':>7} "
            f"{f'{run.per_batch_calls}/{run.per_batch_targets}':>11} {ratio:>5.2f} {run.lost:>4} "
            f"{run.window_purges:>7} {run.bench_seconds:>7} {run.wall_seconds:>6}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 uploads instead of 10,000")
    options = parser.parse_args(argv)
    use_local_aws()
    from cdnpurge_local.stack import LocalStack

    size = 1000 if options.quick else 10_000
    runs: list[Run] = []
    lone: list[dict[str, Any]] = []
    with CdnHost(LIMITS) as host, LocalStack(bucket_name=BUCKET) as stack:
        dynamodb, table_name = stack.client("dynamodb"), stack.resources.table_name
        for number, scenario in enumerate(SCENARIOS):
            for batch_size in (100, 1000):
                run = measure_storm(
                    scenario,
                    size,
                    batch_size,
                    host=host,
                    dynamodb=dynamodb,
                    table=table_name,
                    run=f"c{number}{batch_size}",
                )
                runs.append(run)
                print(table([run]).splitlines()[-1], flush=True)
            lone.append(lone_change(scenario, host=host, dynamodb=dynamodb, table=table_name))
            print(f"lone change: {lone[-1]}", flush=True)
    print(f"\n{table(runs)}\n")
    for run in runs:
        verdict = "met" if run.within_twice_the_minimum and run.lost == 0 else "MISSED"
        print(f"{run.scenario} BatchSize {run.batch_size}: within 2x the minimum, 0 lost: {verdict}")
    for item in lone:
        verdict = "met" if item["within_bound"] and item["lost"] == 0 else "MISSED"
        print(
            f"{item['scenario']} lone change purged after {item['time_to_purge_seconds']} s "
            f"(bound {item['bound_seconds']} s = window + batching window): {verdict}"
        )
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "coalesce_seconds": WINDOW_SECONDS,
            "batching_window_seconds": BATCHING_WINDOW_SECONDS,
            "concurrency": CONCURRENCY,
            "limits": {name: asdict(limit) for name, limit in LIMITS.items()},
        },
        "runs": [asdict(run) for run in runs],
        "lone_change": lone,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"coalescing-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
