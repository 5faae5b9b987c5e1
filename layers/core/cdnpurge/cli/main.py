"""`cdnpurge`: inspect plans and purge by hand through the same planner and adapters as the Lambda.

cdnpurge validate --config purge.yaml
cdnpurge plan --config purge.yaml --event events/sqs-s3-put.json --format json
cdnpurge purge --config purge.yaml --provider fastly --key article-42 --soft
cdnpurge redrive --dlq-url URL --queue-url URL --dry-run
cdnpurge enable-eventbridge --bucket my-site-content --dry-run
cdnpurge status --bucket my-site-content --key docs/a.html
cdnpurge report bench/results/storm-20261126T144126Z.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from cdnpurge.cli.charts import FORMATS, ChartsUnavailableError, RunFileError, render_run
from cdnpurge.cli.deploy import parameter_size_warning
from cdnpurge.cli.errors import reader_gone
from cdnpurge.cli.notifications import set_eventbridge
from cdnpurge.cli.progress import Progress
from cdnpurge.cli.provider_docs import purge_examples
from cdnpurge.cli.status import DEFAULT_LIMIT, StatusError, TrailReader, parse_duration, write_json, write_table
from cdnpurge.cli.webhook_plan import WebhookPlanError, webhook_event
from cdnpurge.core.config import Config, ConfigError, parse_config, read_config_text
from cdnpurge.core.cost import DynamoDBPathCounter, PathBill, charge_usd, month_of
from cdnpurge.core.credentials import CredentialError
from cdnpurge.core.errors import show
from cdnpurge.core.models import Change, Escalation, Plan, PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import ProviderError
from cdnpurge.core.registry import REGISTRY, specs
from cdnpurge.core.urls import UrlError, canonical_host, canonical_path, canonical_url, without_userinfo
from cdnpurge.runtime.aws_errors import aws_problem
from cdnpurge.runtime.deadletter import describe_dead_letter, kept_attributes
from cdnpurge.runtime.execute import request_token
from cdnpurge.runtime.pipeline import preview
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.trail import DEFAULT_RETENTION_SECONDS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _CliTargetError(ValueError):
    """A `--url`/`--path`/`--prefix`/`--host` value that cannot be purged; the message names the option."""


def canonical_target(target: Target) -> Target:
    """A command-line target in the canonical form the pipeline gives published ones (`cdnpurge.core.urls`), so
    `--path @evil.test/x` cannot become `https://www.example.com@evil.test/x` nor `--path /*` a wildcard."""
    try:
        if target.kind is TargetKind.URL:
            return Target(target.kind, canonical_url(target.value).geturl())
        if target.kind in (TargetKind.PATH, TargetKind.PREFIX):
            return Target(target.kind, canonical_path(target.value))
        if target.kind is TargetKind.HOST:
            return Target(target.kind, canonical_host(target.value))
    except UrlError as problem:
        shown = show(without_userinfo(target.value))
        raise _CliTargetError(f"--{target.kind.value} {shown} {problem}") from None
    return target


PURGE_EXAMPLES = f"""\
examples (the -p NAME is the provider's `name` in your config; its `kind` decides what it can purge):
{purge_examples()}
  everything  cdnpurge purge -c purge.yaml -p fastly --all --dry-run

Paths become URLs for providers that purge by URL (one per configured host), URLs become paths for
providers that purge by path. Credentials come from the references in the config (env vars locally,
Secrets Manager in AWS); they are never printed. Exit status: 0 all accepted, 1 some failed, 2 usage.
"""


PLAN_EXAMPLES = """\
examples:
  cdnpurge plan -c purge.yaml -e events/sqs-s3-put.json                 readable summary
  cdnpurge plan -c purge.yaml -e events/sqs-mixed-batch.json -f json    the JSON document below

JSON output: {"changes": [{"id", "action" (created/removed/published), "source_id", "bucket" + "key" for S3,
"keys"/"paths"/"urls"/"hosts" for published}], "requests": [{"provider", "kind", "targets", "soft",
"change_ids"}], "errors": [one per record or target that cannot be handled, with a "message" naming the
problem], "escalations": [...], "ignored": [...], "unmatched": [change ids no rule matched]}.
Exit status: 0 no errors, 1 some record or target has an error, 2 usage (bad config or event file).
"""


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


STATUS_EXAMPLES = f"""\
examples (the table is the stack output PurgeTrailTableName, or TRAIL_TABLE_NAME in the environment):
  cdnpurge status --bucket my-site-content --key docs/a.html     every recent change of one object
  cdnpurge status --url https://www.example.com/docs/a.html      what purged one URL (as URL, path, prefix, host)
  cdnpurge status --change-id 's3:my-site-content/docs/a.html@0065A1B2C3D4E5F6'
  cdnpurge status --since 1h --format json                       the last hour, for scripts

Per change: its source (bucket, key and S3's sequencer or version id; or the publisher's id), the rule that
matched, and per provider its targets, the provider's request or job id, accepted / completed / fresh
(the last two as seconds after acceptance, once the verifier reports them), attempts and the last error.
Newest first, at most --limit changes. The trail is kept {DEFAULT_RETENTION_SECONDS // 86400} days by default
(TrailRetentionSeconds). AWS endpoint, region and credentials come from the usual AWS environment
(AWS_PROFILE, AWS_ENDPOINT_URL_DYNAMODB for the local stack). Needs dynamodb:Query on the table and its
indexes. Exit status: 0 found, 1 nothing recorded for the question, 2 usage or AWS error.
"""


REPORT_EXAMPLES = """\
examples:
  cdnpurge report bench/results/storm-20261126T144126Z.json       storm-...{calls,wall,throughput}.png
  cdnpurge report local/runs/demo.json -f svg -f png                 both formats

Needs matplotlib, which the Lambda layer never ships: pip install -e '.[charts]' in a checkout.
Exit status: 0 charts written, 2 usage (no such file, not a saved run, matplotlib missing).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdnpurge",
        description="Event-driven CDN purge: plan and run purges the way the PurgeFunction Lambda does.",
        epilog="Configuration schema and examples: see README.md, section 'Configuration'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a configuration file",
        description="Validate a configuration file and list providers.",
    )
    validate.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")

    plan_cmd = commands.add_parser(
        "plan",
        help="show the purge plan for an event file, calling nothing",
        description="Decode an event file (any shape the Lambda accepts), translate it with the config's "
        "rules and print the purge plan. No provider, AWS service or credential is touched.",
        epilog=PLAN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan_cmd.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")
    given = plan_cmd.add_mutually_exclusive_group(required=True)
    given.add_argument("-e", "--event", type=Path, help="event JSON file (see events/)")
    given.add_argument("--webhook", type=Path, metavar="FILE", help="a CMS webhook payload (JSON body; with --source)")
    plan_cmd.add_argument("--source", metavar="NAME", help="the configuration's webhook source the payload is for")
    plan_cmd.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")
    plan_cmd.add_argument(
        "--table",
        metavar="NAME",
        help="the stack's idempotency table (output IdempotencyTableName): read the CloudFront paths billed "
        "this month so far, for the bill and monthly_path_budget (the only AWS call `plan` makes)",
    )

    purge = commands.add_parser(
        "purge",
        help="purge targets at one provider now",
        description="Send a manual purge through the same planner, adapters, retries and redaction as the "
        "Lambda, printing each call and its result.",
        epilog=PURGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")
    purge.add_argument("-p", "--provider", required=True, help="provider name from the config")
    for option, kind, text in (
        ("--url", TargetKind.URL, "absolute URL"),
        ("--path", TargetKind.PATH, "host-relative path, starting with /"),
        ("--key", TargetKind.KEY, "surrogate key / cache tag"),
        ("--prefix", TargetKind.PREFIX, "path prefix (wildcard or pattern where supported)"),
        ("--host", TargetKind.HOST, "every object of a hostname"),
    ):
        purge.add_argument(
            option, dest=kind.value, action="append", default=[], metavar="VALUE", help=f"{text} (repeatable)"
        )
    purge.add_argument("--all", action="store_true", help="purge everything the provider caches for this service")
    mode = purge.add_mutually_exclusive_group()
    mode.add_argument("--soft", dest="soft", action="store_true", default=None, help="mark stale (where supported)")
    mode.add_argument("--hard", dest="soft", action="store_false", help="evict (default unless the config says soft)")
    purge.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")

    redrive = commands.add_parser(
        "redrive",
        help="move dead-lettered messages back to the purge queue",
        description="Move messages from the dead-letter queue back to the purge queue, printing each one "
        "with the reason it was dead-lettered.",
        epilog=REDRIVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    redrive.add_argument("--dlq-url", required=True, help="dead-letter queue URL (stack output DeadLetterQueueUrl)")
    redrive.add_argument("--queue-url", required=True, help="purge queue URL (stack output PurgeQueueUrl)")
    redrive.add_argument("--dry-run", action="store_true", help="list what would move, move nothing")
    redrive.add_argument("--max", type=_positive, default=None, metavar="N", help="move at most N messages")
    redrive.add_argument(
        "--wait-seconds", type=int, default=1, choices=range(21), metavar="S", help="long-poll wait (0-20, default 1)"
    )

    for command, enabled, text in (
        ("enable-eventbridge", True, "turn the bucket's S3 -> EventBridge delivery on"),
        ("disable-eventbridge", False, "turn the bucket's S3 -> EventBridge delivery off (teardown)"),
    ):
        switch = commands.add_parser(
            command,
            help=text,
            description=f"{text[0].upper()}{text[1:]}, keeping every topic, queue and Lambda notification of "
            "the bucket as it is (a plain put-bucket-notification-configuration replaces them all). Idempotent.",
            epilog=EVENTBRIDGE_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        switch.add_argument("--bucket", required=True, help="the content bucket (template parameter ContentBucketName)")
        switch.add_argument("--dry-run", action="store_true", help="print the merged configuration, write nothing")
        switch.set_defaults(eventbridge=enabled)

    status = commands.add_parser(
        "status",
        help="what happened to a change: accepted, completed, fresh, per provider (the purge trail)",
        description="Read the purge trail the function keeps for each (provider, change).",
        epilog=STATUS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    question = status.add_mutually_exclusive_group(required=True)
    question.add_argument("--bucket", help="the object's bucket (with --key)")
    question.add_argument("--url", help="an absolute URL a purge named, as URL, path, directory prefix or host")
    question.add_argument("--change-id", help="one change id (as `cdnpurge plan` and the logs print it)")
    question.add_argument(
        "--since", type=_duration, metavar="AGE", help="changes recorded within AGE: 90s, 15m, 1h, 2d"
    )
    status.add_argument("--key", help="the object's key (with --bucket)")
    status.add_argument(
        "--table", default=None, help="the trail table (stack output PurgeTrailTableName; default $TRAIL_TABLE_NAME)"
    )
    status.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, metavar="N", help="at most N changes (50)")
    status.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")
    report = commands.add_parser(
        "report",
        help="draw a saved bench or demo run as charts",
        description="Draw a run saved by `make bench` (bench/results/storm-*.json) or by the demo "
        "(`make demo` saves local/runs/demo.json) as charts written beside it: calls per storm for "
        "cdnpurge, the naive purger and the minimum; wall time against the rate-limit minimum; planner "
        "throughput (bench runs).",
        epilog=REPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("run", type=Path, metavar="RUN", help="a saved run (JSON)")
    report.add_argument(
        "-f", "--format", action="append", choices=FORMATS, help="file format (repeatable; default png)"
    )
    report.add_argument("-o", "--out-dir", type=Path, help="write the charts here (default: beside RUN)")
    return parser


def _version() -> str:
    try:
        return version("cdnpurge")
    except PackageNotFoundError:  # the package copied without its metadata (the Lambda layer)
        return "(version unknown: not installed)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except StatusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    """Run one command. AWS errors become one line and exit 2; a closed stdout pipe ends the run quietly.

    `sqs`, `s3`, `dynamodb` (clients) and the clocks are for tests; by default boto3 and the system's."""
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        status = _run(args, out, sqs=sqs, s3=s3, dynamodb=dynamodb, clock=clock, wall_clock=wall_clock)
        out.flush()
    except BrokenPipeError:
        return reader_gone(out)
    except Exception as exc:
        problem = aws_problem(exc)
        if problem is None:
            raise
        print(f"cdnpurge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return status


def _run(
    args: argparse.Namespace,
    out: TextIO,
    *,
    sqs: Any,
    s3: Any,
    dynamodb: Any,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
) -> int:
    if args.command == "status":
        return _status(args, out, dynamodb, clock)
    if args.command == "redrive":
        return _redrive(args, out, sqs, clock)
    if args.command in ("enable-eventbridge", "disable-eventbridge"):
        return _eventbridge(args, out, s3)
    if args.command == "report":
        return _report(args, out)
    try:
        text = read_config_text(str(args.config))
        # validate and purge judge a configuration as the service would: credentials included
        config = parse_config(text, source=str(args.config), require_credentials=args.command != "plan")
        if args.command == "validate":
            return _validate(config, text, out)
        if args.command == "plan":
            return _plan(config, args, out, dynamodb=dynamodb, month=month_of(wall_clock()))
        return _purge(config, args, out)
    except (ConfigError, CredentialError) as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _report(args: argparse.Namespace, out: TextIO) -> int:
    try:
        written = render_run(args.run, formats=args.format or ("png",), out_dir=args.out_dir)
    except (RunFileError, ChartsUnavailableError) as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"written {path}", file=out)
    return EXIT_OK


def _validate(config: Config, text: str, out: TextIO) -> int:
    print(f"configuration OK: {len(config.providers)} provider(s), {len(config.rules)} rule(s)", file=out)
    for name, spec in specs(config.providers).items():
        kinds = ", ".join(f"{kind.value}<={limit}" for kind, limit in spec.capabilities.max_targets.items())
        receives = "" if spec.purge_by is None else "; purge_by=" + ",".join(sorted(k.value for k in spec.purge_by))
        print(f"  {name}: {kinds}; soft={'yes' if spec.capabilities.soft_purge else 'no'}{receives}", file=out)
    warning = parameter_size_warning(text)
    if warning:
        print(f"cdnpurge: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _plan(config: Config, args: argparse.Namespace, out: TextIO, *, dynamodb: Any, month: str) -> int:
    """The plan of an event file; `month` is the calendar month whose billed paths `--table` reads."""
    event_path, output_format = args.event, args.format
    if (args.webhook is None) != (args.source is None):
        print("cdnpurge: --webhook FILE and --source NAME go together", file=sys.stderr)
        return EXIT_USAGE
    if args.webhook is not None:
        try:
            message = webhook_event(config, args.webhook, args.source)
        except WebhookPlanError as exc:
            print(f"cdnpurge: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if message is None:
            print(
                f"{args.webhook}: webhooks.{args.source}.map.when is false for this payload: nothing to purge", file=out
            )
            return EXIT_OK
        event: Any = message
    else:
        try:
            event = json.loads(event_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"cdnpurge: {event_path}: cannot read event JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE
    month_so_far = None
    if args.table:
        if dynamodb is None:
            import boto3

            dynamodb = boto3.client("dynamodb")
        month_so_far = DynamoDBPathCounter(dynamodb, args.table).month_so_far(month)
    decoded, translation, the_plan, bill = preview(
        event, config, specs(config.providers), month=month, month_so_far=month_so_far
    )
    document = {
        "changes": [_change_json(change) for change in decoded.changes],
        "requests": [_request_json(request) for request in the_plan.requests],
        "errors": [{"source_id": e.source_id, "message": e.message} for e in decoded.errors]
        + [{"source_id": e.source_id, "change_id": e.change_id, "message": e.message} for e in translation.errors]
        + [{"provider": e.provider, "change_ids": sorted(e.change_ids), "message": e.message} for e in the_plan.errors],
        "escalations": [_escalation_json(escalation) for escalation in the_plan.escalations],
        "billing": _bill_json(bill),
        "ignored": list(decoded.ignored),
        "unmatched": list(translation.unmatched),
    }
    if output_format == "json":
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        _print_plan_text(document, the_plan, out)
        if bill.paths or bill.budget is not None:
            print(f"billing: {bill.describe()}", file=out)
    return EXIT_OK if not document["errors"] else EXIT_FAILED


def _change_json(change: Change) -> dict[str, Any]:
    item: dict[str, Any] = {"id": change.id, "action": change.action.value, "source_id": change.source_id}
    if change.bucket is not None:
        item.update(bucket=change.bucket, key=change.key)
    for name in ("keys", "paths", "urls", "hosts"):
        if getattr(change, name):
            item[name] = list(getattr(change, name))
    return item


def _request_json(request: PurgeRequest) -> dict[str, Any]:
    return {
        "provider": request.provider,
        "kind": request.kind.value,
        "targets": list(request.targets),
        "soft": request.soft,
        "change_ids": sorted(request.change_ids),
    }


def _escalation_json(escalation: Escalation) -> dict[str, Any]:
    return {
        "provider": escalation.provider,
        "kind": escalation.kind.value,
        "targets": list(escalation.targets),
        "replaced": escalation.replaced,
        "requests_before": escalation.requests_before,
        "requests_after": escalation.requests_after,
    }


def _bill_json(bill: PathBill) -> dict[str, Any]:
    return {
        "month": bill.month,
        "paths": dict(bill.paths),
        "total": bill.total,
        "month_so_far": bill.month_so_far,
        "estimated_usd": charge_usd(bill.month_so_far or 0, bill.total),
        "budget": bill.budget,
        "economised": bill.economised,
        "exceeded": bill.exceeded,
    }


def _print_plan_text(document: dict[str, Any], the_plan: Plan, out: TextIO) -> None:
    print(f"{len(document['changes'])} change(s):", file=out)
    for change in document["changes"]:
        where = f"s3://{change['bucket']}/{change['key']}" if "bucket" in change else change["id"]
        print(f"  {change['action']:<9} {where}", file=out)
    print(f"{len(the_plan.requests)} request(s):", file=out)
    for request in the_plan.requests:
        print(f"  {request.describe()}: {', '.join(request.targets)}", file=out)
    for escalation in the_plan.escalations:
        print(f"escalated: {escalation.describe()}", file=out)
    for error in document["errors"]:
        print(f"error: {error['message']}", file=out)


def _purge(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    settings = next((p for p in config.providers if p.name == args.provider), None)
    if settings is None:
        known = ", ".join(p.name for p in config.providers)
        print(f"cdnpurge: --provider {args.provider!r} is not in the config (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    targets = [
        Target(kind, value) for kind in TargetKind if kind is not TargetKind.ALL for value in getattr(args, kind.value)
    ]
    if args.all:
        targets.append(Target(TargetKind.ALL, "*"))
    if not targets:
        print(
            "cdnpurge: name at least one target (--url, --path, --key, --prefix, --host or --all)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        targets = [canonical_target(target) for target in targets]
    except _CliTargetError as problem:
        print(f"cdnpurge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    change_id = f"cli:{int(time.time())}"
    routed = [RoutedTarget(change_id, target, frozenset({settings.name}), args.soft) for target in targets]
    # A manual purge names its provider and kinds itself: `purge_by` routes events, not this command.
    spec = replace(REGISTRY[settings.kind].spec_for(settings), purge_by=None)
    the_plan = plan(routed, {settings.name: spec})
    for error in the_plan.errors:
        print(f"error: {error.message}", file=out)
    for request in the_plan.requests:
        print(
            f"{'would send' if args.dry_run else 'sending'}: {request.describe()}: {', '.join(request.targets)}",
            file=out,
        )
    if args.dry_run or not the_plan.requests:
        return EXIT_FAILED if the_plan.errors else EXIT_OK

    def show(request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError) -> None:
        status = f"ok (id {what.provider_id})" if isinstance(what, PurgeResult) else f"{type(what).__name__}: {what}"
        print(f"  attempt {attempt}: {request.describe()} -> {status}", file=out)

    executor = build_purgers([settings], on_attempt=show).executor
    deadline = time.monotonic() + 300
    outcomes = [executor.run(r, deadline=deadline, idempotency_token=request_token(r)) for r in the_plan.requests]
    failed = [o for o in outcomes if not o.ok]
    print(f"done: {len(outcomes) - len(failed)} request(s) accepted, {len(failed)} failed", file=out)
    return EXIT_FAILED if failed or the_plan.errors else EXIT_OK


def _redrive(args: argparse.Namespace, out: TextIO, sqs: Any, clock: Callable[[], float]) -> int:
    if args.dlq_url == args.queue_url:
        print("cdnpurge: --dlq-url and --queue-url must be different queues", file=sys.stderr)
        return EXIT_USAGE
    if sqs is None:
        import boto3

        sqs = boto3.client("sqs")
    mode = "dry run: " if args.dry_run else ""
    print(f"{mode}redrive {args.dlq_url} -> {args.queue_url}", file=out)
    listed = moved = failed = returned = 0
    held: list[str] = []
    seen: set[str] = set()
    started_ms = int(time.time() * 1000)
    progress = Progress(sys.stderr, "redrive", clock=clock, every=REDRIVE_PROGRESS_EVERY)

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


def _eventbridge(args: argparse.Namespace, out: TextIO, s3: Any) -> int:
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    state = "on" if args.eventbridge else "off"
    change = set_eventbridge(s3, args.bucket, enabled=args.eventbridge, dry_run=args.dry_run)
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


def _status(args: argparse.Namespace, out: TextIO, dynamodb: Any, clock: Callable[[], float]) -> int:
    table = args.table or os.environ.get("TRAIL_TABLE_NAME")
    if not table:
        print(
            "cdnpurge: name the trail table: --table NAME (stack output PurgeTrailTableName) or TRAIL_TABLE_NAME",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if (args.bucket is None) != (args.key is None):
        print("cdnpurge: --bucket and --key go together: name the object by both", file=sys.stderr)
        return EXIT_USAGE
    if dynamodb is None:
        import boto3

        dynamodb = boto3.client("dynamodb")
    progress = Progress(sys.stderr, "status", clock=clock)
    return print_status(
        TrailReader(dynamodb, table, progress=progress),
        out,
        bucket=args.bucket,
        key=args.key,
        url=args.url,
        change_id=args.change_id,
        since_seconds=args.since,
        limit=args.limit,
        output_format=args.format,
    )


def print_status(
    reader: TrailReader,
    out: TextIO,
    *,
    bucket: str | None = None,
    key: str | None = None,
    url: str | None = None,
    change_id: str | None = None,
    since_seconds: int | None = None,
    limit: int = DEFAULT_LIMIT,
    output_format: str = "text",
) -> int:
    """Answer one `cdnpurge status` question (exactly one of object, URL, change id, age) on `out`.

    The demo calls it too: `print_status(TrailReader(client, table), sys.stdout, bucket=..., key=...)`.
    """
    try:
        if change_id is not None:
            changes, asked = reader.by_change(change_id), f"change {change_id}"
        elif url is not None:
            changes, asked = reader.by_url(url, limit), url
        elif since_seconds is not None:
            changes, asked = reader.since(since_seconds, limit), f"the last {since_seconds} s"
        elif bucket is not None and key is not None:
            changes, asked = reader.by_object(bucket, key, limit), f"s3://{bucket}/{key}"
        else:
            raise StatusError("ask about one object (bucket and key), URL, change id or age")
    except StatusError as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if output_format == "json":
        write_json(changes, out)
    elif changes:
        write_table(changes, out)
    else:
        print(f"no purge recorded for {asked} (the trail keeps what the function purged in its retention)", file=out)
    return EXIT_OK if changes else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
