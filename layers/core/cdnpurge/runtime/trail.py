"""The purge trail: what happened to each (provider, change), kept for a week so `cdnpurge status` can say.

The idempotency ledger answers "was this purged already?" for an hour; the trail answers "what happened to
my change, and is it live yet?" for `retention_seconds` (7 days by default). It lives in a table of its own
(`PurgeTrailTable`), not in the ledger's: its key has a sort key (the ledger's is a hash key only, fixed
by Powertools' layout), so one change's records come back in one Query; its indexes are created with it
(CloudFormation adds at most one index to an existing table per update, and the ledger's table already
holds the billed-path counters); and a failed trail write can never be mistaken for, or slow down, a claim.

Layout: one partition per change, `pk = cdnpurge#trail#<hash of the change id>`:

- `sk = change`: the source (bucket, key and the identity S3 gave the change: sequencer, else version id;
  or the publisher's id and how it arrived), the rule that matched (index and pattern), when it was seen.
  It carries `lookup = object:<bucket>/<key>` and a sharded `hour` for the two indexes below.
- `sk = provider#<name>`: that provider's targets (at most `MAX_TARGETS_LISTED`, `targets_omitted` says
  how many more), the provider's request or job ids, accepted at, attempts and the last error.
- `sk = provider#<name>#<event>#<at>...`: what the verifier reports later (`completed`, `fresh`,
  `attempt`), each its own item: written blind in batches (no read, no condition, no UpdateItem), in any
  order relative to the record itself, and the earliest `completed`/`fresh` wins when read.
- `sk = target#<hash>`: one per URL, path, prefix or host target (at most `MAX_INDEXED_TARGETS`), with
  `lookup = <kind>:<value>`, so `cdnpurge status --url` is a Query too.

Two KEYS_ONLY global secondary indexes: `by-lookup` (`lookup`, `at`: by object, by URL) and `by-hour`
(`hour`, `at`: by time; the hour is split over `HOUR_SHARDS` keys so a storm's writes spread over several
index partitions). docs/trail.md weighs their cost. Every item has `expires_at`, the table's TTL.

Writes never fail or delay a purge: the service writes the batch's trail after its purges were made, in
`BatchWriteItem`s of 25 in parallel through the writer the ledger uses too (`cdnpurge.runtime.dynamodb_batch`),
each write one bounded call that ends before the deadline it is given (or, without one, within
`TRAIL_WRITE_SECONDS` and the enclosing bounded call); what cannot be written is returned as a
`TrailWriting` (logged and counted as `TrailWriteFailed`), never raised.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec
from boto3.dynamodb.types import TypeSerializer

from cdnpurge.core.coalesce import FLUSH_ID_PREFIX
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events.repurge import REPURGE_SUFFIX
from cdnpurge.core.models import Change, Target, TargetKind
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.dynamodb_batch import BatchWriter

if TYPE_CHECKING:
    from cdnpurge.core.config import Rule
    from cdnpurge.core.events import Decoded
    from cdnpurge.core.models import Plan
    from cdnpurge.core.translate import Translation
    from cdnpurge.runtime.coalesce import CoalesceReport
    from cdnpurge.runtime.execute import Outcome

KEY_PREFIX: Final = "cdnpurge#trail#"
PK, SK, AT, EXPIRES_AT, LOOKUP, HOUR = "pk", "sk", "at", "expires_at", "lookup", "hour"
LOOKUP_INDEX, HOUR_INDEX = "by-lookup", "by-hour"
CHANGE_SK: Final = "change"
PROVIDER_SK: Final = "provider#"
TARGET_SK: Final = "target#"
DEFAULT_RETENTION_SECONDS: Final = 7 * 24 * 3600
# The longest one trail write (a batch's items, or a verifier's reports) may take when its deadline leaves more.
TRAIL_WRITE_SECONDS: Final = 5.0
# Index keys per hour: a storm writes thousands of change items within the same hour, and one index
# partition key takes about 1,000 writes a second; four keys cost `cdnpurge status --since` four Queries
# an hour.
HOUR_SHARDS: Final = 4
# Bounds that keep every item far below DynamoDB's 400 KB: targets listed per record (and their bytes),
# targets indexed per change, request ids per record, characters of an error, bytes of an index key.
MAX_TARGETS_LISTED: Final = 50
MAX_TARGET_BYTES: Final = 32_000
MAX_INDEXED_TARGETS: Final = 20
MAX_PROVIDER_IDS: Final = 20
MAX_ERROR_CHARS: Final = 1000
MAX_LOOKUP_BYTES: Final = 1024  # an index partition key may hold 2,048 bytes
# Target kinds a URL can be traced back to (a surrogate key or tag cannot).
INDEXED_KINDS: Final = frozenset({TargetKind.URL, TargetKind.PATH, TargetKind.PREFIX, TargetKind.HOST})
# What an S3 change id's identity part starts with (`events.s3`: sequencer, else version id, ETag, time).
_IDENTITY_FIELDS: Final = (("version:", "version_id"), ("etag:", "etag"), ("time:", "event_time"))

_serialize = TypeSerializer().serialize


class TrailEvent(StrEnum):
    """What the verifier reports about one (provider, change) after the purge was accepted."""

    COMPLETED = "completed"  # the provider's job finished (CloudFront invalidation, Medianova job, ...)
    FRESH = "fresh"  # the edge was first seen serving the new version
    ATTEMPT = "attempt"  # one more purge of the pair (a re-purge of what was still stale), with its outcome


class TrailWriting(msgspec.Struct, frozen=True):
    """What one trail write did: items written, items not written and the first cause. Never raised."""

    written: int = 0
    failed: int = 0
    cause: str | None = None


class TrailUpdate(msgspec.Struct, frozen=True):
    """One verifier report, for `DynamoDBTrail.report` (which writes many in one batch)."""

    event: TrailEvent
    provider: str
    change_id: str
    at: float  # seconds since the epoch
    error: str | None = None  # ATTEMPT only: why it failed
    provider_id: str | None = None  # ATTEMPT only: the provider's request or job id


def partition_key(change_id: str) -> str:
    """The partition of one change: hashed, because an S3 change id holds a key of up to 1,024 bytes."""
    return KEY_PREFIX + hashlib.sha256(change_id.encode()).hexdigest()[:32]


def object_lookup(bucket: str, key: str) -> str:
    return f"object:{bucket}/{key}"


def iso(at: float) -> str:
    """A fixed-width UTC timestamp, so index sort keys order as times do."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hour_keys(at: float) -> tuple[str, ...]:
    """Every `hour` index key of the hour holding `at`."""
    hour = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H")
    return tuple(f"{hour}#{shard}" for shard in range(HOUR_SHARDS))


def _hour_key(at: float, change_id: str) -> str:
    return hour_keys(at)[int(hashlib.sha256(change_id.encode()).hexdigest()[:8], 16) % HOUR_SHARDS]


def source_of(change: Change) -> dict[str, str]:
    """Where a change came from: the S3 object and the identity S3 gave this version, or the publisher."""
    if change.bucket is not None:
        source = {"bucket": change.bucket, "key": change.key or ""}
        identity = change.id.removesuffix(REPURGE_SUFFIX).rpartition("@")[2]  # the account is before the bucket
        name = next((name for prefix, name in _IDENTITY_FIELDS if identity.startswith(prefix)), "sequencer")
        source[name] = identity.split(":", 1)[1] if name != "sequencer" else identity
        if change.id.endswith(REPURGE_SUFFIX):
            source["repurge"] = "delayed second purge"
        if change.account is not None:
            source["account"] = change.account  # another account's bucket (its S3 event forwarded here)
        return source
    origin, _, identity = change.id.partition(":")
    if origin == "coalesce":  # a coalescing window's purge: `<provider>#<generation>`, from its flush message
        return {"coalescing_window": identity, "message_id": change.source_id}
    if origin == "pub":
        return {"publisher_id": identity, "message": change.source_id}
    return {"via": origin, "message_id": identity}


def _listed_targets(targets: Sequence[Target]) -> tuple[list[str], int]:
    """The targets a record lists (bounded in number and bytes) and how many it leaves out."""
    listed: list[str] = []
    size = 0
    for target in targets[:MAX_TARGETS_LISTED]:
        text = str(target)
        size += len(text.encode())
        if size > MAX_TARGET_BYTES:
            break
        listed.append(text)
    return listed, len(targets) - len(listed)


class _PairState(msgspec.Struct):
    """Everything the batch's requests say about one (provider, change)."""

    outcomes: list[Outcome] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return bool(self.outcomes) and not self.errors and all(o.ok for o in self.outcomes)

    def provider_ids(self) -> list[str]:
        ids = (o.result.provider_id for o in self.outcomes if o.result is not None and o.result.provider_id)
        return list(dict.fromkeys(ids))[:MAX_PROVIDER_IDS]

    def last_error(self) -> str | None:
        for outcome in reversed(self.outcomes):
            if outcome.ok:
                continue
            why = "deferred: out of time" if outcome.deferred else "failed"
            return f"{why}: {outcome.error.message}" if outcome.error else why
        return self.errors[-1] if self.errors else None


class BatchRun(Protocol):
    """What the trail reads of one batch's run: `cdnpurge.runtime.report.BatchRun` is one. Named here, not
    imported, because the batch report carries the trail's `TrailWriting` (imports point one way)."""

    @property
    def decoded(self) -> Decoded: ...

    @property
    def translation(self) -> Translation: ...

    @property
    def plan(self) -> Plan: ...

    @property
    def outcomes(self) -> tuple[Outcome, ...]: ...

    @property
    def coalescing(self) -> CoalesceReport: ...


def batch_items(
    run: BatchRun,
    rules: Sequence[Rule],
    *,
    now: float,
    expires_at: int,
    redact: Callable[[str], str] = str,
) -> list[dict[str, Any]]:
    """The trail items of one batch (plain values; `DynamoDBTrail` serialises them): a change item and
    target items per change purged, a record per (provider, change) attempted. Pure: tested without a
    table. Duplicates (already purged) and pairs left to another invocation were not attempted here."""
    pairs: dict[tuple[str, str], _PairState] = defaultdict(_PairState)
    for outcome in run.outcomes:
        for change_id in outcome.request.change_ids:
            pairs[(outcome.request.provider, change_id)].outcomes.append(outcome)
    for failure in run.plan.errors:
        for change_id in failure.change_ids:
            pairs[(failure.provider, change_id)].errors.append(failure.message)
    coalesced = {(d.provider, change_id): d.flush_id for d in run.coalescing.deferrals for change_id in d.change_ids}
    for pair in coalesced:
        pairs[pair]  # a record even where nothing was sent now: it says which purge will serve the change
    if not pairs:
        return []
    targets: dict[str, list[tuple[Target, frozenset[str] | None]]] = defaultdict(list)
    for routed in run.translation.routed:
        targets[routed.change_id].append((routed.target, routed.providers))
    for outcome in run.outcomes:  # a coalescing window's purge has no rule: its targets are its requests'
        request = outcome.request
        for change_id in request.change_ids:
            if change_id.startswith(FLUSH_ID_PREFIX):
                only = frozenset({request.provider})
                targets[change_id].extend((Target(request.kind, value), only) for value in request.targets)
    at = iso(now)
    common = {AT: at, EXPIRES_AT: expires_at}
    changes = {change.id: change for change in run.decoded.changes}
    items: list[dict[str, Any]] = []
    for change_id in sorted({change_id for _, change_id in pairs}):
        change = changes[change_id]
        pk = partition_key(change_id)
        item: dict[str, Any] = {
            PK: pk,
            SK: CHANGE_SK,
            "change_id": change_id,
            "action": change.action.value,
            "source": source_of(change),
            HOUR: _hour_key(now, change_id),
            **common,
        }
        if change.event_time:
            item["event_time"] = change.event_time
        if change.bucket is not None:
            item[LOOKUP] = object_lookup(change.bucket, change.key or "")
        position = run.translation.rule_of.get(change_id)
        if position is not None and position < len(rules):
            item["rule"] = {"index": position, "match": rules[position].match, "bucket": rules[position].bucket}
        items.append(item)
        indexed = [t for t, _ in targets[change_id] if t.kind in INDEXED_KINDS]
        for target in dict.fromkeys(indexed[:MAX_INDEXED_TARGETS]):
            lookup = str(target)
            if len(lookup.encode()) <= MAX_LOOKUP_BYTES:
                digest = hashlib.sha256(lookup.encode()).hexdigest()[:32]
                items.append({PK: pk, SK: TARGET_SK + digest, LOOKUP: lookup, **common})
    for (provider, change_id), state in sorted(pairs.items()):
        mine = [t for t, providers in targets[change_id] if providers is None or provider in providers]
        listed, omitted = _listed_targets(mine)
        record: dict[str, Any] = {
            PK: partition_key(change_id),
            SK: PROVIDER_SK + provider,
            "provider": provider,
            "change_id": change_id,
            "targets": listed,
            "targets_omitted": omitted,
            "provider_ids": state.provider_ids(),
            # The most calls any one request serving the pair needed (1: accepted at the first try).
            "attempts": max((o.attempts for o in state.outcomes), default=0),
            **common,
        }
        if state.accepted:
            record["accepted_at"] = at
        if (provider, change_id) in coalesced:
            record["coalesced_into"] = coalesced[(provider, change_id)]
        error = state.last_error()
        if error is not None:
            record["last_error"] = redact(error)[:MAX_ERROR_CHARS]
        items.append(record)
    return items


def update_item(update: TrailUpdate, *, expires_at: int) -> dict[str, Any]:
    """One verifier report as its own item in the change's partition (see the module docstring)."""
    at = iso(update.at)
    unique = f"#{uuid.uuid4().hex[:8]}" if update.event is TrailEvent.ATTEMPT else ""
    item: dict[str, Any] = {
        PK: partition_key(update.change_id),
        SK: f"{PROVIDER_SK}{update.provider}#{update.event.value}#{at}{unique}",
        "provider": update.provider,
        "change_id": update.change_id,
        "event": update.event.value,
        AT: at,
        EXPIRES_AT: expires_at,
    }
    if update.error is not None:
        item["error"] = update.error[:MAX_ERROR_CHARS]
    if update.provider_id is not None:
        item["provider_id"] = update.provider_id
    return item


class DynamoDBTrail:
    """The trail on its DynamoDB table: the service writes each batch (`record`), the verifier reports
    what it learns later (`completed`, `fresh`, `attempt`, or many at once with `report`).

    No method raises for a store failure: each returns a `TrailWriting` saying what was not written.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self._retention = retention_seconds
        self._clock = clock
        self._writer = BatchWriter(client, table_name, sleep=sleep)

    def record(
        self,
        run: BatchRun,
        rules: Sequence[Rule],
        redact: Callable[[str], str] = str,
        *,
        deadline: Deadline | None = None,
    ) -> TrailWriting:
        """Write one batch's trail (after its purges were made), ending before `deadline`."""
        now = self._clock()
        items = batch_items(run, rules, now=now, expires_at=self._expiry(now), redact=redact)
        return self._put(items, deadline)

    def completed(self, provider: str, change_id: str, at: float) -> TrailWriting:
        """The provider reported the purge done (its job finished) at `at` (seconds since the epoch)."""
        return self.report([TrailUpdate(TrailEvent.COMPLETED, provider, change_id, at)])

    def fresh(self, provider: str, change_id: str, at: float) -> TrailWriting:
        """The provider's edge was seen serving the new version at `at`; the earliest report is kept."""
        return self.report([TrailUpdate(TrailEvent.FRESH, provider, change_id, at)])

    def attempt(
        self, provider: str, change_id: str, at: float, *, error: str | None = None, provider_id: str | None = None
    ) -> TrailWriting:
        """One more purge of the pair at `at` (the verifier purged again what was still stale): `error` if it
        failed (the caller redacts it), `provider_id` if the provider accepted it. Counts as an attempt."""
        return self.report([TrailUpdate(TrailEvent.ATTEMPT, provider, change_id, at, error, provider_id)])

    def report(self, updates: Iterable[TrailUpdate], *, deadline: Deadline | None = None) -> TrailWriting:
        """Many verifier reports in as few `BatchWriteItem`s as they fit, ending before `deadline`."""
        expires_at = self._expiry(self._clock())
        return self._put([update_item(update, expires_at=expires_at) for update in updates], deadline)

    def _expiry(self, now: float) -> int:
        return int(now) + self._retention

    def _put(self, items: Sequence[Mapping[str, Any]], deadline: Deadline | None) -> TrailWriting:
        unique = {(item[PK], item[SK]): item for item in items}  # a BatchWriteItem refuses a key twice
        requests = [{"PutRequest": {"Item": {k: _serialize(v) for k, v in item.items()}}} for item in unique.values()]
        if not requests:
            return TrailWriting()
        try:
            with bounded_call(deadline or Deadline.after(TRAIL_WRITE_SECONDS), TRAIL_WRITE_SECONDS, what="trail write"):
                outcomes = self._writer.write(requests)
        except Exception as exc:  # not started in time: nothing written, reported
            return TrailWriting(failed=len(requests), cause=describe_error(exc))
        problems = [outcome for outcome in outcomes if outcome is not None]
        cause = describe_error(problems[0]) if problems else None
        return TrailWriting(written=len(requests) - len(problems), failed=len(problems), cause=cause)


class TrailVerificationListener:
    """The purge trail as verification's listener (`cdnpurge.runtime.verification.verifier.VerificationListener`):
    first seen fresh becomes the pair's `fresh_at`; a stale URL or a failed check becomes an attempt with its
    reason, so `cdnpurge status` shows why a change is not fresh yet. Reports are written one by one, as the
    verifier learns them; like every trail write, a failure is returned by the trail, never raised here."""

    def __init__(self, trail: DynamoDBTrail, clock: Callable[[], float]) -> None:
        self._trail = trail
        self._clock = clock

    def fresh(self, provider: str, change_id: str, at: float, url: str) -> None:
        self._trail.fresh(provider, change_id, at)

    def stale(
        self, provider: str, change_id: str, url: str, *, served: str | None, origin: str | None, attempt: int
    ) -> None:
        error = f"still stale at {url} (check {attempt}): served {served}, origin {origin}"
        self._trail.attempt(provider, change_id, self._clock(), error=error)

    def failed(self, provider: str, change_id: str, reason: str) -> None:
        self._trail.attempt(provider, change_id, self._clock(), error=reason)
