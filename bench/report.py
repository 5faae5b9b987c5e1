"""The report: one row per run (calls, minimum, 429s, lost targets, wall time), the table, and the
benchmark's targets judged against this run's figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cdn_host import CdnHost, Limit, ProviderStats
from bench.scenarios import LIMITS, Scenario, Storm, lost_targets

MIN_TIME_SHOWN = 1.0


@dataclass
class Row:
    scenario: str
    size: int
    purger: str
    ledger: str
    calls: int
    accepted: int
    minimum: int
    per_batch_minimum: int | None
    throttled: int
    lost: int
    wall_seconds: float
    cdn_seconds: float
    min_seconds: float
    escalated: bool = False
    # CloudFront: the items of its accepted invalidations, which AWS bills one path each (tags and wildcards too)
    billed_paths: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_ratio(self) -> float:
        return self.calls / self.minimum if self.minimum else 0.0

    @property
    def time_ratio(self) -> float | None:
        return self.wall_seconds / self.min_seconds if self.min_seconds >= MIN_TIME_SHOWN else None


def min_seconds(calls: int, limit: Limit) -> float:
    return max(0, calls - limit.burst) / limit.rate


def measure(host: CdnHost, scenario: Scenario, storm: Storm, *, purger: str, ledger: str, wall: float) -> Row:
    stats: ProviderStats = host.stats(scenario.provider)
    minimum = storm.minimum(storm.expected)
    cdn = (stats.last - stats.first) if stats.first is not None and stats.last is not None else 0.0
    return Row(
        scenario=scenario.name,
        size=len(storm.records),
        purger=purger,
        ledger=ledger,
        calls=stats.calls,
        accepted=stats.accepted,
        minimum=minimum,
        per_batch_minimum=None,
        throttled=stats.throttled,
        lost=lost_targets(storm.expected, stats.purged),
        wall_seconds=round(wall, 3),
        cdn_seconds=round(cdn, 3),
        min_seconds=round(min_seconds(minimum, LIMITS[scenario.provider]), 3),
        escalated=scenario.escalated,
        billed_paths=len(stats.purged) if scenario.provider == "cloudfront" else None,
    )


def target_summary(rows: Sequence[Row], throughput: dict[str, Any]) -> list[str]:
    """The benchmark's targets against this run's figures: met or missed, never hidden."""
    ours = [row for row in rows if row.purger == "cdnpurge" and not row.escalated]
    worst_calls = max(ours, key=lambda row: row.calls / (row.per_batch_minimum or row.minimum))
    ratios = {name: figures for name, figures in throughput.items() if isinstance(figures, dict)}
    worst_plan = max(ratios.items(), key=lambda item: item[1]["ratio"])
    lost = sum(row.lost for row in rows if row.purger == "cdnpurge")

    def verdict(ok: bool) -> str:
        return "met   " if ok else "MISSED"

    calls_ratio = worst_calls.calls / (worst_calls.per_batch_minimum or worst_calls.minimum)
    lines = [
        "targets (cdnpurge runs, escalation off):",
        f"  {verdict(lost == 0)} targets lost = 0: {lost}",
        f"  {verdict(calls_ratio <= 1.0)} calls / minimum (per batch) = 1.00: worst {calls_ratio:.2f} "
        f"({worst_calls.scenario} {worst_calls.size}, {worst_calls.throttled} of the calls answered 429)",
    ]
    for ledger in ("dynamodb-local", "memory"):
        timed = [(row.time_ratio, row) for row in ours if row.ledger == ledger and row.time_ratio is not None]
        if timed:
            ratio, worst = max(timed, key=lambda pair: pair[0])
            lines.append(
                f"  {verdict(ratio <= 1.2)} wall / rate-limit minimum <= 1.2, ledger {ledger}: worst "
                f"{ratio:.2f} ({worst.scenario} {worst.size})"
            )
    name, figures = worst_plan
    lines.append(
        f"  {verdict(figures['ratio'] < 3)} decode + plan < 3x json.loads: worst {figures['ratio']:.2f}x ({name}); "
        f"{figures['ratio_to_full_parse']:.2f}x of parsing the envelope and every body"
    )
    return lines


COLUMNS = (
    ("scenario", "<18"),
    ("size", ">6"),
    ("purger", "<9"),
    ("ledger", "<7"),
    ("calls", ">6"),
    ("min", ">5"),
    ("calls/min", ">9"),
    ("429s", ">6"),
    ("lost", ">5"),
    ("wall s", ">7"),
    ("min s", ">6"),
    ("wall/min", ">8"),
)


def table(rows: list[Row]) -> str:
    def line(values: Sequence[str], notes: str = "") -> str:
        cells = [f"{value:{align}}" for value, (_, align) in zip(values, COLUMNS, strict=True)]
        return (" ".join(cells) + ("  " + notes if notes else "")).rstrip()

    header = line([name for name, _ in COLUMNS], "notes")
    lines = [header, "-" * len(header)]
    for row in rows:
        notes = []
        if row.per_batch_minimum is not None and row.per_batch_minimum != row.minimum:
            notes.append(f"per-batch min {row.per_batch_minimum}")
        if row.billed_paths is not None:
            notes.append(f"billed {row.billed_paths} paths")
        if row.escalated:
            notes.append(f"escalated ({row.detail.get('escalations', 0)})")
        if row.detail.get("dropped_events"):
            notes.append(f"{row.detail['dropped_events']} events dropped")
        if row.detail.get("redelivered"):
            notes.append(f"{row.detail['redelivered']} redelivered")
        values = [
            row.scenario,
            str(row.size),
            row.purger,
            {"dynamodb-local": "ddb", "memory": "memory"}.get(row.ledger, "-"),
            str(row.calls),
            str(row.minimum),
            f"{row.calls_ratio:.2f}",
            str(row.throttled),
            str(row.lost),
            f"{row.wall_seconds:.2f}",
            f"{row.min_seconds:.2f}",
            f"{row.time_ratio:.2f}" if row.time_ratio is not None else "-",
        ]
        lines.append(line(values, ", ".join(notes)))
    return "\n".join(lines)
