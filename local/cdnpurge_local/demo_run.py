"""The demo's run, saved in the shape `cdnpurge report` draws (`cdnpurge.cli.charts.RunDocument`).

Each round of the demo is one storm through cdnpurge: the messages delivered, the provider calls they
cost (fake CDN calls and CloudFront invalidations) and the round's wall time. Round 2 delivers the same
messages again and costs no call: the chart shows the idempotency table at work. The demo has no naive
purger and no computed minimum, so those are absent and not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdnpurge.cli.charts import RunDocument, RunRow


@dataclass(frozen=True)
class DemoRound:
    name: str
    messages: int
    calls: int
    wall_seconds: float


def save_demo_run(path: Path, rounds: list[DemoRound], *, when: datetime | None = None) -> Path:
    """Write the demo's rounds to `path` (parents created) as a run `cdnpurge report` can draw."""
    document = RunDocument(
        when=(when or datetime.now(UTC)).isoformat(timespec="seconds"),
        runs=[
            RunRow(
                scenario=round_.name,
                size=round_.messages,
                purger="cdnpurge",
                ledger="dynamodb-local",
                calls=round_.calls,
                wall_seconds=round(round_.wall_seconds, 3),
            )
            for round_ in rounds
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document.model_dump_json(indent=2, exclude_defaults=True) + "\n", encoding="utf-8")
    return path
