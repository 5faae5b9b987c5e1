"""`cdnpurge purge`: purge targets at one provider now, through the Lambda's planner, adapters and retries."""

from __future__ import annotations

import argparse
import sys
import time

from msgspec.structs import replace

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
from cdnpurge.cli.meter import join_meter, report_unmetered
from cdnpurge.cli.provider_docs import purge_examples
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import show
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import ProviderError
from cdnpurge.core.registry import REGISTRY
from cdnpurge.core.urls import UrlError, canonical_host, canonical_path, canonical_url, without_userinfo
from cdnpurge.runtime.execute import request_token
from cdnpurge.runtime.purgers import build_purgers

PURGE_EXAMPLES = f"""\
examples (the -p NAME is the provider's `name` in your config; its `kind` decides what it can purge):
{purge_examples()}
  everything  cdnpurge purge -c purge.yaml -p fastly --all --dry-run

Paths become URLs for providers that purge by URL (one per configured host), URLs become paths for
providers that purge by path. Credentials come from the references in the config (env vars locally,
Secrets Manager in AWS); they are never printed. Exit status: 0 all accepted, 1 some failed, 2 usage.
"""
# How long one manual purge may take in all, retries and provider waits included.
PURGE_SECONDS = 300


class _CliTargetError(ValueError):
    """A `--url`/`--path`/`--prefix`/`--host` value that cannot be purged; the message names the option."""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "purge",
        run,
        help="purge targets at one provider now",
        description="Send a manual purge through the same planner, adapters, retries and redaction as the "
        "Lambda, printing each call and its result.",
        epilog=PURGE_EXAMPLES,
    )
    add_config_option(parser)
    parser.add_argument("-p", "--provider", required=True, help="provider name from the config")
    for option, kind, text in (
        ("--url", TargetKind.URL, "absolute URL"),
        ("--path", TargetKind.PATH, "host-relative path, starting with /"),
        ("--key", TargetKind.KEY, "surrogate key / cache tag"),
        ("--prefix", TargetKind.PREFIX, "path prefix (wildcard or pattern where supported)"),
        ("--host", TargetKind.HOST, "every object of a hostname"),
    ):
        parser.add_argument(
            option, dest=kind.value, action="append", default=[], metavar="VALUE", help=f"{text} (repeatable)"
        )
    parser.add_argument("--all", action="store_true", help="purge everything the provider caches for this service")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--soft", dest="soft", action="store_true", default=None, help="mark stale (where supported)")
    mode.add_argument("--hard", dest="soft", action="store_false", help="evict (default unless the config says soft)")
    parser.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")
    parser.add_argument(
        "--table",
        metavar="NAME",
        help="share the stack's rate meter in this table (output IdempotencyTableName; default "
        "$RATE_METER_TABLE_NAME or $IDEMPOTENCY_TABLE_NAME), so this purge and the function draw on one rate",
    )


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


def run(args: argparse.Namespace, context: Context) -> int:
    config, _ = load_config(args, require_credentials=True)
    out = context.out
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

    def show_attempt(request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError, token: str) -> None:
        status = f"ok (id {what.provider_id})" if isinstance(what, PurgeResult) else f"{type(what).__name__}: {what}"
        print(f"  attempt {attempt}: {request.describe()} -> {status}", file=out)

    executor = build_purgers([settings], on_attempt=show_attempt, meter=join_meter(args.table, out)).executor
    deadline = Deadline.after(PURGE_SECONDS)
    outcomes = [executor.run(r, deadline=deadline, idempotency_token=request_token(r)) for r in the_plan.requests]
    report_unmetered(outcomes, out)
    failed = [o for o in outcomes if not o.ok]
    print(f"done: {len(outcomes) - len(failed)} request(s) accepted, {len(failed)} failed", file=out)
    return EXIT_FAILED if failed or the_plan.errors else EXIT_OK
