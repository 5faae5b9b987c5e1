"""`cdnpurge redrive`: move dead-lettered messages back to the purge queue, each with its reason."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cdnpurge.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Commands, Context, add_command, positive
from cdnpurge.cli.progress import Progress
from cdnpurge.runtime.deadletter import describe_dead_letter, kept_attributes

REDRIVE_EXAMPLES = """\
examples (the URLs are the stack outputs DeadLetterQueueUrl and PurgeQueueUrl):
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --dry-run     list what would move, and why
  cdnpurge redrive --dlq-url "$DLQ" --queue-url "$QUEUE" --max 10      move the first ten back

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


def run(args: argparse.Namespace, context: Context) -> int:
    if args.dlq_url == args.queue_url:
        print("cdnpurge: --dlq-url and --queue-url must be different queues", file=sys.stderr)
        return EXIT_USAGE
    sqs, out = context.client("sqs"), context.out
    mode = "dry run: " if args.dry_run else ""
    print(f"{mode}redrive {args.dlq_url} -> {args.queue_url}", file=out)
    listed = moved = failed = returned = 0
    held: list[str] = []
    seen: set[str] = set()
    started_ms = int(time.time() * 1000)
    progress = Progress(sys.stderr, "redrive", clock=context.clock, every=REDRIVE_PROGRESS_EVERY)

    def counts() -> str:
        return f"{listed} listed" if args.dry_run else f"{listed} listed, {moved} moved, {failed} failed"

    try:
        while args.max is None or listed < args.max:
            wanted = 10 if args.max is None else min(10, args.max - listed)
            messages = sqs.receive_message(
                QueueUrl=args.dlq_url,
                MaxNumberOfMessages=wanted,
                MessageAttributeNames=["All"],
                AttributeNames=["SentTimestamp"],
                VisibilityTimeout=DRY_RUN_HOLD_SECONDS if args.dry_run else 30,
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
                seen.add(message["MessageId"])
                listed += 1
                print(f"  {'would move' if args.dry_run else 'moving'} {describe_dead_letter(message)}", file=out)
                if args.dry_run:
                    held.append(message["ReceiptHandle"])
                else:
                    try:
                        kept = kept_attributes(message)
                        sqs.send_message(
                            QueueUrl=args.queue_url,
                            MessageBody=message["Body"],
                            **({"MessageAttributes": kept} if kept else {}),
                        )
                        sqs.delete_message(QueueUrl=args.dlq_url, ReceiptHandle=message["ReceiptHandle"])
                        moved += 1
                    except Exception as exc:  # report and carry on: the message stays in the DLQ
                        failed += 1
                        print(f"    not moved: {type(exc).__name__}: {exc}", file=out)
                progress.update(listed, counts)
    finally:
        for receipt in held:  # listed by a dry run, or left for the next run: visible again at once
            sqs.change_message_visibility(QueueUrl=args.dlq_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    progress.finish(counts())
    if returned:
        print(
            f"left {returned} message(s) dead-lettered after this run began: fix their cause, then run again", file=out
        )
    if args.dry_run:
        print(f"dry run: {listed} message(s) would move; nothing was sent", file=out)
        return EXIT_OK
    print(f"done: {moved} message(s) moved back to the queue, {failed} failed", file=out)
    return EXIT_FAILED if failed else EXIT_OK


def _sent_ms(message: dict[str, Any]) -> int:
    """When the message entered the DLQ (milliseconds since the epoch); unknown counts as long ago."""
    try:
        return int(message.get("Attributes", {}).get("SentTimestamp", 0))
    except (TypeError, ValueError):
        return 0
