"""Pictures of a run: `cdnpurge report RUN` and `cdnpurge.cli.charts` draw saved bench and demo runs.

The files are checked for what a reader relies on: a PNG is a PNG, an SVG names every storm (text is kept
as text), a chart the run has no figures for is not drawn, and the same run gives the same bytes (the
charts are committed beside the results). Bad input ends in one line and exit status 2.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdnpurge.cli.charts import read_run, render_run
from cdnpurge.cli.main import main
from cdnpurge_local.demo_run import DemoRound, save_demo_run

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bench_run() -> dict[str, Any]:
    """A storm run as `bench.storm` writes it (fields the charts do not use included: they are ignored)."""

    def row(scenario: str, size: int, purger: str, ledger: str, *, calls: int, wall: float) -> dict[str, Any]:
        return {
            "scenario": scenario,
            "size": size,
            "purger": purger,
            "ledger": ledger,
            "calls": calls,
            "accepted": calls,
            "minimum": 40 if scenario == "fastly-keys" else 1000,
            "per_batch_minimum": None,
            "throttled": 0,
            "lost": 0,
            "wall_seconds": wall,
            "cdn_seconds": wall,
            "min_seconds": 0.075 if scenario == "fastly-keys" else 2.475,
            "escalated": False,
            "detail": {"invocations": 1},
        }

    return {
        "when": "2026-11-26T14:41:26+00:00",
        "planner_throughput": {
            "records": 10000,
            "fastly-keys": {"ratios": [1.4, 2.3, 2.8], "ratio": 2.3, "ratio_to_full_parse": 1.08, "requests": 40},
        },
        "runs": [
            row("fastly-keys", 10_000, "cdnpurge", "dynamodb-local", calls=40, wall=21.7),
            row("fastly-keys", 10_000, "cdnpurge", "memory", calls=40, wall=0.8),
            row("fastly-keys", 10_000, "naive", "-", calls=16_212, wall=23.6),
            row("fastly-urls", 1_000, "cdnpurge", "dynamodb-local", calls=1_000, wall=3.5),
            row("fastly-urls", 1_000, "naive", "-", calls=1_547, wall=4.4),
        ],
    }


def saved(tmp_path: Path, document: dict[str, Any], name: str = "storm-20261126T144126Z.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def svg_text(path: Path) -> str:
    """The words of an SVG's <text> elements (matplotlib escapes, and splits nothing with fonttype none)."""
    return " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text(encoding="utf-8")))


def test_a_bench_run_is_drawn_as_three_charts_beside_it(tmp_path: Path) -> None:
    # Given: a storm run saved by the bench
    run = saved(tmp_path, bench_run())

    # When: it is drawn as PNG and SVG
    written = render_run(run, formats=("png", "svg"))

    # Then: calls, wall time and planner throughput, in both formats, next to the JSON
    stem = "storm-20261126T144126Z"
    assert sorted(path.name for path in written) == sorted(
        f"{stem}.{chart}.{extension}" for chart in ("calls", "wall", "throughput") for extension in ("png", "svg")
    )
    assert all(path.parent == tmp_path for path in written)
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_SIGNATURE)
    calls = svg_text(tmp_path / f"{stem}.calls.svg")
    assert "fastly-keys, 10,000 events" in calls and "fastly-urls, 1,000 events" in calls
    assert all(word in calls for word in ("cdnpurge", "naive", "minimum", "16,212"))
    wall = svg_text(tmp_path / f"{stem}.wall.svg")
    assert "cdnpurge, in-memory ledger" in wall and "rate-limit minimum" in wall
    assert "target: &lt; 3x" in svg_text(tmp_path / f"{stem}.throughput.svg")


def test_the_same_run_gives_the_same_bytes(tmp_path: Path) -> None:
    run = saved(tmp_path, bench_run())
    first = {path: path.read_bytes() for path in render_run(run, formats=("png", "svg"))}
    again = {path: path.read_bytes() for path in render_run(run, formats=("png", "svg"))}
    assert first == again


def test_a_saved_demo_run_is_drawn_the_same_way_without_a_throughput_chart(tmp_path: Path) -> None:
    # Given: the demo's two rounds, saved by its --save hook
    rounds = [
        DemoRound("round 1: new changes", 7, 9, 2.5),
        DemoRound("round 2: delivered again", 7, 0, 1.25),
    ]
    run = save_demo_run(tmp_path / "runs" / "demo.json", rounds, when=datetime(2026, 11, 29, 12, tzinfo=UTC))

    # When: `cdnpurge report` draws it as SVG into another directory
    out = tmp_path / "charts"
    listing = io.StringIO()
    status = main(["report", str(run), "--format", "svg", "--out-dir", str(out)], out=listing)

    # Then: calls and wall time are drawn (the demo measures no planner throughput), every round named
    assert status == 0
    assert sorted(path.name for path in out.iterdir()) == ["demo.calls.svg", "demo.wall.svg"]
    assert listing.getvalue().splitlines() == [f"written {out / 'demo.calls.svg'}", f"written {out / 'demo.wall.svg'}"]
    calls = svg_text(out / "demo.calls.svg")
    assert "round 1: new changes, 7 events" in calls and "round 2: delivered again, 7 events" in calls
    assert read_run(run).runs[1].calls == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read: No such file or directory"),
        ("{not json", "not JSON: "),
        ('{"runs": []}', "not a saved run: runs: List should have at least 1 item"),
        ('{"runs": [{"scenario": "x", "size": 1, "purger": "naive"}]}', "not a saved run: runs.0.calls: Field"),
        ("[1, 2]", "not a saved run: document: Input should be a valid dictionary"),
    ],
)
def test_a_bad_run_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    run = tmp_path / "run.json"
    if content is not None:
        run.write_text(content, encoding="utf-8")

    assert main(["report", str(run)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"cdnpurge: {run}: {problem}")
    assert list(tmp_path.iterdir()) == ([run] if content is not None else [])


def test_without_matplotlib_report_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what an environment without it raises
    assert main(["report", str(saved(tmp_path, bench_run()))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "matplotlib, which is not installed: pip install 'matplotlib>=3.10'" in err and "'.[charts]'" in err


def test_the_cli_does_not_load_matplotlib_until_a_chart_is_drawn() -> None:
    script = "import sys, cdnpurge.cli.main; print(any(name.split('.')[0] == 'matplotlib' for name in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_the_latest_committed_bench_run_has_its_charts_and_the_bench_readme_shows_them() -> None:
    latest = max(RESULTS.glob("storm-*.json"))
    assert read_run(latest).runs  # every committed run stays readable by `cdnpurge report`
    charts = [latest.with_name(f"{latest.stem}.{chart}.png") for chart in ("calls", "wall", "throughput")]
    assert [chart.name for chart in charts if not chart.is_file()] == []
    bench_readme = (RESULTS.parent / "README.md").read_text()
    for chart in charts:
        assert f"](results/{chart.name})" in bench_readme
