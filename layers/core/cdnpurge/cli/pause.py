"""`cdnpurge pause` / `cdnpurge resume`: stop and restart purging during a provider incident, with the reason kept.

Pausing disables the function's SQS event source mapping: Lambda stops polling, changes wait in the purge
queue (kept for its MessageRetentionPeriod, 4 days) instead of failing five times each and filling the
dead-letter queue. The reason, who paused and when go into the SSM parameter `/cdnpurge/<stack>/paused`
(written before the mapping is disabled, so a pause is never unexplained); `doctor` and `status --stack`
show it. Resuming enables the mapping, then deletes the record. Both are idempotent.

Lambda documents the change as asynchronous: UpdateEventSourceMapping answers `Disabling` (or `Enabling`)
and the poller stops within seconds; batches already running finish.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from typing import Any, Final

from cdnpurge.cli.command import EXIT_OK, EXIT_USAGE, Commands, Context, add_command
from cdnpurge.cli.deployed import (
    FUNCTION,
    QUEUE,
    REASON_MAX_CHARS,
    PauseRecord,
    StackReadError,
    clear_pause,
    client_in,
    event_source_mapping,
    queue_arn,
    read_pause,
    read_stack,
    write_pause,
)

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

PAUSE_EXAMPLES = """\
examples:
  cdnpurge pause --stack cdnpurge --reason "Fastly API outage, status.fastly.com INC-123"
  cdnpurge resume --stack cdnpurge

While paused, changes wait in the purge queue (4 days' retention) and nothing reaches the dead-letter queue;
the queue-age alarm fires after OldestMessageAlarmSeconds, as it should. Needs lambda:ListEventSourceMappings,
lambda:UpdateEventSourceMapping, ssm:PutParameter/GetParameter/DeleteParameter on /cdnpurge/<stack>/paused,
cloudformation:DescribeStacks and ListStackResources. Exit status: 0 done (or already so), 2 usage or AWS error.
"""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "pause",
        run,
        help="stop purging (disable the queue's event source mapping), recording why",
        description="Disable PurgeFunction's SQS event source mapping so changes wait in the purge queue, and "
        "record the reason (SSM parameter /cdnpurge/<stack>/paused), shown by `doctor` and `status --stack`.",
        epilog=PAUSE_EXAMPLES,
    )
    parser.add_argument("--stack", required=True, help="the stack's name (as deployed with sam deploy)")
    parser.add_argument(
        "--reason", required=True, help=f"why, for whoever looks next (one line, <= {REASON_MAX_CHARS})"
    )
    parser.add_argument("--by", default=None, help="who paused (default: the local user name)")


def checked_text(text: str, option: str) -> str:
    """`option`'s value as recorded: one line, not empty, at most REASON_MAX_CHARS (a ValueError says which)."""
    value = text.strip()
    if not value:
        raise ValueError(f"{option} is empty: say it for whoever looks next")
    if _CONTROL.search(value):
        raise ValueError(f"{option} must be one line of text (no newlines or control characters)")
    if len(value) > REASON_MAX_CHARS:
        raise ValueError(f"{option} is {len(value)} characters; keep it to {REASON_MAX_CHARS}")
    return value


def run(args: argparse.Namespace, context: Context) -> int:
    try:
        reason = checked_text(args.reason, "--reason")
        by = checked_text(args.by or _user(), "--by")
    except ValueError as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    record = PauseRecord(reason, by, _iso(context.wall_clock()))
    return switch(args.stack, context, enabled=False, record=record)


def switch(stack_name: str, context: Context, *, enabled: bool, record: PauseRecord | None) -> int:
    """Enable or disable the purge queue's event source mapping of `stack_name`; pausing keeps `record`,
    resuming deletes it. `cdnpurge resume` runs it too."""
    out = context.out
    try:
        stack = read_stack(client_in(context, "cloudformation"), stack_name)
        function = stack.physical(FUNCTION)
        sqs, lambda_client, ssm = (client_in(context, s, stack.region) for s in ("sqs", "lambda", "ssm"))
        mapping = event_source_mapping(lambda_client, function, queue_arn(sqs, stack.physical(QUEUE)))
    except StackReadError as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    before = str(mapping.get("State", "?"))
    if record is not None:
        write_pause(ssm, stack.name, record)
    already = before in (("Enabled", "Enabling") if enabled else ("Disabled", "Disabling"))
    state = before
    if not already:
        state = str(lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled).get("State", "?"))
    if enabled:
        clear_pause(ssm, stack.name)
        print(f"{stack.name}: purging {'was already running' if already else 'resumed'} (mapping {state})", file=out)
        waiting = sqs.get_queue_attributes(
            QueueUrl=stack.physical(QUEUE), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        print(f"  {waiting} change message(s) waiting in the purge queue are purged now", file=out)
    else:
        assert record is not None
        print(f"{stack.name}: purging {'was already paused' if already else 'paused'} (mapping {state})", file=out)
        print(f"  {record.describe()}", file=out)
        print(f"  resume with: cdnpurge resume --stack {stack.name}", file=out)
    return EXIT_OK


def show_pause(ssm: Any, stack_name: str) -> str | None:
    """The line `status --stack` prints when purging is paused."""
    record = read_pause(ssm, stack_name)
    return None if record is None else f"purging is PAUSED: {record.describe()}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
