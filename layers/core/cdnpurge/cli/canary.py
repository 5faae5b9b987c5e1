"""`cdnpurge canary --stack NAME`: an end-to-end synthetic purge, after a deploy or on a schedule.

A canary object is written to the content bucket (`cdnpurge-canary/<run id>.html` by default: a key the
configuration's rules must route, as they route real content); the run then reads the purge trail until every
provider the change reached has accepted its purge and, where the provider verifies (`verify:`), reported it
fresh at the edge, or failed, or the time is up. It reports per provider the seconds from the write to purged
and to fresh, then deletes the object (a deletion is a change too: it is purged like any other).

This exercises what `doctor` can only inspect: S3 -> EventBridge -> the queue -> the function -> the provider,
with the real credentials, and the trail. It needs the trail (TrailEnabled "true").
Exit status: 0 every provider purged (and fresh where verified), 1 not within --timeout, 2 usage or AWS error.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from cdnpurge.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Commands, Context, add_command
from cdnpurge.cli.deployed import TRAIL_TABLE_OUTPUT, DeployedStack, StackReadError, client_in, read_stack
from cdnpurge.cli.output import external
from cdnpurge.cli.progress import Progress
from cdnpurge.cli.status import ChangeStatus, TrailReader

DEFAULT_PREFIX: Final = "cdnpurge-canary/"
DEFAULT_TIMEOUT_SECONDS: Final = 300
POLL_SECONDS: Final = 2.0
_PREFIX: Final = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,200}/$")

CANARY_EXAMPLES = f"""\
examples:
  cdnpurge canary --stack cdnpurge                        after sam deploy: purged and fresh, per provider
  cdnpurge canary --stack cdnpurge --format json          for a pipeline step or a scheduled job

The object is written under --prefix ({DEFAULT_PREFIX} by default; a rule must match it, e.g.
`match: "{DEFAULT_PREFIX}{{name}}"`), waited for in the purge trail, reported, and deleted. Needs
s3:PutObject and s3:DeleteObject on the prefix, dynamodb:Query on the trail table, cloudformation:Describe*.
Exit status: 0 purged (and fresh where verified) everywhere, 1 not within --timeout, 2 usage or AWS error.
"""


@dataclass(frozen=True)
class ProviderResult:
    """One provider's part of a canary run; seconds from the object's write, None when not reached."""

    provider: str
    purged_after: float | None
    fresh_after: float | None
    verified: bool
    error: str | None

    @property
    def done(self) -> bool:
        if self.error is not None:
            return True
        return self.purged_after is not None and (self.fresh_after is not None or not self.verified)

    @property
    def ok(self) -> bool:
        return self.error is None and self.done


@dataclass(frozen=True)
class CanaryResult:
    bucket: str
    key: str
    change_id: str | None
    providers: tuple[ProviderResult, ...]
    timed_out: bool

    @property
    def ok(self) -> bool:
        return bool(self.providers) and not self.timed_out and all(p.ok for p in self.providers)


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "canary",
        run,
        help="write a canary object and time its purge (and freshness) per provider, end to end",
        description="Write a canary object to the stack's bucket, wait for its purge in the purge trail, report "
        "the time to purged and to fresh per provider, and delete the object.",
        epilog=CANARY_EXAMPLES,
    )
    parser.add_argument("--stack", required=True, help="the stack's name (as deployed with sam deploy)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"key prefix of the canary object ({DEFAULT_PREFIX})")
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT_SECONDS, metavar="S", help="give up after S seconds (300)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the canary object in the bucket")
    parser.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if not 10 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 10 and 3600 seconds, got {value}")
    return value


def run(args: argparse.Namespace, context: Context) -> int:
    if not _PREFIX.fullmatch(args.prefix):
        print(
            f"cdnpurge: --prefix {args.prefix!r} must be a key prefix ending in '/' (letters, digits, -_.!*'()/)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        stack = read_stack(client_in(context, "cloudformation"), args.stack)
        table = stack.outputs.get(TRAIL_TABLE_OUTPUT)
        if not table:
            raise StackReadError(
                f"stack {stack.name} keeps no purge trail (TrailEnabled is false): the canary reads it"
            )
    except StackReadError as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = canary(
        stack,
        verifying=_verifying(stack, client_in(context, "ssm", stack.region)),
        s3=client_in(context, "s3", stack.region),
        trail=TrailReader(client_in(context, "dynamodb", stack.region), table),
        key=f"{args.prefix}{uuid.uuid4().hex}.html",
        timeout_seconds=args.timeout,
        keep=args.keep,
        clock=context.clock,
        wall_clock=context.wall_clock,
        sleep=time.sleep,
        progress=Progress(sys.stderr, "canary", clock=context.clock, every=1, interval_seconds=30),
    )
    if args.format == "json":
        json.dump({**asdict(result), "ok": result.ok}, context.out, indent=2)
        context.out.write("\n")
    else:
        _print(result, context.out)
    return EXIT_OK if result.ok else EXIT_FAILED


def _verifying(stack: DeployedStack, ssm: Any) -> frozenset[str]:
    """The providers whose configuration verifies freshness (a configuration that does not load verifies
    nothing: `doctor` says why)."""
    from cdnpurge.core.config import ConfigError, parse_config

    name = stack.parameters.get("ConfigParameterName", "/cdnpurge/core/config")
    try:
        config = parse_config(ssm.get_parameter(Name=name)["Parameter"]["Value"], source=f"ssm:{name}")
    except (ConfigError, ssm.exceptions.ParameterNotFound):
        return frozenset()
    return frozenset(p.name for p in config.providers if getattr(p, "verify", None) is not None)


def canary(
    stack: DeployedStack,
    *,
    s3: Any,
    trail: TrailReader,
    key: str,
    timeout_seconds: float,
    verifying: frozenset[str] = frozenset(),
    keep: bool = False,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> CanaryResult:
    """Write, wait (polling the trail every POLL_SECONDS through `sleep`), report, clean up. A provider in
    `verifying` (its configuration has `verify:`) is waited for until fresh, the others until purged."""
    bucket = stack.parameters["ContentBucketName"]
    body = f"<!-- cdnpurge canary {key} -->\n".encode()
    written_at = wall_clock()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html", CacheControl="max-age=60")
    ends = clock() + timeout_seconds
    change: ChangeStatus | None = None
    results: tuple[ProviderResult, ...] = ()
    try:
        while True:
            found = trail.by_object(bucket, key, limit=1)
            change = found[0] if found else None
            results = _results(change, written_at, verifying) if change else ()
            if results and all(result.done for result in results):
                break
            if clock() >= ends:
                break
            if progress is not None:
                line = "waiting for " + (", ".join(r.provider for r in results if not r.done) or "the trail")
                progress.update(int(clock() - ends + timeout_seconds), functools.partial(str, line))
            sleep(max(0.0, min(POLL_SECONDS, ends - clock())))  # never past the timeout
    finally:
        if not keep:
            s3.delete_object(Bucket=bucket, Key=key)
    timed_out = not results or not all(result.done for result in results)
    return CanaryResult(bucket, key, change.change_id if change else None, results, timed_out)


def _results(change: ChangeStatus, written_at: float, verifying: frozenset[str]) -> tuple[ProviderResult, ...]:
    def after(at: str | None) -> float | None:
        """Seconds from the write to a time the trail recorded; None for none, or for one that is not a time
        (the trail is read back: an item's field is input)."""
        try:
            return round(datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp() - written_at, 1)
        except ValueError:
            return None

    return tuple(
        ProviderResult(
            provider=status.provider,
            purged_after=after(status.accepted_at),
            fresh_after=after(status.fresh_at),
            verified=status.provider in verifying,
            error=status.last_error if status.accepted_at is None else None,
        )
        for status in change.providers
    )


def _print(result: CanaryResult, out: Any) -> None:
    where = f"s3://{result.bucket}/{result.key}"
    if not result.providers:
        print(
            f"canary {where}: no purge reached the trail (bucket events, the rule, the function: run doctor)", file=out
        )
        return
    print(f"canary {where} (change {external(result.change_id)}):", file=out)
    for provider in result.providers:
        purged = "-" if provider.purged_after is None else f"purged after {provider.purged_after:.1f} s"
        fresh = (
            f", fresh after {provider.fresh_after:.1f} s"
            if provider.fresh_after is not None
            else (", not verified (no verify: block)" if not provider.verified else ", not fresh in time")
        )
        failed = f", failed: {external(provider.error)}" if provider.error else ""
        print(f"  {provider.provider}: {purged}{fresh}{failed}", file=out)
    verdict = "ok" if result.ok else ("timed out" if result.timed_out else "failed")
    print(f"canary {verdict}", file=out)
