"""Coalescing windows: shared targets purged once per window across batches, never lost.

The pure decision (which targets wait, how they are stored, how a window's purge is named) is
`cdnpurge.core.coalesce`; the flush message is `cdnpurge.core.events.coalesce`. Here are the store and the
state machine.

Where the obligation lives. A window is one item in the idempotency table (key `cdnpurge#coalesce#<provider>
#<generation>`, beside the ledger's and the path counters' own prefixes: the function already reads and
writes that table, its TTL attribute cleans windows up, and a new table would be one more
resource, alarm and IAM grant for a few items a window). A head item (`cdnpurge#coalesce#<provider>`) holds
the provider's open generation, so writers find the open window with one consistent read.

A window's states, each move one conditional `UpdateItem` (DynamoDB applies them to the item one at a
time, so every write is either before a move or after it, never half):

    (absent) --join--> PENDING --join--> PENDING --take--> FLUSHING --take--> FLUSHING
                                                             |--finish--> DONE (kept until its TTL)

- *join* (a batch with shared targets): `ADD` the targets to the window's set, opening it if absent
  (`opened_at`, `due_at = opened_at + coalesce_seconds`), only while PENDING and not full. A window that is
  FLUSHING, DONE or full refuses; the writer moves the head past it and joins the next generation (a bounded
  number of times). Then the batch sends a flush message for that generation to the purge queue with
  `DelaySeconds` = what is left of the window less the batching window (rounded up; see Delay). Only when
  both the join and the send succeeded are the targets left to the window and the records acknowledged; if
  either fails (table unreachable or throttled, window full past the hops, queue unreachable, no time left),
  the batch purges them now, as it would without coalescing: the fallback never loses a purge. Every batch
  that joins sends its own flush message, so a window's purge does not depend on any one message arriving;
  and if every one was lost, the window stays open, so the next change joins it and its message, computed
  from the window's `due_at`, is due at once.
- *take* (a flush message arrives): PENDING or FLUSHING -> FLUSHING, reading the window's targets
  (`ReturnValues=ALL_NEW`: exactly the joins that happened before the move). The batch then claims
  `(provider, coalesce:<provider>#<generation>)` in the ledger and purges the targets like any change's,
  after every change that joined: the purge starts after the last change it covers. A join after the move
  fails its condition and goes to the next generation, which gets a purge of its own: a change is never
  skipped because an earlier purge of the same key was in flight.
- Many flush messages for one window (each joining batch sent one; SQS may duplicate any): a DONE or absent
  window has nothing left to purge, and the message is acknowledged. A FLUSHING one is taken again, and the
  ledger decides, as for any change: its purge in progress elsewhere leaves the record to SQS (retried, then
  acknowledged once that purge is done), a purge already done is skipped, and one whose invocation died or
  failed (its claim released or expired) is made by this message. So a message redelivered, or redriven
  from the dead-letter queue within the window's 14-day TTL, purges what is still owed and nothing twice.
- *finish*: once the ledger records the window's purge complete (or already done), FLUSHING -> DONE. A failed
  finish leaves the window FLUSHING: the next flush message for it finds the ledger's DONE and finishes it.
- The table unreachable when a flush message arrives: that record fails as a ledger claim would (returned
  to SQS, retried); the targets are still in the window.

Delay. With `coalesce_seconds` W and the event source's batching window B (the template passes
`MaximumBatchingWindowInSeconds` as `BATCHING_WINDOW_SECONDS`), a window counts from B before its first batch
arrived (the longest that batch's first change may have waited to be gathered), so it closes at most W after
its first change; its flush message is visible B before the window closes, so the batch gathering it starts
the purge when the window closes. Any change is purged at most W + B after it was enqueued (plus up to one
second of rounding the delay up, and the flush batch's own run: pacing and retries, as any purge), which is
the stated maximum delay: no starvation, since a continuous stream closes a window at least every W and the
next change opens the next one. A busy queue may deliver a flush message as soon as it is visible, so a
storm's window is between W - 2B and W long; choose W well above 2B.

Cost. Each joining batch pays one `GetItem`, one `UpdateItem` and one `SendMessage` per coalescing provider;
each window one `UpdateItem` to take it, one to move the head and one to finish it; the flush messages of a
window are read once each (most acknowledged at once, nothing to purge).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from functools import partial
from typing import Any, Final, TypeVar

import msgspec
from msgspec.structs import replace

from cdnpurge.core.answers import stored_number
from cdnpurge.core.coalesce import (
    FLUSH_ID_PREFIX,
    MAX_GENERATION,
    Destinations,
    encode_target,
    flush_change_id,
    flush_delay,
    flush_targets,
    flush_window,
    split,
)
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import CdnpurgeError, describe_error
from cdnpurge.core.events.coalesce import encode_flush
from cdnpurge.core.events.own import MAX_EPOCH
from cdnpurge.core.models import Change, RoutedTarget
from cdnpurge.core.spec import MAX_COALESCE_SECONDS, ProviderSpec
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.execute import Outcome
from cdnpurge.runtime.ledger import LedgerOperation, Pair
from cdnpurge.runtime.settle import LedgerFailure
from cdnpurge.runtime.verification.verifier import Purged, purged_from

T = TypeVar("T")

KEY_PREFIX: Final = "cdnpurge#coalesce"
ID, EXPIRY = "id", "expiration"  # the idempotency table's key and TTL attributes
# A window's item stays this long after it opened: SQS's longest retention, so a dead-lettered flush message
# redriven within it still finds its window.
WINDOW_KEPT_SECONDS: Final = 14 * 24 * 3600
# A window holds at most this many distinct targets, and at most this many bytes of them (a DynamoDB item is at
# most 400 KB, names and values together: a thousand stored targets of 2 KB each would be 2 MB, refused by
# DynamoDB with a ValidationException on every later join); then the next opens. Bytes are counted per join, so
# a target joined twice counts twice: the count errs towards handing on early, never towards an item refused.
MAX_WINDOW_TARGETS: Final = 1000
MAX_WINDOW_BYTES: Final = 300 * 1024
# How far apart two invocations' clocks may be (Lambda's are NTP-synchronised: milliseconds in practice).
CLOCK_SKEW_SECONDS: Final = 60.0
MAX_STORED_COUNT: Final = 1e12  # a window's count of changes, as read back (a report figure, never arithmetic)
# How many full or closed windows a join passes before purging now instead.
MAX_HOPS: Final = 4


class WindowState(StrEnum):
    """Where a window is in its life (see the module docstring for the moves between them)."""

    PENDING = "pending"
    FLUSHING = "flushing"
    DONE = "done"


class WindowBusyError(CdnpurgeError):
    """No window can take the join (every one tried was closed or full, the join alone is larger than a window,
    or the window's item cannot be read): the targets are purged now."""


class Joined(msgspec.Struct, frozen=True):
    """A batch's targets are in window `generation`, which closes at `due_at` (epoch seconds)."""

    generation: int
    due_at: float
    opened: bool  # this join opened the window


class Taken(msgspec.Struct, frozen=True):
    """A window moved to (or found in) FLUSHING by a flush message: what it holds."""

    targets: tuple[str, ...]
    changes: int
    opened_at: float


class DynamoDBWindows:
    """The windows' items in the idempotency table: every state move is one conditional `UpdateItem`."""

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self.clock = clock  # epoch seconds: windows open and close on it

    @staticmethod
    def _key(provider: str, generation: int | None = None) -> dict[str, Any]:
        suffix = "" if generation is None else f"#{generation}"
        return {ID: {"S": f"{KEY_PREFIX}#{provider}{suffix}"}}

    def open_generation(self, provider: str) -> int:
        item = self._client.get_item(TableName=self._table, Key=self._key(provider), ConsistentRead=True).get("Item")
        if not item or "generation" not in item:
            return 0
        generation = stored_number(item, "generation", low=-1, high=MAX_GENERATION)
        if generation is None or not 0 <= generation < MAX_GENERATION or generation != int(generation):
            raise WindowBusyError("the open window's generation is not a whole number below 2^53")
        return int(generation)

    def advance(self, provider: str, past: int) -> None:
        """Move the head past `past` (a window closed or full); a head already further stays."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(provider),
                UpdateExpression="SET #generation = :next",
                ConditionExpression="attribute_not_exists(#generation) OR #generation < :next",
                ExpressionAttributeNames={"#generation": "generation"},
                ExpressionAttributeValues={":next": {"N": str(past + 1)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return

    def join(
        self, provider: str, generation: int, targets: Sequence[str], changes: int, seconds: int, *, waited: float
    ) -> Joined | None:
        """Add `targets` to window `generation`, or None when it is closed or full. A window it opens counts
        from `waited` seconds ago (how long the batch's first change may have waited to be delivered)."""
        size = stored_bytes(targets)
        if len(targets) > MAX_WINDOW_TARGETS or size > MAX_WINDOW_BYTES:
            raise WindowBusyError(
                f"{len(targets)} target(s) of {size} bytes do not fit one window "
                f"({MAX_WINDOW_TARGETS} targets, {MAX_WINDOW_BYTES} bytes)"
            )
        now = self.clock()
        opened_at = now - waited
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=self._key(provider, generation),
                UpdateExpression=(
                    "ADD #targets :targets, #changes :changes, #bytes :bytes "
                    "SET #state = if_not_exists(#state, :pending), "
                    "#opened = if_not_exists(#opened, :now), #due = if_not_exists(#due, :due), "
                    "#expiry = if_not_exists(#expiry, :expiry)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#state) OR (#state = :pending AND "
                    "(attribute_not_exists(#targets) OR size(#targets) <= :room) AND "
                    "(attribute_not_exists(#bytes) OR #bytes <= :room_bytes))"
                ),
                ExpressionAttributeNames={
                    "#targets": "targets",
                    "#changes": "changes",
                    "#state": "state",
                    "#opened": "opened_at",
                    "#due": "due_at",
                    "#expiry": EXPIRY,
                    "#bytes": "bytes",
                },
                ExpressionAttributeValues={
                    ":targets": {"SS": list(targets)},
                    ":changes": {"N": str(changes)},
                    ":pending": {"S": WindowState.PENDING.value},
                    ":now": {"N": repr(opened_at)},
                    ":due": {"N": repr(opened_at + seconds)},
                    ":expiry": {"N": str(int(now) + WINDOW_KEPT_SECONDS)},
                    ":room": {"N": str(MAX_WINDOW_TARGETS - len(targets))},
                    ":bytes": {"N": str(size)},
                    ":room_bytes": {"N": str(MAX_WINDOW_BYTES - size)},
                },
                ReturnValues="UPDATED_OLD",  # nothing when this join opened the window
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        before = answer.get("Attributes", {})
        if "due_at" not in before:
            return Joined(generation, opened_at + seconds, opened=True)
        due_at = stored_number(before, "due_at", low=0, high=MAX_EPOCH)
        # Not a time, or one no joiner writes (a window is due within MAX_COALESCE_SECONDS of its opening,
        # give or take clock skew): purged now (the window's own flush messages are refused the same way)
        if due_at is None or due_at > now + MAX_COALESCE_SECONDS + CLOCK_SKEW_SECONDS:
            raise WindowBusyError(f"window {generation} holds no readable due_at")
        return Joined(generation, due_at, opened=False)

    def take(self, provider: str, generation: int) -> Taken | None:
        """Close window `generation` for its purge (PENDING or FLUSHING -> FLUSHING); None when it is absent
        or DONE: nothing is owed."""
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=self._key(provider, generation),
                UpdateExpression="SET #state = :flushing",
                ConditionExpression="#state IN (:pending, :flushing)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":flushing": {"S": WindowState.FLUSHING.value},
                    ":pending": {"S": WindowState.PENDING.value},
                },
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        item = answer["Attributes"]
        return Taken(
            targets=tuple(item.get("targets", {}).get("SS", ())),  # each checked by `flush_targets`
            changes=int(stored_number(item, "changes", low=0, high=MAX_STORED_COUNT) or 0),
            opened_at=stored_number(item, "opened_at", low=0, high=MAX_EPOCH) or 0.0,
        )

    def finish(self, provider: str, generation: int) -> None:
        """FLUSHING -> DONE once the window's purge is recorded complete (a DONE window stays DONE)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(provider, generation),
                UpdateExpression="SET #state = :done",
                ConditionExpression="#state IN (:flushing, :done)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":flushing": {"S": WindowState.FLUSHING.value},
                    ":done": {"S": WindowState.DONE.value},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return


class Deferral(msgspec.Struct, frozen=True):
    """A batch's shared targets for one provider, left to its window `flush_id` (durably: joined and sent)."""

    provider: str
    flush_id: str
    change_ids: tuple[str, ...]
    targets: int
    opened: bool
    due_at: float


class Flush(msgspec.Struct, frozen=True):
    """A flush message this batch read: whether it took the window (and so owes its purge)."""

    provider: str
    flush_id: str
    taken: bool
    targets: int = 0
    changes: int = 0
    opened_at: float | None = None
    why_not: str = ""  # not taken: why ("already purged")
    purged: bool = False  # this batch made the window's purge (not only found it done by another)
    finished: bool = False  # marked DONE after its purge completed


class CoalesceReport(msgspec.Struct, frozen=True):
    """What coalescing did in one batch, for the logs, the metrics, the purge trail and `cdnpurge status`."""

    deferrals: tuple[Deferral, ...] = ()
    flushes: tuple[Flush, ...] = ()
    fallbacks: tuple[str, ...] = ()  # "<provider>: N target(s) purged now: why" (redacted)
    errors: tuple[str, ...] = ()  # finishing a window, stored entries refused (nothing lost: see above)

    def covered_by(self) -> dict[str, str]:
        """change id -> the window purge (flush change id) that covers its shared targets."""
        return {change: d.flush_id for d in self.deferrals for change in d.change_ids}


class Coalesced(msgspec.Struct, frozen=True):
    """`Coalescer.gather`'s answer: what the batch plans now, and the flush records it could not read."""

    routed: list[RoutedTarget]
    unavailable: tuple[Pair, ...] = ()  # flush pairs whose window could not be read: retried like a claim
    failures: tuple[LedgerFailure, ...] = ()
    report: CoalesceReport = msgspec.field(default_factory=CoalesceReport)


class Coalescer(msgspec.Struct):
    """The pipeline's side of coalescing: `gather` before claiming, `settle` after the purges."""

    windows: DynamoDBWindows
    send_flush: Callable[[str, int], None]  # (body, DelaySeconds) onto the purge queue; raises on failure
    redact: Callable[[str], str] = str
    # The event source's batching window (see the module docstring, "Delay and cost"): a window counts from
    # this long before its first batch arrived, and its flush message is visible this long before it closes.
    batching_window_seconds: float = 0.0

    def gather(
        self,
        routed: Iterable[RoutedTarget],
        flushes: Sequence[Change],
        destinations: Destinations,
        specs: Mapping[str, ProviderSpec],
        deadline: Deadline,
    ) -> Coalesced:
        """Take the windows the batch's flush messages name, and leave its shared targets to windows."""
        now: list[RoutedTarget] = []
        unavailable: list[Pair] = []
        failures: list[LedgerFailure] = []
        taken: list[Flush] = []
        errors: list[str] = []
        for change_id in dict.fromkeys(change.id for change in flushes):  # a window once, however many messages
            provider, generation = flush_window(change_id)
            try:
                window = _bounded(
                    deadline, "taking a coalescing window", partial(self.windows.take, provider, generation)
                )
            except Exception as exc:  # the window stays as it was: the record is retried, like a claim
                pair = (provider, change_id)
                unavailable.append(pair)
                failures.append(LedgerFailure(LedgerOperation.CLAIM, (pair,), describe_error(exc, self.redact)))
                continue
            if window is None:
                taken.append(Flush(provider, change_id, taken=False, why_not="already purged"))
                continue
            targets, refused = flush_targets(change_id, provider, window.targets)
            if refused:
                errors.append(f"{change_id}: {refused} stored entrie(s) are not targets and were skipped")
            now.extend(targets)
            taken.append(Flush(provider, change_id, True, len(targets), window.changes, window.opened_at))
            self._best_effort(partial(self.windows.advance, provider, generation), deadline, errors)
        parts = split(routed, destinations, specs)
        deferrals: list[Deferral] = []
        fallbacks: list[str] = []
        for provider in sorted(parts.waiting):
            items = parts.waiting[provider]
            stored = sorted({encode_target(item.target.kind, item.target.value, item.soft) for item in items})
            change_ids = parts.changes(provider)
            try:
                joined = self._join(provider, stored, len(change_ids), specs[provider].coalesce_seconds or 1, deadline)
                body = encode_flush(provider, joined.generation, joined.due_at)
                delay = flush_delay(joined.due_at - self.batching_window_seconds, self.windows.clock())
                _bounded(deadline, "sending a coalescing flush message", partial(self.send_flush, body, delay))
            except Exception as exc:  # the fallback: purged now, as without coalescing
                parts.give_up(provider)
                fallbacks.append(self.redact(f"{provider}: {len(stored)} target(s) purged now: {describe_error(exc)}"))
                continue
            flush_id = flush_change_id(provider, joined.generation)
            deferrals.append(Deferral(provider, flush_id, change_ids, len(stored), joined.opened, joined.due_at))
        now.extend(parts.now)
        report = CoalesceReport(tuple(deferrals), tuple(taken), tuple(fallbacks), tuple(errors))
        return Coalesced(now, tuple(unavailable), tuple(failures), report)

    def _join(self, provider: str, stored: list[str], changes: int, seconds: int, deadline: Deadline) -> Joined:
        generation = _bounded(deadline, "reading a coalescing window", partial(self.windows.open_generation, provider))
        for _ in range(MAX_HOPS):
            join = partial(
                self.windows.join, provider, generation, stored, changes, seconds, waited=self.batching_window_seconds
            )
            joined = _bounded(deadline, "joining a coalescing window", join)
            if joined is not None:
                return joined
            _bounded(deadline, "opening a coalescing window", partial(self.windows.advance, provider, generation))
            generation += 1
        raise WindowBusyError(f"{MAX_HOPS} windows in a row were closed or full")

    def settle(
        self, coalesced: Coalesced, completed: set[Pair], duplicates: set[Pair], deadline: Deadline
    ) -> CoalesceReport:
        """Mark DONE every window whose purge the ledger now records: `completed` by this batch, or found
        done already (`duplicates`)."""
        report = coalesced.report
        errors = list(report.errors)
        flushes = []
        for flush in report.flushes:
            pair = (flush.provider, flush.flush_id)
            if flush.taken and (pair in completed or pair in duplicates):
                provider, generation = flush_window(flush.flush_id)
                finished = self._best_effort(partial(self.windows.finish, provider, generation), deadline, errors)
                flushes.append(replace(flush, purged=pair in completed, finished=finished))
            else:
                flushes.append(flush)
        return CoalesceReport(report.deferrals, tuple(flushes), report.fallbacks, tuple(errors))

    def _best_effort(self, call: Callable[[], None], deadline: Deadline, errors: list[str]) -> bool:
        """A write that only saves work later (moving the head, marking DONE): its failure is reported."""
        try:
            _bounded(deadline, "updating a coalescing window", call)
        except Exception as exc:
            errors.append(self.redact(describe_error(exc)))
            return False
        return True


def stored_bytes(targets: Iterable[str]) -> int:
    """What `targets` add to a window's item: DynamoDB counts a string set's members in UTF-8 bytes."""
    return sum(len(target.encode("utf-8", "surrogatepass")) for target in targets)


def _bounded(deadline: Deadline, what: str, call: Callable[[], T]) -> T:
    """One store or queue call within its bound and before `deadline` (none starts with less than one
    attempt's time left: `OutOfTimeError`, and the caller falls back)."""
    with bounded_call(deadline, CALL_SECONDS, what=what, need=MIN_CALL_SECONDS):
        return call()


def without_store(routed: Iterable[RoutedTarget], flushes: Sequence[Change]) -> Coalesced:
    """No coalescing store (the CLI, a direct run): every target is purged now, and a flush message, whose
    window cannot be read, is returned to its queue rather than acknowledged with its window unpurged."""
    pairs = tuple((flush_window(change.id)[0], change.id) for change in flushes)
    failures = (LedgerFailure(LedgerOperation.CLAIM, pairs, "no coalescing store to read the window from"),)
    return Coalesced(list(routed), pairs, failures if pairs else ())


def flush_sender(sqs: Callable[[], Any], queue_url: str | None) -> Callable[[str, int], None]:
    """`send_flush` onto the function's purge queue (`sqs` builds the client on first use); without a queue
    every send fails, so the targets are purged now."""

    def send(body: str, delay_seconds: int) -> None:
        if queue_url is None:
            raise CdnpurgeError("coalescing needs PURGE_QUEUE_URL to schedule its purge")
        sqs().send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_seconds)

    return send


def verified_purges(
    outcomes: Iterable[Outcome], report: CoalesceReport, now: float, batching_window_seconds: float
) -> list[Purged]:
    """What verification checks: the batch's accepted requests, less the windows' purges (their changes were
    checked as waiting when they joined), plus every change whose shared targets wait for a window, as a
    purge accepted now and ready once the window's purge ran (`estimated_seconds`), so the first probe at
    the edge comes after the coalesced purge, not before it."""
    purged = []
    for purge in purged_from(outcomes):
        changes = frozenset(change for change in purge.change_ids if not change.startswith(FLUSH_ID_PREFIX))
        if changes:
            purged.append(replace(purge, change_ids=changes))
    purged.extend(
        Purged(
            deferral.provider,
            frozenset(deferral.change_ids),
            None,
            max(0.0, deferral.due_at - now) + batching_window_seconds,
        )
        for deferral in report.deferrals
    )
    return purged
