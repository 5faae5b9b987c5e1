"""`cdnpurge status`: read the purge trail (`cdnpurge.runtime.trail`) by change, object, URL or time, and show it.

Every question is answered with Queries, never a Scan: by change id, the change's own partition; by
object or URL, the `by-lookup` index (a URL is looked up as itself, as its path, as each directory prefix
above it and as its host, since a rule may purge it in any of those forms); by time, the `by-hour` index,
`HOUR_SHARDS` keys per hour. The indexes hold keys only, so the changes they name are then read from
their partitions (up to `PARALLEL_READS` at once), newest first, at most `limit` of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from boto3.dynamodb.types import TypeDeserializer

from cdnpurge.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Commands, Context, add_command, positive
from cdnpurge.cli.deployed import TRAIL_TABLE_OUTPUT, StackReadError, client_in, read_pause, read_stack
from cdnpurge.cli.output import external, safe_stream
from cdnpurge.cli.progress import Progress
from cdnpurge.runtime.trail import (
    AT,
    CHANGE_SK,
    DEFAULT_RETENTION_SECONDS,
    HOUR,
    HOUR_INDEX,
    LOOKUP,
    LOOKUP_INDEX,
    PK,
    PROVIDER_SK,
    TrailEvent,
    hour_keys,
    iso,
    object_lookup,
    partition_key,
)

PARALLEL_READS: Final = 8
DEFAULT_LIMIT: Final = 50
_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_deserialize = TypeDeserializer().deserialize


class StatusError(ValueError):
    """A `cdnpurge status` question that cannot be asked (bad URL, bad duration); the message says why."""


def parse_duration(text: str) -> int:
    """`90s`, `15m`, `1h`, `7d` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise StatusError(f"{text!r} is not a duration such as 90s, 15m, 1h or 2d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def url_lookups(url: str) -> list[str]:
    """Every `lookup` a purge of `url` may have been recorded under: the URL, its path, each directory
    prefix above it, its host (a prefix not ending at a directory is not found)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StatusError(f"--url {url!r} is not an absolute http(s) URL")
    path = parts.path or "/"
    lookups = [f"url:{url.partition('#')[0]}", f"path:{path}"]
    if parts.query:
        lookups.append(f"path:{path}?{parts.query}")
    directories = path.split("/")[:-1]
    lookups.extend(f"prefix:{'/'.join(directories[: depth + 1])}/" for depth in range(len(directories)))
    lookups.append(f"host:{parts.hostname}")
    return lookups


@dataclass(frozen=True)
class ProviderStatus:
    """One (provider, change) as the trail knows it; times are ISO 8601 UTC, None while unknown."""

    provider: str
    targets: tuple[str, ...] = ()
    targets_omitted: int = 0
    provider_ids: tuple[str, ...] = ()
    accepted_at: str | None = None
    completed_at: str | None = None
    fresh_at: str | None = None
    attempts: int = 0
    last_error: str | None = None
    coalesced_into: str | None = None  # the window's purge that covers this change's shared targets


@dataclass(frozen=True)
class ChangeStatus:
    """One change and what each provider did with it."""

    change_id: str
    action: str | None
    source: Mapping[str, Any]
    rule: Mapping[str, Any] | None
    event_time: str | None
    recorded_at: str | None
    providers: tuple[ProviderStatus, ...] = field(default_factory=tuple)


class TrailReader:
    """Answers `cdnpurge status` questions from the trail table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        progress: Progress | None = None,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        self._progress = progress
        self.retention_seconds = retention_seconds  # the trail keeps nothing older: `since` asks no further

    def by_change(self, change_id: str) -> list[ChangeStatus]:
        found = self._load([partition_key(change_id)])
        return [change for change in found if change.change_id == change_id]

    def by_object(self, bucket: str, key: str, limit: int = DEFAULT_LIMIT) -> list[ChangeStatus]:
        return self._load(self._newest(LOOKUP_INDEX, LOOKUP, [object_lookup(bucket, key)], None, limit))

    def by_url(self, url: str, limit: int = DEFAULT_LIMIT) -> list[ChangeStatus]:
        return self._load(self._newest(LOOKUP_INDEX, LOOKUP, url_lookups(url), None, limit))

    def since(self, seconds: int, limit: int = DEFAULT_LIMIT) -> list[ChangeStatus]:
        """Changes recorded in the last `seconds`: one query per hour (and shard) of the range, so the range
        is bounded by what the trail keeps (`StatusError` past it), never by the operator's patience."""
        if seconds > self.retention_seconds:
            raise StatusError(
                f"--since {seconds} s reaches past what the trail keeps ({self.retention_seconds} s, "
                "TRAIL_RETENTION_SECONDS): ask for at most that"
            )
        now = self._clock()
        start = now - seconds
        hours = [key for at in range(int(start // 3600), int(now // 3600) + 1) for key in hour_keys(at * 3600.0)]
        return self._load(self._newest(HOUR_INDEX, HOUR, hours, iso(start), limit))

    def _newest(self, index: str, attribute: str, values: list[str], since: str | None, limit: int) -> list[str]:
        """The partitions an index names under any of `values` (at or after `since`), newest first."""
        condition = "#k = :k" + (" AND #at >= :since" if since else "")
        names = {"#k": attribute, **({"#at": AT} if since else {})}

        def query(value: str) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": index,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {":k": {"S": value}, **({":since": {"S": since}} if since else {})},
                "ScanIndexForward": False,
            }
            for page in self._client.get_paginator("query").paginate(**arguments):
                found.extend((item[AT]["S"], item[PK]["S"]) for item in page.get("Items", []))
                if len({pk for _, pk in found}) >= limit:
                    break
            return found

        with ThreadPoolExecutor(min(PARALLEL_READS, max(1, len(values)))) as pool:
            hits = sorted((hit for found in pool.map(query, values) for hit in found), reverse=True)
        return list(dict.fromkeys(pk for _, pk in hits))[:limit]

    def _load(self, partitions: list[str]) -> list[ChangeStatus]:
        """Each partition's change, newest first (a partition whose change item was never written is
        shown from its records alone)."""

        def load(pk: str) -> ChangeStatus | None:
            items = [
                {name: _deserialize(value) for name, value in item.items()}
                for page in self._client.get_paginator("query").paginate(
                    TableName=self._table,
                    KeyConditionExpression="#pk = :pk",
                    ExpressionAttributeNames={"#pk": PK},
                    ExpressionAttributeValues={":pk": {"S": pk}},
                )
                for item in page.get("Items", [])
            ]
            try:
                return assemble(items)
            except Exception as exc:  # the table is input: an item without its fields is shown, not a crash
                return ChangeStatus(
                    pk, None, {"via": f"an unreadable trail item ({type(exc).__name__})"}, None, None, None
                )

        found: list[ChangeStatus] = []
        with ThreadPoolExecutor(min(PARALLEL_READS, max(1, len(partitions)))) as pool:
            for done, change in enumerate(pool.map(load, partitions), start=1):
                if change is not None:
                    found.append(change)
                if self._progress is not None:
                    self._progress.update(done, lambda: f"{len(found)} of {len(partitions)} change(s) read")
        if self._progress is not None and self._progress.reported:
            self._progress.finish(f"{len(found)} change(s) read")
        return sorted(found, key=lambda change: change.recorded_at or "", reverse=True)


def assemble(items: Iterable[Mapping[str, Any]]) -> ChangeStatus | None:
    """One partition's items -> the change and each provider's status: the record, then the verifier's
    reports (earliest completed and fresh; attempts added; the latest error)."""
    change: Mapping[str, Any] | None = None
    records: dict[str, Mapping[str, Any]] = {}
    events: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        sk = str(item["sk"])
        if sk == CHANGE_SK:
            change = item
        elif "event" in item:
            events.setdefault(str(item["provider"]), []).append(item)
        elif sk.startswith(PROVIDER_SK):
            records[str(item["provider"])] = item
    if change is None and not records and not events:
        return None
    any_item = change or next(iter(records.values()), None) or next(iter(events.values()))[0]
    providers = tuple(
        _provider(name, records.get(name, {}), events.get(name, [])) for name in sorted({*records, *events})
    )
    change = change or {}
    return ChangeStatus(
        change_id=str(any_item["change_id"]) if "change_id" in any_item else "?",
        action=change.get("action"),
        source=change.get("source") or {},
        rule=_plain(change["rule"]) if change.get("rule") else None,
        event_time=change.get("event_time"),
        recorded_at=change.get(AT) or min((p.accepted_at for p in providers if p.accepted_at), default=None),
        providers=providers,
    )


def _provider(name: str, record: Mapping[str, Any], events: list[Mapping[str, Any]]) -> ProviderStatus:
    def earliest(event: TrailEvent) -> str | None:
        return min((str(e[AT]) for e in events if e["event"] == event.value), default=None)

    attempts = sorted((e for e in events if e["event"] == TrailEvent.ATTEMPT.value), key=lambda e: str(e[AT]))
    errors = [(str(e[AT]), str(e["error"])) for e in attempts if e.get("error")]
    if record.get("last_error"):
        errors.append((str(record.get(AT, "")), str(record["last_error"])))
    ids = [*record.get("provider_ids", []), *(e["provider_id"] for e in attempts if e.get("provider_id"))]
    return ProviderStatus(
        provider=name,
        targets=tuple(record.get("targets", ())),
        targets_omitted=int(record.get("targets_omitted", 0)),
        provider_ids=tuple(dict.fromkeys(map(str, ids))),
        accepted_at=record.get("accepted_at"),
        completed_at=earliest(TrailEvent.COMPLETED),
        fresh_at=earliest(TrailEvent.FRESH),
        attempts=int(record.get("attempts", 0)) + len(attempts),
        last_error=max(errors)[1] if errors else None,
        coalesced_into=record.get("coalesced_into"),
    )


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; JSON wants ints."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# --- output ----------------------------------------------------------------------------------------


def to_json(changes: list[ChangeStatus]) -> dict[str, Any]:
    return {"changes": [_plain(asdict(change)) for change in changes]}


def write_json(changes: list[ChangeStatus], out: TextIO) -> None:
    json.dump(to_json(changes), out, indent=2, default=str)
    out.write("\n")


TARGETS_CHARS: Final = 2000  # a change's targets on one line: longer is cut, saying how long
COLUMNS: Final = ("PROVIDER", "ACCEPTED", "COMPLETED", "FRESH", "ATTEMPTS", "REQUEST ID", "LAST ERROR")


def write_table(changes: list[ChangeStatus], out: TextIO) -> None:
    """Per change: where it came from, the rule, the targets; then one row per provider."""
    for number, change in enumerate(changes):
        if number:
            print(file=out)
        # Every value below was read from the trail (keys, targets, a CDN's error and ids): one field each.
        action, change_id = external(change.action or "?"), external(change.change_id)
        print(f"{external(_describe_source(change))}  ({action}, change {change_id})", file=out)
        if change.rule:
            print(
                f"  rule {external(change.rule.get('index'))}: match {external(repr(change.rule.get('match')))}",
                file=out,
            )
        for provider in change.providers:
            name = external(provider.provider)
            more = f" (+{provider.targets_omitted} more)" if provider.targets_omitted else ""
            print(
                f"  {name} targets: {external(', '.join(map(str, provider.targets)) or '-', TARGETS_CHARS)}{more}",
                file=out,
            )
            if provider.coalesced_into:
                window = external(provider.coalesced_into)
                print(
                    f"  {name} shared targets coalesced into {window} (cdnpurge status --change-id '{window}')",
                    file=out,
                )
        rows = [COLUMNS, *(tuple(external(cell) for cell in _row(provider)) for provider in change.providers)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            print("  " + "  ".join([*cells, row[-1]]).rstrip(), file=out)


def _describe_source(change: ChangeStatus) -> str:
    source = change.source
    if "bucket" in source:
        version = next((f"{name} {source[name]}" for name in ("version_id", "sequencer", "etag") if name in source), "")
        account = f"account {source['account']} " if "account" in source else ""
        return f"{account}s3://{source['bucket']}/{source.get('key', '')}" + (f" [{version}]" if version else "")
    if "coalescing_window" in source:
        return f"coalescing window {source['coalescing_window']} (the shared targets of the changes it covers)"
    if "publisher_id" in source:
        return f"published {source['publisher_id']}"
    return f"published via {source.get('via', '?')} {source.get('message_id', '')}".rstrip()


def _row(provider: ProviderStatus) -> tuple[str, ...]:
    return (
        provider.provider,
        _when(provider.accepted_at),
        _after(provider.completed_at, provider.accepted_at),
        _after(provider.fresh_at, provider.accepted_at),
        str(provider.attempts),
        ", ".join(provider.provider_ids[:2]) + (" ..." if len(provider.provider_ids) > 2 else "") or "-",
        provider.last_error or "-",
    )


def _when(at: str | None) -> str:
    return "-" if at is None else str(at)[:19].replace("T", " ") + "Z"


def _after(at: str | None, accepted: str | None) -> str:
    """A later time as `+2.1 s` after acceptance (the number an operator asks for); a time read back that is not
    one is shown as it is."""
    if at is None:
        return "-"
    try:
        seconds = (_parse(str(at)) - _parse(str(accepted))).total_seconds()
    except (TypeError, ValueError):
        return _when(at)
    return f"+{seconds:.1f} s"


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


STATUS_EXAMPLES = f"""\
examples (the table is the stack output PurgeTrailTableName, or TRAIL_TABLE_NAME in the environment):
  cdnpurge status --bucket my-site-content --key docs/a.html     every recent change of one object
  cdnpurge status --url https://www.example.com/docs/a.html      what purged one URL (as URL, path, prefix, host)
  cdnpurge status --change-id 's3:my-site-content/docs/a.html@0065A1B2C3D4E5F6'
  cdnpurge status --since 1h --format json                       the last hour, for scripts
  cdnpurge status --stack cdnpurge --since 15m                   the stack's table, and a pause if any

Per change: its source (bucket, key and S3's sequencer or version id; or the publisher's id), the rule that
matched, and per provider its targets, the provider's request or job id, accepted / completed / fresh
(the last two as seconds after acceptance, once the verifier reports them), attempts and the last error.
Newest first, at most --limit changes. The trail is kept {DEFAULT_RETENTION_SECONDS // 86400} days by default
(TrailRetentionSeconds). AWS endpoint, region and credentials come from the usual AWS environment
(AWS_PROFILE, AWS_ENDPOINT_URL_DYNAMODB for the local stack). Needs dynamodb:Query on the table and its
indexes. Exit status: 0 found, 1 nothing recorded for the question, 2 usage or AWS error.
"""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "status",
        run,
        help="what happened to a change: accepted, completed, fresh, per provider (the purge trail)",
        description="Read the purge trail the function keeps for each (provider, change).",
        epilog=STATUS_EXAMPLES,
    )
    question = parser.add_mutually_exclusive_group(required=True)
    question.add_argument("--bucket", help="the object's bucket (with --key)")
    question.add_argument("--url", help="an absolute URL a purge named, as URL, path, directory prefix or host")
    question.add_argument("--change-id", help="one change id (as `cdnpurge plan` and the logs print it)")
    question.add_argument(
        "--since", type=_duration, metavar="AGE", help="changes recorded within AGE: 90s, 15m, 1h, 2d"
    )
    parser.add_argument("--key", help="the object's key (with --bucket)")
    parser.add_argument(
        "--table", default=None, help="the trail table (stack output PurgeTrailTableName; default $TRAIL_TABLE_NAME)"
    )
    parser.add_argument(
        "--stack",
        default=None,
        help="the stack: its trail table (unless --table), and whether purging is paused (`cdnpurge pause`)",
    )
    parser.add_argument("--limit", type=positive, default=DEFAULT_LIMIT, metavar="N", help="at most N changes (50)")
    parser.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except StatusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _retention() -> int:
    """The trail's retention as the stack sets it (TRAIL_RETENTION_SECONDS), else the template's default."""
    text = os.environ.get("TRAIL_RETENTION_SECONDS", "")
    return (
        int(text) if text.isdigit() and 0 < int(text) <= 10 * DEFAULT_RETENTION_SECONDS else DEFAULT_RETENTION_SECONDS
    )


def run(args: argparse.Namespace, context: Context) -> int:
    table = args.table or os.environ.get("TRAIL_TABLE_NAME")
    if args.stack is not None:
        try:
            table = args.table or _stack_trail(args.stack, context)
        except StackReadError as exc:
            print(f"cdnpurge: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if not table:
        print(
            "cdnpurge: name the trail table: --table NAME (stack output PurgeTrailTableName) or TRAIL_TABLE_NAME",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if (args.bucket is None) != (args.key is None):
        print("cdnpurge: --bucket and --key go together: name the object by both", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress(sys.stderr, "status", clock=context.clock)
    return print_status(
        TrailReader(context.client("dynamodb"), table, progress=progress, retention_seconds=_retention()),
        context.out,
        bucket=args.bucket,
        key=args.key,
        url=args.url,
        change_id=args.change_id,
        since_seconds=args.since,
        limit=args.limit,
        output_format=args.format,
    )


def _stack_trail(stack_name: str, context: Context) -> str:
    """The stack's trail table; says on stderr (stdout may be JSON) when purging is paused."""
    stack = read_stack(client_in(context, "cloudformation"), stack_name)
    record = read_pause(client_in(context, "ssm", stack.region), stack.name)
    if record is not None:
        print(f"cdnpurge: purging is PAUSED: {record.describe()}", file=sys.stderr)
    table = stack.outputs.get(TRAIL_TABLE_OUTPUT)
    if not table:
        raise StackReadError(f"stack {stack.name} keeps no purge trail (TrailEnabled is false)")
    return table


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
    It writes through `cdnpurge.cli.output.safe_stream`, so the demo's output is escaped as the CLI's is.
    """
    out = safe_stream(out)
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
