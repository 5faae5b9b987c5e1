"""`cdnpurge report`: draw a saved bench or demo run as charts (matplotlib is loaded only to draw)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdnpurge.cli.charts import FORMATS, ChartsUnavailableError, RunFileError, render_run
from cdnpurge.cli.command import EXIT_OK, EXIT_USAGE, Commands, Context, add_command

REPORT_EXAMPLES = """\
examples:
  cdnpurge report bench/results/storm-20261206T035521Z.json       storm-...{calls,wall,throughput}.png
  cdnpurge report local/runs/demo.json -f svg -f png                 both formats

Needs matplotlib, which the Lambda layer never ships: pip install -e '.[charts]' in a checkout.
Exit status: 0 charts written, 2 usage (no such file, not a saved run, matplotlib missing).
"""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "report",
        run,
        help="draw a saved bench or demo run as charts",
        description="Draw a run saved by `make bench` (bench/results/storm-*.json) or by the demo "
        "(`make demo` saves local/runs/demo.json) as charts written beside it: calls per storm for "
        "cdnpurge, the naive purger and the minimum; wall time against the rate-limit minimum; planner "
        "throughput (bench runs).",
        epilog=REPORT_EXAMPLES,
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="a saved run (JSON)")
    parser.add_argument(
        "-f", "--format", action="append", choices=FORMATS, help="file format (repeatable; default png)"
    )
    parser.add_argument("-o", "--out-dir", type=Path, help="write the charts here (default: beside RUN)")


def run(args: argparse.Namespace, context: Context) -> int:
    try:
        written = render_run(args.run, formats=args.format or ("png",), out_dir=args.out_dir)
    except (RunFileError, ChartsUnavailableError) as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"written {path}", file=context.out)
    return EXIT_OK
