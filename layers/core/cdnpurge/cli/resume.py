"""`cdnpurge resume`: restart purging stopped by `cdnpurge pause` (see that module for what both do)."""

from __future__ import annotations

import argparse

from cdnpurge.cli.command import Commands, Context, add_command
from cdnpurge.cli.pause import PAUSE_EXAMPLES, switch


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "resume",
        run,
        help="restart purging paused by `cdnpurge pause`",
        description="Enable PurgeFunction's SQS event source mapping again and delete the pause record; the "
        "changes that waited in the purge queue are purged at once.",
        epilog=PAUSE_EXAMPLES,
    )
    parser.add_argument("--stack", required=True, help="the stack's name")


def run(args: argparse.Namespace, context: Context) -> int:
    return switch(args.stack, context, enabled=True, record=None)
