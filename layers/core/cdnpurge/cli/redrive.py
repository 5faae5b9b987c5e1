"""`cdnpurge redrive`: move dead-lettered messages back to the purge queue, each with its reason."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from cdnpurge.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Commands, Context, add_command, positive
from cdnpurge.cli.output import external
from cdnpurge.cli.progress import Progress
from cdnpurge.cli.status import StatusError, parse_duration
from cdnpurge.runtime.deadletter import ERROR_ATTRIBUTE, FAILURE_ATTRIBUTE, describe_dead_letter, kept_attributes

REDRIVE_EXAMPLES = """\
examples (the URLs are the stack outputs DeadLetterQueueUrl and PurgeQueueUrl):
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --dry-run     list what would move, and why
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --max 10      move the first ten back
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --provider fastly --since 2h --dry-run
                                      what a two-hour Fastly outage dead-lettered, and nothing else
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --reason retries-exhausted

Filters (all given must match; the others stay in the DLQ, untouched): --provider NAME a reason of the form
"NAME: ..."; --reason TEXT the failure class (permanent, retries-exhausted, verification-failed) or any text
of the reasons (case-insensitive); --since AGE dead-lettered within AGE. --max counts matching messages.

Each message is printed with the reason the purge function attached (its cdnpurge-error attribute);
messages SQS moved by itself have none. Moved messages keep their body and their own attributes; the
cdnpurge-* ones are dropped. A message is sent to the queue before it is deleted from the DLQ, so a
crash can only duplicate it, and the idempotency table absorbs the duplicate. Fix the cause first
(configuration, credentials, allow-list), or the same messages come straight back.
"""
# Seconds a message listed by --dry-run stays hidden while the listing pages through the DLQ.
DRY_RUN_HOLD_SECONDS = 60
# A progress line on stderr every this many dead letters (or every 10 s) on long redrive runs.
REDRIVE_PROGRESS_EVERY = 500
# One run looks at most at this many dead letters (each is held, and remembered to be seen once): a queue of a
# million keeps neither the run's memory nor its hold on messages unbounded; the next run takes the rest.
MAX_LOOKED_AT = 10_000


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "redrive",
        run,
        help="move dead-lettered messages back to the purge queue",
        description="Move messages from the dead-letter queue back to the purge queue, printing each one "
        "with the reason it was dead-lettered.",
        epilog=REDRIVE_EXAMPLES,
    )
    parser.add_argument("--dlq-url", required=True, help="dead-letter queue URL (stack output DeadLetterQueueUrl)")
    parser.add_argument("--queue-url", required=True, help="purge queue URL (stack output PurgeQueueUrl)")
    parser.add_argument("--dry-run", action="store_true", help="list what would move, move nothing")
    parser.add_argument("--max", type=positive, default=None, metavar="N", help="move at most N messages")
    parser.add_argument(
        "--wait-seconds", type=int, default=1, choices=range(21), metavar="S", help="long-poll wait (0-20, default 1)"
    )
    parser.add_argument("--provider", metavar="NAME", help="only messages with a reason from this provider")
    parser.add_argument("--reason", metavar="TEXT", help="only this failure class, or reasons containing TEXT")
    parser.add_argument("--since", type=_age, metavar="AGE", help="only messages dead-lettered within AGE (15m, 2h)")


def _age(text: str) -> int:
    try:
        return parse_duration(text)
    except StatusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a redrive moves: all, or those matching every filter given."""

    provider: str | None = None
    reason: str | None = None
    since_ms: int | None = None

    @property
    def filtering(self) -> bool:
        return (self.provider, self.reason, self.since_ms) != (None, None, None)

    def matches(self, message: dict[str, Any]) -> bool:
        attributes = message.get("MessageAttributes", {})
        reasons = str(attributes.get(ERROR_ATTRIBUTE, {}).get("StringValue", ""))
        failure = str(attributes.get(FAILURE_ATTRIBUTE, {}).get("StringValue", ""))
        if self.provider is not None and not any(
            part.strip().startswith(f"{self.provider}:") for part in reasons.split("; ")
        ):
            return False
        wanted = None if self.reason is None else self.reason.lower()
        if wanted is not None and wanted != failure.lower() and wanted not in reasons.lower():
            return False
        return self.since_ms is None or _sent_ms(message) >= self.since_ms

    def describe(self) -> str:
        given = [
            *([f"provider {self.provider}"] if self.provider else []),
            *([f"reason {self.reason!r}"] if self.reason else []),
            *(["dead-lettered since " + _iso_ms(self.since_ms)] if self.since_ms is not None else []),
        ]
        return ", ".join(given) or "every message"


def run(args: argparse.Namespace, context: Context) -> int:
    if args.dlq_url == args.queue_url:
        print("cdnpurge: --dlq-url and --queue-url must be different queues", file=sys.stderr)
        return EXIT_USAGE
    sqs, out = context.client("sqs"), context.out
    selection = Selection(
        provider=args.provider,
        reason=args.reason,
        since_ms=None if args.since is None else int((context.wall_clock() - args.since) * 1000),
    )
    mode = "dry run: " if args.dry_run else ""
    print(f"{mode}redrive {args.dlq_url} -> {args.queue_url} ({selection.describe()})", file=out)
    listed = moved = failed = returned = skipped = 0
    held: list[str] = []
    seen: set[str] = set()
    started_ms = int(context.wall_clock() * 1000)
    progress = Progress(sys.stderr, "redrive", clock=context.clock, every=REDRIVE_PROGRESS_EVERY)

    def counts() -> str:
        return f"{listed} listed" if args.dry_run else f"{listed} listed, {moved} moved, {failed} failed"

    try:
        while (args.max is None or listed < args.max) and len(seen) < MAX_LOOKED_AT:
            wanted = 10 if args.max is None or selection.filtering else min(10, args.max - listed)
            messages = sqs.receive_message(
                QueueUrl=args.dlq_url,
                MaxNumberOfMessages=wanted,
                MessageAttributeNames=["All"],
                AttributeNames=["SentTimestamp"],
                # Held while the run pages on: what it lists (dry run) or passes over (filters) is not seen twice.
                VisibilityTimeout=DRY_RUN_HOLD_SECONDS if args.dry_run or selection.filtering else 30,
                WaitTimeSeconds=args.wait_seconds,
            ).get("Messages", [])
            # Stop at what this run already saw, or what was dead-lettered again since it began (a cause
            # not fixed yet): otherwise the same messages would circle between the queues for ever.
            fresh = [m for m in messages if m["MessageId"] not in seen and _sent_ms(m) < started_ms]
            held.extend(m["ReceiptHandle"] for m in messages if m not in fresh)
            returned += sum(1 for m in messages if m["MessageId"] not in seen and m not in fresh)
            if not fresh:
                break
            for message in fresh:
                if len(seen) >= MAX_LOOKED_AT:
                    held.append(message["ReceiptHandle"])
                    continue
                seen.add(message["MessageId"])
                if not selection.matches(message):
                    skipped += 1
                    held.append(message["ReceiptHandle"])
                    continue
                if args.max is not None and listed >= args.max:
                    held.append(message["ReceiptHandle"])
                    continue
                listed += 1
                shown = external(describe_dead_letter(message))  # the reason is the message's: one line, bounded
                print(f"  {'would move' if args.dry_run else 'moving'} {shown}", file=out)
                if args.dry_run:
                    held.append(message["ReceiptHandle"])
                elif _move(sqs, message, args, out):
                    moved += 1
                else:
                    failed += 1
                progress.update(listed, counts)
    finally:
        for receipt in held:  # listed by a dry run, or left for the next run: visible again at once
            sqs.change_message_visibility(QueueUrl=args.dlq_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    progress.finish(counts())
    _left(out, selection, stopped=len(seen) >= MAX_LOOKED_AT, skipped=skipped, returned=returned)
    if args.dry_run:
        print(f"dry run: {listed} message(s) would move; nothing was sent", file=out)
        return EXIT_OK
    print(f"done: {moved} message(s) moved back to the queue, {failed} failed", file=out)
    return EXIT_FAILED if failed else EXIT_OK


def _left(out: Any, selection: Selection, *, stopped: bool, skipped: int, returned: int) -> None:
    """What the run left in the dead-letter queue, and why."""
    if stopped:
        print(f"stopped after looking at {MAX_LOOKED_AT} dead letters: run again for the rest", file=out)
    if skipped:
        print(f"left {skipped} message(s) not matching ({selection.describe()}) in the dead-letter queue", file=out)
    if returned:
        print(
            f"left {returned} message(s) dead-lettered after this run began: fix their cause, then run again", file=out
        )


def _move(sqs: Any, message: dict[str, Any], args: argparse.Namespace, out: Any) -> bool:
    """Send `message` back to the queue, then delete it from the DLQ; a failure is reported and the message
    stays a dead letter."""
    try:
        kept = kept_attributes(message)
        sqs.send_message(
            QueueUrl=args.queue_url, MessageBody=message["Body"], **({"MessageAttributes": kept} if kept else {})
        )
        sqs.delete_message(QueueUrl=args.dlq_url, ReceiptHandle=message["ReceiptHandle"])
    except Exception as exc:  # report and carry on: the message stays in the DLQ
        print(f"    not moved: {type(exc).__name__}: {external(exc)}", file=out)
        return False
    return True


def _iso_ms(at_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_ms / 1000))


def _sent_ms(message: dict[str, Any]) -> int:
    """When the message entered the DLQ (milliseconds since the epoch); unknown counts as long ago."""
    try:
        return int(message.get("Attributes", {}).get("SentTimestamp", 0))
    except (TypeError, ValueError):
        return 0
