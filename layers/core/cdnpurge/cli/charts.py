"""Pictures of a run: a saved benchmark or demo run (JSON) drawn as charts beside it.

`make bench` draws its storm run after writing it, `cdnpurge report RUN` draws any saved run, and the
demo saves its rounds in the same shape (`cdnpurge_local.demo_run`). Three charts, each drawn only when
the run holds what it needs:

- `<run>.calls.png`: provider calls per storm for cdnpurge, the naive purger and the theoretical minimum,
  on a log scale (a naive purger makes hundreds of times the calls: a linear axis would hide cdnpurge);
- `<run>.wall.png`: wall time per storm and purger against the rate-limit minimum (log scale);
- `<run>.throughput.png`: planner throughput, every repeat's decode + translate + plan / json.loads ratio
  against the < 3x target.

matplotlib is imported on first use only: it is an optional dependency (`pip install 'cdnpurge[charts]'`)
that the Lambda layer never ships, and nothing else in the package needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdnpurge.cli.output import chart_text, terminal_text
from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.nesting import nesting_problem

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
INSTALL_HINT = "pip install 'matplotlib>=3.10' (in a checkout: pip install -e '.[charts]')"
# The planner's target: decode + translate + plan in less than this many times json.loads of the envelope.
THROUGHPUT_TARGET = 3.0
_LEDGERS = {"dynamodb-local": "DynamoDB Local ledger", "memory": "in-memory ledger"}
_COLOURS = {"cdnpurge": "#1f77b4", "naive": "#d62728", "minimum": "#7f7f7f"}
# Reproducible files (committed beside the results): no timestamps or tool versions in them (`_METADATA`,
# and a fixed `svg.hashsalt` in `render_run`); SVG text kept as text so it stays searchable.
_METADATA: dict[str, dict[str, str | None]] = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


class RunFileError(CdnpurgeError):
    """A run file that cannot be read or is not a saved run; the message names the file and the problem."""


class ChartsUnavailableError(CdnpurgeError):
    """matplotlib is not installed."""


# A run file is input: its numbers finite and within what any run could measure, its texts short and drawn
# as the text they are (`cdnpurge.cli.output.chart_text`), its lists bounded.
_RUN_CONFIG: Final = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, str_max_length=200)
MAX_RUN_FILE_BYTES: Final = 50 * 1024 * 1024
_MAX_COUNT: Final = 10**12  # events, calls
_MAX_SECONDS: Final = 10**7  # about four months
_MAX_ROWS: Final = 10_000


class RunRow(BaseModel):
    """One storm (or demo round) through one purger: what the charts need of a bench `Row`."""

    model_config = _RUN_CONFIG

    scenario: str
    size: int = Field(ge=0, le=_MAX_COUNT)
    purger: str
    ledger: str = "-"
    calls: int = Field(ge=0, le=_MAX_COUNT)
    minimum: int | None = Field(default=None, ge=0, le=_MAX_COUNT)
    per_batch_minimum: int | None = Field(default=None, ge=0, le=_MAX_COUNT)
    wall_seconds: float = Field(ge=0, le=_MAX_SECONDS)
    min_seconds: float | None = Field(default=None, ge=0, le=_MAX_SECONDS)
    escalated: bool = False

    @field_validator("scenario", "purger", "ledger")
    @classmethod
    def _drawable(cls, text: str) -> str:
        return chart_text(text)

    @property
    def storm(self) -> str:
        """The storm's label: scenario and size (a run with escalation on is a storm of its own)."""
        return f"{self.scenario}, {self.size:,} events" + (" (escalated)" if self.escalated else "")

    @property
    def series(self) -> str:
        """Who purged, and through which ledger where a storm ran with more than one."""
        ledger = _LEDGERS.get(self.ledger)
        return f"{self.purger}, {ledger}" if ledger else self.purger


class ThroughputFigures(BaseModel):
    """One scenario's planner throughput (`bench.planner`): every repeat's ratio, and the median's."""

    model_config = _RUN_CONFIG

    ratios: list[Annotated[float, Field(ge=0, le=_MAX_SECONDS)]] = Field(min_length=1, max_length=_MAX_ROWS)
    ratio: float = Field(ge=0, le=_MAX_SECONDS)
    ratio_to_full_parse: float | None = Field(default=None, ge=0, le=_MAX_SECONDS)


class RunDocument(BaseModel):
    """A saved run: its rows, and the planner's throughput when the run measured it (bench runs do)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, str_max_length=200)

    when: str | None = None
    runs: list[RunRow] = Field(min_length=1, max_length=_MAX_ROWS)
    planner_throughput: dict[str, ThroughputFigures] = Field(default_factory=dict, max_length=100)

    @field_validator("planner_throughput", mode="before")
    @classmethod
    def _scenarios_only(cls, value: Any) -> Any:
        """The bench stores the batch size (`records`) beside the scenarios' figures: keep the scenarios."""
        if isinstance(value, dict):
            return {chart_text(str(name)): figures for name, figures in value.items() if isinstance(figures, dict)}
        return value


def read_run(path: Path) -> RunDocument:
    """The run saved at `path`, or RunFileError naming the file and the first problem in one line."""
    try:
        if path.stat().st_size > MAX_RUN_FILE_BYTES:
            raise RunFileError(f"{path}: over {MAX_RUN_FILE_BYTES // 2**20} MiB: not a saved run")
        text = path.read_text(encoding="utf-8")
        problem = nesting_problem(text)
        if problem:
            raise RunFileError(f"{path}: not a saved run: it {problem}")
        document = json.loads(text)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise RunFileError(f"{path}: not JSON: {terminal_text(str(exc), 200)}") from exc
    try:
        return RunDocument.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RunFileError(f"{path}: not a saved run: {terminal_text(where, 200)}: {first['msg']}{more}") from exc


def render_run(path: Path, *, formats: Sequence[str] = ("png",), out_dir: Path | None = None) -> list[Path]:
    """Draw the run saved at `path`; write `<stem>.<chart>.<format>` beside it (or in `out_dir`).

    Returns the files written. RunFileError for a file that is no run, ChartsUnavailableError without
    matplotlib (checked first: a missing library is the more useful thing to hear about).
    """
    figure_class = _figure_class()
    run = read_run(path)
    directory = out_dir or path.parent
    directory.mkdir(parents=True, exist_ok=True)
    title = _title(path, run.when)
    written: list[Path] = []
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cdnpurge", "font.size": 9}):
        for chart, draw in (("calls", _draw_calls), ("wall", _draw_wall), ("throughput", _draw_throughput)):
            figure = draw(figure_class, run, title)
            if figure is None:
                continue
            for extension in formats:
                target = directory / f"{path.stem}.{chart}.{extension}"
                figure.savefig(target, format=extension, metadata=_METADATA[extension], dpi=110)
                written.append(target)
    return written


def _title(path: Path, when: str | None) -> str:
    """The file's name, and when the run was made unless the name says it (`storm-20261126T144126Z`)."""
    compact = "" if when is None else when.replace("-", "").replace(":", "")[:15]
    return chart_text(path.stem if not compact or compact in path.stem else f"{path.stem}, {when}")


def _figure_class() -> type[Figure]:
    """matplotlib's Figure (drawn with Agg whatever the environment says: no display, no pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ChartsUnavailableError(f"charts need matplotlib, which is not installed: {INSTALL_HINT}") from exc
    return Figure


@dataclass(frozen=True)
class _Bar:
    series: str
    value: float
    colour: str
    hatch: str = ""


def _storms(rows: Iterable[RunRow]) -> dict[str, list[RunRow]]:
    """Rows by storm label, in the order the run met them."""
    storms: dict[str, list[RunRow]] = {}
    for row in rows:
        storms.setdefault(row.storm, []).append(row)
    return storms


def _draw_calls(figure_class: type[Figure], run: RunDocument, title: str) -> Figure:
    bars: dict[str, list[_Bar]] = {}
    for storm, rows in _storms(run.runs).items():
        by_purger: dict[str, int] = {}
        for row in rows:  # several cdnpurge rows (one per ledger): the most calls, never the flattering one
            by_purger[row.purger] = max(by_purger.get(row.purger, 0), row.calls)
        bars[storm] = [_Bar(purger, calls, _colour(purger)) for purger, calls in by_purger.items()]
        minimum = next((row.minimum for row in rows if row.minimum is not None), None)
        if minimum is not None:
            bars[storm].append(_Bar("minimum", minimum, _COLOURS["minimum"], "//"))
    figure, axes = _bar_figure(figure_class, bars, value_format="{:,.0f}")
    axes.set_xlabel("provider calls, log scale (throttled calls included; 0 shown as text)")
    _finish(figure, axes, f"Calls per storm: {title}")
    return figure


def _draw_wall(figure_class: type[Figure], run: RunDocument, title: str) -> Figure:
    bars: dict[str, list[_Bar]] = {}
    minimums: dict[str, float] = {}
    for storm, rows in _storms(run.runs).items():
        bars[storm] = [_Bar(row.series, row.wall_seconds, _colour(row.purger, row.ledger)) for row in rows]
        floor = max((row.min_seconds or 0.0 for row in rows), default=0.0)
        if floor > 0:
            minimums[storm] = floor
    figure, axes = _bar_figure(figure_class, bars, value_format="{:,.2f} s")
    if minimums:
        positions = {storm: index for index, storm in enumerate(bars)}
        axes.scatter(
            list(minimums.values()),
            [positions[storm] for storm in minimums],
            marker="|",
            s=400,
            linewidths=2.5,
            color="black",
            zorder=3,
            label="rate-limit minimum: (minimum calls - burst) / rate",
        )
    axes.set_xlabel("wall time in seconds, log scale (first event to last answer)")
    _finish(figure, axes, f"Wall time per storm: {title}")
    return figure


def _draw_throughput(figure_class: type[Figure], run: RunDocument, title: str) -> Figure | None:
    figures = run.planner_throughput
    if not figures:
        return None
    names = list(figures)
    figure = figure_class(figsize=(8, 1.2 + 0.55 * len(names)), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(names)))
    ratios = [figures[name].ratios for name in names]
    axes.boxplot(ratios, positions=positions, orientation="horizontal", widths=0.5)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    full = [(figures[name].ratio_to_full_parse, index) for index, name in enumerate(names)]
    shown = [(ratio, index) for ratio, index in full if ratio is not None]
    if shown:
        axes.scatter(
            [ratio for ratio, _ in shown],
            [index for _, index in shown],
            marker="D",
            color=_COLOURS["cdnpurge"],
            zorder=3,
            label="median, against parsing the envelope and every body",
        )
    axes.axvline(THROUGHPUT_TARGET, color=_COLOURS["naive"], linestyle="--", label=f"target: < {THROUGHPUT_TARGET:g}x")
    for index, name in enumerate(names):
        axes.annotate(
            f"median {figures[name].ratio:.2f}x",
            (max(figures[name].ratios), index),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axes.set_xlim(0, max(THROUGHPUT_TARGET, *(max(f.ratios) for f in figures.values())) * 1.25)
    axes.set_xlabel("CPU time of decode + translate + plan / json.loads of the SQS event (every repeat)")
    _finish(figure, axes, f"Planner throughput: {title}")
    return figure


def _bar_figure(figure_class: type[Figure], bars: dict[str, list[_Bar]], *, value_format: str) -> tuple[Figure, Axes]:
    """Horizontal grouped bars, one group per storm (top to bottom in run order), log scale, values written
    at the bars' ends; a zero has no place on a log axis, so it is written where its bar would start."""
    from matplotlib.ticker import FuncFormatter

    series = list(dict.fromkeys(bar.series for group in bars.values() for bar in group))
    height = 0.8 / max(len(series), 1)
    inches = max(2.6, 1.4 + 0.22 * sum(len(group) for group in bars.values()))
    figure = figure_class(figsize=(9, inches), layout="constrained")
    axes = figure.add_subplot()
    axes.set_xscale("log")
    smallest = min((bar.value for group in bars.values() for bar in group if bar.value > 0), default=1.0)
    floor = smallest / 2
    labelled: set[str] = set()
    for index, group in enumerate(bars.values()):
        offset = -(len(group) - 1) * height / 2
        for position, bar in enumerate(group):
            y = index + offset + position * height
            label = None if bar.series in labelled else bar.series
            labelled.add(bar.series)
            axes.barh(y, bar.value, height=height, color=bar.colour, hatch=bar.hatch, label=label)
            axes.annotate(
                value_format.format(bar.value),
                (max(bar.value, floor), y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
    axes.set_yticks(range(len(bars)), list(bars))
    axes.invert_yaxis()
    largest = max((bar.value for group in bars.values() for bar in group), default=1.0)
    axes.set_xlim(floor, max(largest, floor * 10) * 4)
    axes.grid(axis="x", which="major", alpha=0.3)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,g}"))
    return figure, axes


def _finish(figure: Figure, axes: Axes, title: str) -> None:
    """Title over the whole figure and the legend below it: neither may cover a bar or a label."""
    figure.suptitle(title, fontsize=11)
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8, frameon=False)


def _colour(purger: str, ledger: str = "-") -> str:
    """cdnpurge blue (lighter with the in-memory ledger), the naive purger red, anything else grey."""
    if purger == "cdnpurge" and ledger == "memory":
        return "#9ecae1"
    return _COLOURS.get(purger, _COLOURS["minimum"])
