"""`cdnpurge`: inspect plans and purge by hand through the same planner and adapters as the Lambda.

cdnpurge validate --config purge.yaml
cdnpurge plan --config purge.yaml --event events/sqs-s3-put.json --format json
cdnpurge purge --config purge.yaml --provider fastly --key article-42 --soft
cdnpurge redrive --dlq-url URL --queue-url URL --dry-run
cdnpurge enable-eventbridge --bucket my-site-content --dry-run
cdnpurge status --bucket my-site-content --key docs/a.html
cdnpurge report bench/results/storm-20261206T035521Z.json
cdnpurge doctor --stack cdnpurge
cdnpurge pause --stack cdnpurge --reason "Fastly outage"; cdnpurge resume --stack cdnpurge
cdnpurge canary --stack cdnpurge

Each command is one module of this package (`cdnpurge.cli.command` says how to write one); this module
holds the top-level parser, the list of commands and the handling every command shares.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from cdnpurge.cli import canary, doctor, eventbridge, pause, plan, purge, redrive, report, resume, status, validate
from cdnpurge.cli.command import EXIT_USAGE, Commands, Context
from cdnpurge.cli.errors import reader_gone
from cdnpurge.cli.output import safe_stream
from cdnpurge.core.config import ConfigError
from cdnpurge.core.credentials import CredentialError
from cdnpurge.runtime.aws_errors import aws_problem

# Every command's `register`, in the order `cdnpurge --help` lists them.
COMMANDS: tuple[Callable[[Commands], None], ...] = (
    validate.register,
    plan.register,
    purge.register,
    redrive.register,
    eventbridge.register,
    status.register,
    report.register,
    doctor.register,
    pause.register,
    resume.register,
    canary.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdnpurge",
        description="Event-driven CDN purge: plan and run purges the way the PurgeFunction Lambda does.",
        epilog="Configuration schema and examples: see docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return parser


def _version() -> str:
    try:
        return version("cdnpurge")
    except PackageNotFoundError:  # the package copied without its metadata (the Lambda layer)
        return "(version unknown: not installed)"


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    sqs: Any = None,
    s3: Any = None,
    dynamodb: Any = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """Run one command. A bad configuration and AWS errors become one line and exit 2; a closed stdout pipe
    ends the run quietly.

    Everything written (the command's `out`, stdout and stderr) goes through `cdnpurge.cli.output.SafeText`:
    text from a CDN, a bucket or a queue reaches the terminal escaped, whichever command prints it.

    `sqs`, `s3`, `dynamodb` (clients) and the clocks are for tests; by default boto3 and the system's."""
    raw = out or sys.stdout
    out = safe_stream(raw)
    context = Context(out=out, sqs=sqs, s3=s3, dynamodb=dynamodb, clock=clock, wall_clock=wall_clock)
    with redirect_stdout(safe_stream(sys.stdout)), redirect_stderr(safe_stream(sys.stderr)):
        return _run(argv, context, raw)


def _run(argv: Sequence[str] | None, context: Context, raw: TextIO) -> int:
    out = context.out
    try:
        args = build_parser().parse_args(argv)
        exit_status: int = args.handler(args, context)
        out.flush()
    except BrokenPipeError:
        return reader_gone(raw)
    except (ConfigError, CredentialError) as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        problem = aws_problem(exc)
        if problem is None:
            raise
        print(f"cdnpurge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return exit_status


if __name__ == "__main__":
    raise SystemExit(main())
