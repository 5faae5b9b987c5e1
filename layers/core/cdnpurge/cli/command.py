"""What every `cdnpurge` command shares: exit statuses, the clients and clocks it runs with, common options.

A command is one module in this package with a `register(commands)` function: it adds its parser with
`add_command` (which records the function that runs it) and its options. `cdnpurge.cli.main.COMMANDS` lists
the modules' `register` functions in the order `cdnpurge --help` shows them; adding a command is one module
and one line there. A handler takes the parsed arguments and a `Context` and returns the exit status.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeAlias

from cdnpurge.core.config import Config, parse_config, read_config_text

# What `add_subparsers()` returns: argparse gives its type no public name.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Context:
    """Where a command writes and what it calls: tests inject clients and clocks, a real run gets boto3's."""

    out: TextIO
    sqs: Any = None
    s3: Any = None
    dynamodb: Any = None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time

    def client(self, service: str) -> Any:
        """The injected client for `service` ("sqs", "s3", "dynamodb"), or boto3's default one.

        boto3 is imported here, not at module level, so `cdnpurge --help` and `plan` without `--table`
        never pay for it."""
        injected = getattr(self, service)
        if injected is not None:
            return injected
        import boto3

        return boto3.client(service)  # type: ignore[call-overload]


Handler: TypeAlias = Callable[[argparse.Namespace, Context], int]


def add_command(
    commands: Commands,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add the parser of one command; an epilog (examples, output, exit status) is printed as written."""
    if epilog is None:
        parser = commands.add_parser(name, help=help, description=description)
    else:
        parser = commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    parser.set_defaults(handler=handler)
    return parser


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")


def load_config(args: argparse.Namespace, *, require_credentials: bool) -> tuple[Config, str]:
    """The `--config` file parsed, and its text; `ConfigError`/`CredentialError` end the run with exit 2
    (`cdnpurge.cli.main.main` prints them). `validate` and `purge` judge a configuration as the service
    would, credentials included; `plan` touches no credential."""
    text = read_config_text(str(args.config))
    return parse_config(text, source=str(args.config), require_credentials=require_credentials), text


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (`--max`, `--limit`)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
