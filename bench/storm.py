"""Purge storms: cdnpurge against a naive per-event purger, on the same rate-limited fake CDNs, in one run.

    python -m bench.storm            # everything (a few minutes on 2 cores)
    python -m bench.storm --quick    # storms of 100 and 1,000 only

What runs:

- the fake CDN (Fastly, Medianova, and a CloudFront CreateInvalidation fake) in its own process on
  127.0.0.1, every provider rate-limited (`LIMITS`); both purgers meet the same limits;
- cdnpurge: the real `PurgeService` (decode -> translate -> claim -> plan -> execute -> settle), its
  idempotency ledger on DynamoDB Local (provisioned from template.yaml by `LocalStack`), the real provider
  adapters; Lambda's SQS event source is emulated in-process: batches of each scenario's BatchSize (at most
  6 MB, Lambda's payload limit), `CONCURRENCY` invocations at a time (ScalingConfig.MaximumConcurrency),
  each pacing at 1/CONCURRENCY of the provider's rate, records in `batchItemFailures` delivered again;
- the naive purger (`bench.naive`): one call per changed object, 8 invocations in parallel, no pacing,
  Lambda's two asynchronous retries;
- storms of 100, 1,000 and 10,000 S3 changes (EventBridge "Object Created" events, as the deployed wiring
  delivers them) for Fastly surrogate keys, CloudFront paths, Medianova paths and Fastly URLs (one URL
  per call at Fastly: the rate-bound case), a mixed publish-event storm (keys, and paths purged as URLs),
  and one run with prefix escalation switched on (Medianova, marked `escalated`);
- planner throughput: decode + translate + plan of a 10,000-record SQS batch, against json.loads of it.

Per run: provider calls (every request the CDN received, throttled ones included), the theoretical minimum
(every unique target of the storm in the fewest calls the provider's limits allow), calls / minimum, 429s
(CloudFront: `Throttling`), targets lost (never purged; must be 0), wall time (first event handed over to
last purge answered, including decoding and the ledger), and wall / the rate-limit-implied minimum time,
`max(0, minimum - burst) / rate` (shown where that minimum is at least `MIN_TIME_SHOWN` seconds: below, the
storm is not rate-bound and the ratio would only measure fixed costs).

The run is written to `bench/results/storm-<UTC time>.json` and drawn beside it (`cdnpurge.cli.charts`:
`.calls.png`, `.wall.png`, `.throughput.png`); `cdnpurge report RUN` draws a saved run again.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import use_local_aws
from bench.cdn_host import CdnHost
from bench.event_source import MAX_PAYLOAD_BYTES, run_cdnpurge
from bench.naive import NaivePurger
from bench.planner import planner_throughput, throughput_lines
from bench.report import Row, measure, table, target_summary
from bench.scenarios import BATCH_SIZE, BUCKET, LIMITS, SCENARIOS, URL_BATCH_SIZE, make_storm, plan_of_runs
from cdnpurge.cli.charts import render_run

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 2  # the proposed MaximumConcurrency default
NAIVE_CONCURRENCY = 8


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Powertools and botocore may print; the benchmark's output is the table."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="storms of 100 and 1,000 only")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"SQS BatchSize for every scenario (default: {URL_BATCH_SIZE} for Fastly URLs, {BATCH_SIZE} otherwise)",
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="MaximumConcurrency (default 2)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive purger")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    options = parser.parse_args(argv)
    use_local_aws()

    from cdnpurge_local.stack import LocalStack

    started = time.monotonic()
    print("planner throughput (decode + translate + plan vs json.loads, 10,000-record batch) ...", flush=True)
    throughput = planner_throughput()
    print("\n".join(throughput_lines(throughput)))
    rows: list[Row] = []
    with CdnHost(LIMITS) as host, LocalStack(bucket_name=BUCKET) as stack:
        dynamodb = stack.client("dynamodb")
        table_name = stack.resources.table_name
        for number, (name, size, ledgers) in enumerate(plan_of_runs(options.quick)):
            if options.scenario and name not in options.scenario:
                continue
            scenario = SCENARIOS[name]
            for ledger in ledgers:
                storm = make_storm(scenario, size, f"r{number}{ledger[0]}")
                host.reset()
                with _quiet():
                    wall, log, per_batch = run_cdnpurge(
                        scenario,
                        storm,
                        endpoints=host.endpoints,
                        dynamodb=dynamodb,
                        table=table_name,
                        ledger=ledger,
                        batch_size=options.batch_size or scenario.batch_size,
                        concurrency=options.concurrency,
                    )
                row = measure(host, scenario, storm, purger="cdnpurge", ledger=ledger, wall=wall)
                row.per_batch_minimum = per_batch
                row.detail = asdict(log)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
            if options.no_naive or scenario.escalated:
                continue
            storm = make_storm(scenario, size, f"r{number}n")
            host.reset()
            naive = NaivePurger(scenario.provider, host.endpoints[scenario.provider], concurrency=NAIVE_CONCURRENCY)
            with _quiet():
                result = naive.run(storm.naive_events)
            row = measure(host, scenario, storm, purger="naive", ledger="-", wall=result.wall)
            row.detail = asdict(result)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    print(f"\n{table(rows)}\n\n" + "\n".join(target_summary(rows, throughput)))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "settings": {
            "limits": {name: asdict(limit) for name, limit in LIMITS.items()},
            "batch_size": options.batch_size or {name: scenario.batch_size for name, scenario in SCENARIOS.items()},
            "max_payload_bytes": MAX_PAYLOAD_BYTES,
            "concurrency": options.concurrency,
            "naive_concurrency": NAIVE_CONCURRENCY,
            "naive_retry_delays": [1.0, 2.0],
        },
        "planner_throughput": throughput,
        "runs": [
            {**asdict(row), "calls_per_minimum": round(row.calls_ratio, 3), "wall_per_min_time": row.time_ratio}
            for row in rows
        ],
        "total_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"storm-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    for written in (out, *render_run(out)):
        print(f"written {written.relative_to(Path.cwd()) if written.is_relative_to(Path.cwd()) else written}")
    print(f"total {report['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
