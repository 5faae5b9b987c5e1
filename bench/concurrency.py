"""One rate per provider account: N parallel invocations of the real handler against one account-wide limit.

    python -m bench.concurrency          # N = 1, 2, 4, 8; static share against the shared meter (a few minutes)

Every run drives the real `PurgeService` (the in-process event source of `bench.event_source`, its ledger and
the shared rate meter on DynamoDB Local, provisioned from template.yaml) against the fake CDN in its own
process, whose token bucket is the account's: every invocation draws on it. Each case runs twice in one go,
`static` (each invocation paces at 1/N of the rate: the fallback when the meter is unreachable) and `meter`
(every call reserves its slot in the DynamoDB meter), so the ratios compare like with like:

- `storm`: a Fastly-like account (one URL per call, `LIMITS["fastly"]`), batches of 10, N invocations busy;
- `oversubscribed`: the same storm with 2N invocations (a second stack on the same account) on an N share;
- `operator-cli`: the storm with an operator's `cdnpurge purge` of 50 URLs alongside (with `--table` under
  the meter; alone at the provider's rate without it, as before);
- `burst-1`: a Medianova-like account (burst 1), one path per batch, N invocations;
- `trickle`: one batch at a time (one invocation busy, N - 1 idle): the share of the account's rate used;
- `latency-100ms`: the trickle with every answer 100 ms late, one invocation: the rate, not the round
  trip, must be the limit.

Per run: provider calls / the minimum (the fewest calls the batches as delivered allow), 429s, targets lost
(must be 0), the rate used (calls after the burst per second of CDN time / the account's rate), and for the
meter: DynamoDB write requests per provider call, lost races, and the mean time a reservation took (the
meter's added latency per reservation; a reservation leases the slots of several calls).
Results: `bench/results/concurrency-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import use_local_aws
from bench.cdn_host import FASTLY_TOKEN, CdnHost, Limit
from bench.event_source import run_cdnpurge
from bench.scenarios import BUCKET, HOST, SCENARIOS, Scenario, config_text, lost_targets, make_storm

RESULTS = Path(__file__).parent / "results"
# Scaled-down account limits (the real ones take minutes a run): Fastly-like rate 40/s burst 10; a burst-1
# account at 10/s (Medianova, Gotipath).
LIMITS = {
    "fastly": Limit(rate=40.0, burst=10),
    "medianova": Limit(rate=10.0, burst=1),
    "cloudfront": Limit(rate=40.0, burst=5),
}
STORM_URLS = 200
BURST_ONE_PATHS = 60
TRICKLE_URLS = 100
OPERATOR_URLS = 50
COUNTS = (1, 2, 4, 8)
TARGETS = {
    "latency_rate_used": 0.85,
    "trickle_rate_used": 0.9,
    "storm_calls_ratio": 1.02,
    "burst1_n8_calls_ratio": 1.05,
    "writes_per_call": 1.1,
}


@dataclass
class Case:
    name: str
    scenario: Scenario
    size: int
    batch_size: int
    oversubscribed: bool = False
    latency: float = 0.0  # seconds the provider takes to answer
    counts: tuple[int, ...] = COUNTS
    operator_urls: int = 0  # URLs an operator's `cdnpurge purge` sends to the same account meanwhile


CASES = (
    Case("storm", SCENARIOS["fastly-urls"], STORM_URLS, 10),
    Case("oversubscribed", SCENARIOS["fastly-urls"], STORM_URLS, 10, oversubscribed=True),
    Case("operator-cli", SCENARIOS["fastly-urls"], STORM_URLS, 10, operator_urls=OPERATOR_URLS),
    Case("burst-1", SCENARIOS["medianova-paths"], BURST_ONE_PATHS, 1),
    Case("trickle", SCENARIOS["fastly-urls"], TRICKLE_URLS, TRICKLE_URLS),
    Case("latency-100ms", SCENARIOS["fastly-urls"], TRICKLE_URLS, TRICKLE_URLS, latency=0.1, counts=(1,)),
)


class TimedMeter:
    """A meter that adds up how long its reservations took (the latency the meter adds to a call), and keeps
    every slot it handed out (`time.monotonic()`, the fake CDN's clock) for the per-call figures."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reserved = 0
        self.seconds = 0.0
        self.slots: list[float] = []
        self._lock = threading.Lock()

    def reserve(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            reservation = self.inner.reserve(*args, **kwargs)
        finally:
            with self._lock:
                self.reserved += 1
                self.seconds += time.perf_counter() - started
        now = time.monotonic()
        with self._lock:
            self.slots.extend(now + wait for wait in reservation.waits)
        return reservation

    def throttled(self, *args: Any, **kwargs: Any) -> None:
        self.inner.throttled(*args, **kwargs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def operator(
    case: Case, scenario: Scenario, mode: str, *, host: CdnHost, table: str, run: str, folder: Path
) -> tuple[Any, set[str]]:
    """An operator's `cdnpurge purge` of `case.operator_urls` URLs at the account of `scenario` (its rate
    scope that of the run), on a thread started now: (the thread, what it owes the CDN in the fake's
    notation)."""
    from cdnpurge.cli.main import main as cdnpurge

    config = folder / f"{run}.yaml"
    config.write_text(config_text(scenario, host.endpoints, limits=LIMITS))
    urls = [f"https://{HOST}/ops/{run}-{number}" for number in range(case.operator_urls)]
    argv = ["purge", "-c", str(config), "-p", scenario.provider, *(f"--url={url}" for url in urls)]
    thread = threading.Thread(
        target=cdnpurge, args=([*argv, "--table", table] if mode == "meter" else argv,), kwargs={"out": io.StringIO()}
    )
    thread.start()
    return thread, {f"url:{url.removeprefix('https://')} (hard)" for url in urls}


def run_case(
    case: Case, count: int, mode: str, *, host: CdnHost, dynamodb: Any, table: str, run: str, folder: Path
) -> dict[str, Any]:
    from cdnpurge.runtime.meter_dynamodb import DynamoDBMeter

    scenario = replace(case.scenario, settings=f"{case.scenario.settings}, rate_scope: {run}")
    storm = make_storm(scenario, case.size, run)
    meters: list[TimedMeter] = []

    def meter() -> Any:
        timed = TimedMeter(DynamoDBMeter(dynamodb, table))
        meters.append(timed)
        return timed

    host.reset()
    host.latency(scenario.provider, case.latency)
    alongside, owed = (
        operator(case, scenario, mode, host=host, table=table, run=run, folder=folder)
        if case.operator_urls
        else (None, set())
    )
    with _quiet():
        wall, log, minimum = run_cdnpurge(
            scenario,
            storm,
            endpoints=host.endpoints,
            dynamodb=dynamodb,
            table=table,
            ledger="memory",
            batch_size=case.batch_size,
            concurrency=count,
            limits=LIMITS,
            meter=meter if mode == "meter" else None,
            instances=2 * count if case.oversubscribed else count,
        )
    if alongside is not None:
        alongside.join()
    stats = host.stats(scenario.provider)
    minimum += len(owed)
    limit = LIMITS[scenario.provider]
    cdn = (stats.last - stats.first) if stats.first is not None and stats.last is not None else 0.0
    rate_used = max(0, stats.accepted - limit.burst) / cdn / limit.rate if cdn else 0.0
    writes = sum(m.inner.writes for m in meters)
    conflicts = sum(m.inner.conflicts for m in meters)
    reserved = sum(m.reserved for m in meters)
    return {
        "case": case.name,
        "invocations": count,
        "running": 2 * count if case.oversubscribed else count,
        "mode": mode,
        "calls": stats.calls,
        "minimum": minimum,
        "calls_ratio": round(stats.calls / minimum, 3),
        "throttled": stats.throttled,
        "lost": lost_targets(storm.expected | owed, stats.purged),
        "rate_used": round(rate_used, 3),
        "wall_seconds": round(wall, 2),
        "cdn_seconds": round(cdn, 2),
        "meter_writes_per_call": round(writes / stats.calls, 3) if meters and stats.calls else None,
        "meter_conflicts": conflicts if meters else None,
        "meter_ms_per_reservation": round(1000 * sum(m.seconds for m in meters) / reserved, 2) if reserved else None,
        "redelivered": log.redelivered,
        "dead_lettered": log.dead_lettered,
        "per_call": per_call([slot for m in meters for slot in m.slots], stats.arrivals) if meters else None,
    }


def per_call(slots: Sequence[float], arrivals: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """How late calls reached the CDN after their slot (each arrival against the latest slot handed out
    before it), and for each throttled call its own lateness, the previous call's and the gap between them:
    whether a 429 followed a late call (lateness) or came on time (a slot handed out wrongly)."""
    ordered = sorted(slots)
    late: list[float] = []
    for at, _throttled in arrivals:
        index = bisect.bisect_right(ordered, at)
        late.append(at - ordered[index - 1] if index else 0.0)
    if not late:
        return {}
    ranked = sorted(late)
    throttled = [
        {
            "late_ms": round(1000 * late[n], 1),
            "previous_late_ms": round(1000 * late[n - 1], 1),
            "gap_ms": round(1000 * (arrivals[n][0] - arrivals[n - 1][0]), 1),
        }
        for n, (_at, was_throttled) in enumerate(arrivals)
        if was_throttled and n
    ]
    return {
        "late_ms_p50": round(1000 * ranked[len(ranked) // 2], 1),
        "late_ms_p95": round(1000 * ranked[int(0.95 * (len(ranked) - 1))], 1),
        "late_ms_max": round(1000 * ranked[-1], 1),
        "slots_unused": max(0, len(slots) - len(arrivals)),
        "throttled_calls": throttled,
    }


def verdicts(rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    metered = [r for r in rows if r["mode"] == "meter"]
    storms = [r for r in metered if r["case"] in ("storm", "oversubscribed", "operator-cli")]
    burst1 = [r for r in metered if r["case"] == "burst-1" and r["invocations"] == max(COUNTS)]
    writes = [r["meter_writes_per_call"] for r in metered if r["meter_writes_per_call"] is not None]
    return {
        "trickle uses >= 0.9 of the rate at every N": all(
            r["rate_used"] >= TARGETS["trickle_rate_used"] for r in metered if r["case"] == "trickle"
        ),
        "storms, 2N over-subscription and an operator alongside <= 1.02x the minimum, 0 lost": all(
            r["calls_ratio"] <= TARGETS["storm_calls_ratio"] and r["lost"] == 0 for r in storms
        ),
        "burst-1 storm at N = 8 <= 1.05x": all(r["calls_ratio"] <= TARGETS["burst1_n8_calls_ratio"] for r in burst1),
        "one invocation at 100 ms latency uses >= 0.85 of the rate": all(
            r["rate_used"] >= TARGETS["latency_rate_used"] for r in metered if r["case"] == "latency-100ms"
        ),
        "meter <= 1.1 writes per provider call": all(w <= TARGETS["writes_per_call"] for w in writes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="invocation counts N")
    parser.add_argument("--case", action="append", choices=[c.name for c in CASES], help="only these cases")
    parser.add_argument("--mode", action="append", choices=["static", "meter"], help="only these modes")
    options = parser.parse_args(argv)
    use_local_aws()
    from cdnpurge_local.stack import LocalStack

    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with (
        CdnHost(LIMITS) as host,
        LocalStack(bucket_name=BUCKET) as stack,
        tempfile.TemporaryDirectory(prefix="cdnpurge-bench-") as folder,
    ):
        dynamodb = stack.client("dynamodb")
        table = stack.resources.table_name
        # The operator's CLI builds its own clients from the environment, as on an operator's machine.
        os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=stack.endpoint_for("dynamodb"), BENCH_FASTLY_TOKEN=FASTLY_TOKEN)
        number = 0
        for case in CASES:
            if options.case and case.name not in options.case:
                continue
            for count in [n for n in options.counts if n in case.counts]:
                for mode in options.mode or ("static", "meter"):
                    number += 1
                    row = run_case(
                        case,
                        count,
                        mode,
                        host=host,
                        dynamodb=dynamodb,
                        table=table,
                        run=f"c{number}",
                        folder=Path(folder),
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    judged = verdicts(rows)
    for what, ok in judged.items():
        print(f"{'met' if ok else 'MISSED'}: {what}")
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "limits": {name: asdict(limit) for name, limit in LIMITS.items()},
        "runs": rows,
        "targets": judged,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"concurrency-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
