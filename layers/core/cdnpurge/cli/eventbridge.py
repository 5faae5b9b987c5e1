"""`cdnpurge enable-eventbridge` / `disable-eventbridge`: switch a bucket's S3 -> EventBridge delivery."""

from __future__ import annotations

import argparse
import json

from cdnpurge.cli.command import EXIT_OK, Commands, Context, add_command
from cdnpurge.cli.notifications import set_eventbridge

EVENTBRIDGE_EXAMPLES = """\
examples:
  cdnpurge enable-eventbridge --bucket my-site-content --dry-run    print the merged configuration
  cdnpurge enable-eventbridge --bucket my-site-content              turn it on (deploy step)
  cdnpurge disable-eventbridge --bucket my-site-content             turn it off (teardown)

The bucket's notification configuration is read, EventBridgeConfiguration alone is added or removed, and
the rest is written back as it was (its destinations are not re-validated). Nothing is written when nothing
changes. Needs s3:GetBucketNotification and s3:PutBucketNotification on the bucket. S3 has no conditional
write for this document: do not run it while something else edits the bucket's notifications.
Exit status: 0 done (or nothing to do), 2 usage or AWS error (one line naming it).
"""


def register(commands: Commands) -> None:
    for command, enabled, text in (
        ("enable-eventbridge", True, "turn the bucket's S3 -> EventBridge delivery on"),
        ("disable-eventbridge", False, "turn the bucket's S3 -> EventBridge delivery off (teardown)"),
    ):
        parser = add_command(
            commands,
            command,
            run,
            help=text,
            description=f"{text[0].upper()}{text[1:]}, keeping every topic, queue and Lambda notification of "
            "the bucket as it is (a plain put-bucket-notification-configuration replaces them all). Idempotent.",
            epilog=EVENTBRIDGE_EXAMPLES,
        )
        parser.add_argument("--bucket", required=True, help="the content bucket (template parameter ContentBucketName)")
        parser.add_argument("--dry-run", action="store_true", help="print the merged configuration, write nothing")
        parser.set_defaults(eventbridge=enabled)


def run(args: argparse.Namespace, context: Context) -> int:
    out = context.out
    state = "on" if args.eventbridge else "off"
    change = set_eventbridge(context.client("s3"), args.bucket, enabled=args.eventbridge, dry_run=args.dry_run)
    if not change.changed:
        print(f"{args.bucket}: EventBridge delivery is already {state}; nothing written ({change.kept()})", file=out)
        return EXIT_OK
    if args.dry_run:
        print(f"dry run: {args.bucket}: would turn EventBridge delivery {state}, keeping {change.kept()}:", file=out)
        json.dump(change.after, out, indent=2)
        out.write("\n")
        return EXIT_OK
    print(f"{args.bucket}: EventBridge delivery turned {state}; kept {change.kept()}", file=out)
    return EXIT_OK
