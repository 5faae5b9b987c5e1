"""`cdnpurge plan`: the purge plan for an event file, calling no provider (the bill reads one table at most)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from cdnpurge.cli.command import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    Context,
    add_command,
    add_config_option,
    load_config,
)
from cdnpurge.core.cost import DynamoDBPathCounter, PathBill, charge_usd, month_of
from cdnpurge.core.models import Change, Escalation, Plan, PurgeRequest
from cdnpurge.core.nesting import nesting_problem
from cdnpurge.core.registry import specs
from cdnpurge.runtime.pipeline import preview

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


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "plan",
        run,
        help="show the purge plan for an event file, calling nothing",
        description="Decode an event file (any shape the Lambda accepts), translate it with the config's "
        "rules and print the purge plan. No provider, AWS service or credential is touched.",
        epilog=PLAN_EXAMPLES,
    )
    add_config_option(parser)
    parser.add_argument("-e", "--event", required=True, type=Path, help="event JSON file (see events/)")
    parser.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--table",
        metavar="NAME",
        help="the stack's idempotency table (output IdempotencyTableName): read the CloudFront paths billed "
        "this month so far, for the bill and monthly_path_budget (the only AWS call `plan` makes)",
    )


def run(args: argparse.Namespace, context: Context) -> int:
    """The plan of an event file; with `--table`, the bill counts the paths billed this calendar month."""
    config, _ = load_config(args, require_credentials=False)
    event_path, out = args.event, context.out
    try:
        text = event_path.read_text(encoding="utf-8")
        problem = nesting_problem(text)
        if problem:
            raise ValueError(f"it {problem}")
        event = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        print(f"cdnpurge: {event_path}: cannot read event JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    month = month_of(context.wall_clock())
    month_so_far = None
    if args.table:
        month_so_far = DynamoDBPathCounter(context.client("dynamodb"), args.table).month_so_far(month)
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
    if args.format == "json":
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
