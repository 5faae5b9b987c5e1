"""Verification measured: time to fresh per provider, probes per change, and its cost in the storms.

    python -m bench.verification            # 200 changes per provider; storms of 1,000
    python -m bench.verification --quick    # 50 changes per provider; storms of 100

Time to fresh: the real `PurgeService` (providers, executor, planner, verification) against the purge
fakes (`FakeCDN`) and the caching edge (`Edge`) in front of one in-memory origin, on a manual clock (no
sleeping: each check message runs when the clock reaches the delay it was sent with). Every change is a
new version of an object each edge has cached; TimeToFresh runs from the S3 event to the check that saw
every URL of the change serve the new version. Judged against each provider's modelled propagation
(`PROPAGATION`: what the fakes model, near-instant for Fastly and Cloudflare, Akamai's `estimatedSeconds`,
Medianova's job delay) plus one verification interval.

Cost in the storms: `bench.storm`'s harness (the real `PurgeService`, the rate-limited fake CDN in its own
process, the in-memory ledger) runs the same storm with and without a `verify:` block, the checks going
to a real queue on moto server (SQS); reports wall time with over without (median of
`REPEATS` alternating pairs; on a shared 2-core machine this ratio is mostly noise for sub-second storms),
verification's share of the handler's thread CPU time (the stable measure of what it adds), and the purge
calls the CDN accepted in each (must be equal: verification never purges in the storm itself; the checks
run later).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench import use_local_aws
from bench.cdn_host import CdnHost
from bench.event_source import run_cdnpurge
from bench.scenarios import BUCKET, HOST, LIMITS, SCENARIOS, make_storm
from cdnpurge.core.config import parse_config
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.service import PurgeService, Queues, Verification, VerificationWiring
from cdnpurge.runtime.verification.origin import S3Versions
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.fakecdn.akamai import AkamaiBehaviour
from cdnpurge_local.fakecdn.clock import ManualClock
from cdnpurge_local.fakecdn.cloudflare import CloudflareBehaviour
from cdnpurge_local.fakecdn.edge import Edge, EdgeServer
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.origin import MemoryOrigin
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.memory_ledger import MemoryLedger
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DEFAULT_REGION, MotoServer

RESULTS = Path(__file__).parent / "results"
START = 1_764_000_000.0
INTERVAL = 5  # verify.interval_seconds for every provider in the time-to-fresh run
PROPAGATION = {"fastly": 0.0, "cloudflare": 0.0, "akamai": 5.0, "medianova": 30.0}
COST_SCENARIOS = ("fastly-urls", "medianova-paths")
REPEATS = 3
FASTLY_SERVICE, FASTLY_TOKEN = "BenchService0123", "bench-fastly-token-not-real"
CF_TOKEN, CF_ZONE = "bench-cf-token-not-real", "023e105f4ecef8ad9ca31a8372d0c353"
MN_TOKEN, MN_ORG, MN_RESOURCE = "bench-mn-token-not-real", "org-bench", "res-bench"
AK_CLIENT, AK_SECRET, AK_ACCESS = "akab-bench-client", "bench-secret-not-real-AAAA=", "akab-bench-access"


class DelayedQueue:
    """SQS SendMessage with DelaySeconds on a manual clock: `due()` hands back messages in delivery order."""

    def __init__(self, clock: Any, queue_url: str) -> None:
        self.clock = clock
        self.queue_url = queue_url
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self.dead_letters: list[str] = []

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        DelaySeconds: int = 0,
        MessageAttributes: Any = None,
    ) -> dict[str, str]:
        if QueueUrl == self.queue_url:
            heapq.heappush(self._heap, (self.clock() + DelaySeconds, next(self._order), MessageBody))
        else:
            self.dead_letters.append(MessageBody)
        return {"MessageId": str(len(self._heap))}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """SendMessageBatch: each entry as one SendMessage."""
        for entry in Entries:
            self.send_message(
                QueueUrl=QueueUrl, MessageBody=entry["MessageBody"], DelaySeconds=entry.get("DelaySeconds", 0)
            )
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    def due(self) -> list[str]:
        """Every message visible at the earliest delivery time (the clock moved there)."""
        if not self._heap:
            return []
        when = self._heap[0][0]
        if when > self.clock():
            self.clock.advance(when - self.clock())
        bodies = []
        while self._heap and self._heap[0][0] <= when:
            bodies.append(heapq.heappop(self._heap)[2])
        return bodies


@dataclass
class FreshRow:
    provider: str
    changes: int
    fresh: int
    p50: float
    p99: float
    propagation: float
    goal: float
    probes_per_change: float
    repurged: int
    failed: int

    @property
    def met(self) -> bool:
        return self.fresh == self.changes and self.p99 <= self.goal


def _config(endpoints: dict[str, str], edges: dict[str, str]) -> str:
    def verify(name: str) -> str:
        return f'verify: {{probe_endpoint: "{edges[name]}", interval_seconds: {INTERVAL}, deadline_seconds: 300}}'

    return f"""
providers:
  - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, endpoint: {endpoints["fastly"]}, hosts: [{HOST}],
     credentials: {{token: {{value: {FASTLY_TOKEN}}}}}, {verify("fastly")}}}
  - {{name: cloudflare, kind: cloudflare, zone_id: {CF_ZONE}, endpoint: {endpoints["cloudflare"]}, hosts: [{HOST}],
     credentials: {{token: {{value: {CF_TOKEN}}}}}, {verify("cloudflare")}}}
  - {{name: medianova, kind: medianova, organization_uuid: {MN_ORG}, resource_uuid: {MN_RESOURCE},
     endpoint: {endpoints["medianova"]}, hosts: [{HOST}], credentials: {{token: {{value: {MN_TOKEN}}}}},
     {verify("medianova")}}}
  - {{name: akamai, kind: akamai, host: akab-bench.purge.akamaiapis.net, endpoint: {endpoints["akamai"]},
     hosts: [{HOST}], credentials: {{client_token: {{value: {AK_CLIENT}}}, client_secret: {{value: "{AK_SECRET}"}},
     access_token: {{value: {AK_ACCESS}}}}}, {verify("akamai")}}}
rules:
  - {{match: "pages/{{name}}.html", paths: ["/pages/{{name}}.html"], keys: ["page-{{name}}"]}}
allow_inline_secrets: true
"""


def time_to_fresh(changes: int) -> list[FreshRow]:
    """Every provider purges `changes` new versions (one SQS batch); checks run on the manual clock."""

    clock = ManualClock(START)
    origin = MemoryOrigin(clock)
    behaviours = [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE),
        CloudflareBehaviour(token=CF_TOKEN, zone_id=CF_ZONE),
        MedianovaBehaviour(
            token=MN_TOKEN,
            organization_uuid=MN_ORG,
            resource_uuid=MN_RESOURCE,
            completion_delay=PROPAGATION["medianova"],
            clock=clock,
        ),
        AkamaiBehaviour(
            client_token=AK_CLIENT,
            client_secret=AK_SECRET,
            access_token=AK_ACCESS,
            estimated_seconds=int(PROPAGATION["akamai"]),
        ),
    ]
    edges = {name: Edge(name, origin, clock, hosts=frozenset({HOST})) for name in PROPAGATION}
    keys = [f"pages/p{i:05d}.html" for i in range(changes)]
    with ExitStack() as running:
        cdn = running.enter_context(FakeCDN(behaviours))
        servers = {name: running.enter_context(EdgeServer(edge)) for name, edge in edges.items()}
        for edge in edges.values():
            edge.listen(cdn)
        config = parse_config(
            _config({name: cdn.endpoint(name) for name in PROPAGATION}, {n: s.endpoint for n, s in servers.items()})
        )
        purgers = build_purgers(config.providers, environ={}, sleep=lambda _seconds: None)
        queue = DelayedQueue(clock, "bench-purge-queue")
        service = PurgeService(
            config=config,
            providers=purgers.providers,
            ledger=MemoryLedger(),
            executor=purgers.executor,
            queues=Queues(dead_letter_url="bench-dlq", purge_url=queue.queue_url),
            secrets=purgers.secrets,
            sqs_factory=lambda: queue,
        )
        verification = Verification(service, VerificationWiring(origin=origin, clock=clock))
        service.verification = verification
        with httpx.Client() as viewer:
            for key in keys:
                origin.put(key, b"version 1 " + key.encode())
                for server in servers.values():
                    address, headers = server.address(f"https://{HOST}/{key}")
                    viewer.get(address, headers=headers)
        when = datetime.fromtimestamp(clock(), UTC).isoformat()
        for key in keys:
            origin.put(key, b"version 2 " + key.encode())
        records = [s3_record(BUCKET, key, event_time=when) for key in keys]
        service.handle(sqs_event(s3_notification(*records)))
        seconds, probes, repurged, failed = _run_checks(service, queue)
        verification.verifier.close()
    rows = []
    for name, propagation in PROPAGATION.items():
        values = sorted(seconds[name]) or [float("nan")]
        rows.append(
            FreshRow(
                provider=name,
                changes=changes,
                fresh=len(seconds[name]),
                p50=statistics.median(values),
                p99=values[min(len(values) - 1, int(0.99 * len(values)))],
                propagation=propagation,
                goal=propagation + INTERVAL,
                probes_per_change=probes[name] / changes,
                repurged=repurged[name],
                failed=failed[name],
            )
        )
    return rows


@dataclass
class CostRow:
    scenario: str
    size: int
    wall_without: list[float] = field(default_factory=list)
    wall_with: list[float] = field(default_factory=list)
    calls_without: int = 0
    calls_with: int = 0
    checks_sent: int = 0
    sqs_calls: int = 0
    cpu_share: list[float] = field(default_factory=list)  # verification's share of the handler's CPU time
    cpu_ms: list[float] = field(default_factory=list)  # verification's thread CPU time, milliseconds

    @property
    def ratio(self) -> float:
        return statistics.median(w / o for w, o in zip(self.wall_with, self.wall_without, strict=True))


def verification_cost(size: int) -> list[CostRow]:
    """Each cost scenario `REPEATS` times without and with verification, alternating."""
    rows = []
    with CdnHost(LIMITS) as host, MotoServer() as moto:
        session = boto3.session.Session()
        sqs = local_client(session, "sqs", endpoint=moto.endpoint, region=DEFAULT_REGION)
        queue_url = sqs.create_queue(QueueName="bench-purge-queue")["QueueUrl"]
        s3 = local_client(session, "s3", endpoint=moto.endpoint, region=DEFAULT_REGION)
        for name in COST_SCENARIOS:
            scenario = SCENARIOS[name]
            row = CostRow(name, size)
            for repeat in range(REPEATS):
                for verify in (False, True):
                    storm = make_storm(scenario, size, f"v{repeat}{int(verify)}{name[:2]}")
                    host.reset()
                    counting = CountingSqs(sqs)
                    wall, log, _per_batch = run_cdnpurge(
                        scenario,
                        storm,
                        endpoints=host.endpoints,
                        dynamodb=None,
                        table="unused",
                        ledger="memory",
                        batch_size=scenario.batch_size,
                        concurrency=2,
                        verify=(counting, queue_url, S3Versions(s3)) if verify else None,
                    )
                    calls = host.stats(scenario.provider).accepted
                    if verify:
                        row.wall_with.append(wall)
                        row.calls_with = calls
                        row.checks_sent, row.sqs_calls = counting.sent, counting.calls
                        row.cpu_share.append(log.verification_cpu / log.handler_cpu if log.handler_cpu else 0.0)
                        row.cpu_ms.append(1000 * log.verification_cpu)
                    else:
                        row.wall_without.append(wall)
                        row.calls_without = calls
            rows.append(row)
    return rows


class CountingSqs:
    """The SQS client, counting the check messages sent through it and the calls (the storm's only new ones)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.sent = 0
        self.calls = 0  # SendMessageBatch calls

    def send_message(self, **request: Any) -> Any:
        self.sent += 1
        return self._sqs.send_message(**request)

    def send_message_batch(self, **request: Any) -> Any:
        self.sent += len(request["Entries"])
        self.calls += 1
        return self._sqs.send_message_batch(**request)


def _run_checks(
    service: Any, queue: DelayedQueue
) -> tuple[dict[str, list[float]], dict[str, int], dict[str, int], dict[str, int]]:
    """Deliver every check when it is due until none is left; per provider: seconds to fresh, probes,
    URLs purged again, changes failed."""
    seconds: dict[str, list[float]] = {name: [] for name in PROPAGATION}
    probes = dict.fromkeys(PROPAGATION, 0)
    repurged = dict.fromkeys(PROPAGATION, 0)
    failed = dict.fromkeys(PROPAGATION, 0)
    while bodies := queue.due():
        report = service.handle(sqs_event(*bodies))
        for name, tally in report.verification.tallies.items():
            seconds[name] += tally.time_to_fresh
            probes[name] += tally.probes
            repurged[name] += tally.repurged
            failed[name] += tally.failed
    return seconds, probes, repurged, failed


def fresh_table(rows: Sequence[FreshRow]) -> str:
    lines = [
        f"{'provider':<11} {'changes':>7} {'fresh':>5} {'p50 s':>6} {'p99 s':>6} {'propagation':>11} "
        f"{'goal <=':>7} {'probes/change':>13} {'repurged':>8} {'failed':>6}  met"
    ]
    lines += [
        f"{r.provider:<11} {r.changes:>7} {r.fresh:>5} {r.p50:>6.1f} {r.p99:>6.1f} {r.propagation:>11.1f} "
        f"{r.goal:>7.1f} {r.probes_per_change:>13.2f} {r.repurged:>8} {r.failed:>6}  {'yes' if r.met else 'NO'}"
        for r in rows
    ]
    return "\n".join(lines)


def cost_table(rows: Sequence[CostRow]) -> str:
    lines = [
        f"{'scenario':<16} {'size':>5} {'wall without s':>14} {'wall with s':>11} {'with/without':>12} "
        f"{'purges accepted':>15} {'checks (SQS calls)':>18} {'verify CPU ms (share)':>21}"
    ]
    for r in rows:
        cpu = f"{statistics.median(r.cpu_ms):.0f} ({statistics.median(r.cpu_share):.0%})"
        lines.append(
            f"{r.scenario:<16} {r.size:>5} {statistics.median(r.wall_without):>14.2f} "
            f"{statistics.median(r.wall_with):>11.2f} {r.ratio:>11.3f}x {f'{r.calls_without} = {r.calls_with}':>15} "
            f"{f'{r.checks_sent} ({r.sqs_calls})':>18} {cpu:>21}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 changes per provider, storms of 100")
    options = parser.parse_args(argv)
    use_local_aws()
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    started = time.monotonic()
    changes, storm_size = (50, 100) if options.quick else (200, 1000)
    print(f"time to fresh: {changes} changes per provider, verify interval {INTERVAL} s, manual clock", flush=True)
    fresh = time_to_fresh(changes)
    print(fresh_table(fresh), flush=True)
    print(f"\nverification cost in the storms ({storm_size} changes, {REPEATS} pairs, in-memory ledger)", flush=True)
    cost = verification_cost(storm_size)
    print(cost_table(cost))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "interval_seconds": INTERVAL,
        "time_to_fresh": [{**asdict(r), "met": r.met} for r in fresh],
        "cost": [{**asdict(r), "ratio": round(r.ratio, 3)} for r in cost],
        "total_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"verification-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {out}\ntotal {report['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
