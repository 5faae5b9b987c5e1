"""Idempotency at the grain that survives batching: one record per (provider, change), written in batches.

One purge request serves many changes, and SQS may redeliver a change in a differently-composed batch, so
the ledger keeps one record per (provider, change) with the states Powertools Idempotency uses: INPROGRESS
locks out concurrent duplicates until the holder's deadline, COMPLETED short-circuits redeliveries until
the record expires.

- a redelivered or duplicated change already COMPLETED at a provider is not purged there again;
- one already INPROGRESS elsewhere is left to that invocation and its record retried later by SQS;
- provider A succeeded, provider B failed: only B's record is released, so a retry calls only B;
- a new upload of the same object has a new change id (new sequencer), so it is purged again.

Why not Powertools' persistence layer itself: it writes one record per call, and a 1,000-change storm
made the ledger, not the CDN, set the pace (two round trips per change; DynamoDB Local managed ~260
changes a second). Here claims are conditional puts in `TransactWriteItems` of 25 records, several in
parallel (a cancelled transaction names, per record, whether its condition failed, and returns the
existing record so DONE and BUSY are told apart), completions and releases are `BatchWriteItem`s of
25 through the writer the purge trail uses too (`cdnpurge.runtime.dynamodb_batch`). The records keep
Powertools' layout, key hash (`record_key`) and claim condition (no record, an expired one, or an
INPROGRESS one whose holder's deadline passed; here in two steps, `FRESH_CONDITION` then
`TAKEOVER_CONDITION`), so a table written by either reads the same, and
tests/integration/test_ledger_dynamodb.py proves it both ways. Every write is a put or a delete (the
function's role grants no UpdateItem on ledger records).

When the store itself fails (DynamoDB unreachable, throttled, erroring), every operation still runs for
all its pairs and then raises `LedgerUnavailableError` naming the pairs it could not record; `claim`
attaches what it did learn, so the pipeline purges only what it really claimed and returns the rest to
SQS. A pair claimed by an invocation that died mid-batch is not stuck: its INPROGRESS record expires at
that invocation's deadline (`remaining_ms`), after which a redelivery may claim it again.

Each claim also names its *attempt* (`Attempt`): a `generation` written with a fresh claim and kept by
every later claim of the same record until it completes or expires, and `done`, the digests of the
targets that attempt already purged (`cdnpurge.runtime.progress`). A pair that is not completed is not
deleted on release but *parked*: INPROGRESS with its holder's deadline in the past (so Powertools and this
ledger both take it over at once), its generation and progress kept. So a redelivery continues the same
attempt (same CloudFront `CallerReference` for the same request, targets already purged skipped), while a
change purged again after the idempotency window (its record expired) is a new attempt.

Every operation runs inside the caller's `bounded_call` (`cdnpurge.runtime.settle` opens it): each call and
each back-off ends before the settling deadline, so a throttled table answering slowly cannot hold the
function past it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from botocore.exceptions import ClientError

from cdnpurge.core.answers import stored_number
from cdnpurge.core.errors import CdnpurgeError, describe_error
from cdnpurge.runtime.bounded import in_threads
from cdnpurge.runtime.dynamodb_batch import (
    BATCH_WRITE_ITEMS,
    DYNAMODB_RETRY,
    FAILURES_BEFORE_GIVING_UP,
    PARALLEL_CALLS,
    BatchWriter,
    StoreGaveUpError,
)

Pair = tuple[str, str]  # (provider, change id)

# Powertools Idempotency's record layout (DynamoDBPersistenceLayer defaults) and our key prefix.
KEY_PREFIX = "cdnpurge#provider-change"
ID, EXPIRY, IN_PROGRESS_EXPIRY, STATUS, DATA = "id", "expiration", "in_progress_expiration", "status", "data"
COMPLETED, INPROGRESS = "COMPLETED", "INPROGRESS"
# Ours, beside Powertools' attributes: the attempt a claim belongs to, and the targets it already purged.
GENERATION, DONE = "generation", "done"
# Powertools' claim condition (no record, an expired one, or an INPROGRESS one whose holder's deadline
# passed) in two conditional puts: a fresh claim (no record, or an expired one) starts a new attempt;
# taking over a record whose holder's deadline passed keeps the attempt it names.
FRESH_CONDITION = "attribute_not_exists(#id) OR #expiry < :now"
TAKEOVER_CONDITION = "#status = :inprogress AND #in_progress_expiry = :seen"

# Records per claim transaction. DynamoDB takes up to 100, but smaller transactions run in parallel
# (lower latency per batch) and a cancelled one re-sends fewer records.
CLAIM_ITEMS = 25
# Attempts per call while DynamoDB throttles records or leaves them unprocessed (the shared policy).
ATTEMPTS = DYNAMODB_RETRY.attempts
__all__ = ["BATCH_WRITE_ITEMS", "FAILURES_BEFORE_GIVING_UP", "PARALLEL_CALLS"]  # re-exported (one policy)
# Cancellation reasons that say "throttled: try again later" rather than something about the record.
THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


class LedgerOperation(StrEnum):
    """What the ledger was asked to do; a failure names it (logs, `LedgerFailure`)."""

    CLAIM = "claim"
    COMPLETE = "complete"
    RELEASE = "release"


LedgerGaveUpError = StoreGaveUpError  # not attempted: earlier calls of the same operation had already failed


class LedgerRefusedError(CdnpurgeError):
    """DynamoDB refused these records: it kept throttling them for `ATTEMPTS` calls, or named a reason
    (validation, item collection size) no retry within this invocation can change."""


class Claim(StrEnum):
    CLAIMED = "claimed"  # ours to purge now
    DONE = "done"  # purged by an earlier delivery within the idempotency window: skip
    BUSY = "busy"  # another invocation holds it right now: leave it, let SQS redeliver
    UNAVAILABLE = "unavailable"  # the store could not be asked: never purge blindly, let SQS redeliver


class Attempt(NamedTuple):
    """Which attempt a claimed pair belongs to: `generation` is the same for every claim of one record until
    it completes or expires (a redelivery), new after that (a purge asked for again); `done` holds the
    digests of the targets this attempt already purged (`cdnpurge.runtime.progress`)."""

    generation: str
    done: frozenset[str] = frozenset()


class Claims(dict[Pair, Claim]):
    """`claim`'s answer: each pair's state, and `attempts`, the attempt of every CLAIMED pair."""

    def __init__(self, states: Mapping[Pair, Claim] | None = None, attempts: Mapping[Pair, Attempt] | None = None):
        super().__init__(states or {})
        self.attempts: dict[Pair, Attempt] = dict(attempts or {})


def new_generation() -> str:
    """A fresh attempt's name: random, so two attempts never share a CloudFront `CallerReference`."""
    return uuid.uuid4().hex[:16]


class LedgerUnavailableError(CdnpurgeError):
    """The idempotency store failed for some pairs of one operation (`claim`, `complete` or `release`).

    `cause` names the first underlying error (type and message; the store's errors carry no secrets).
    `claims` holds, for `claim`, the state of every pair that was answered; the others are UNAVAILABLE.
    """

    def __init__(
        self,
        operation: LedgerOperation,
        pairs: Iterable[Pair],
        cause: str,
        claims: Mapping[Pair, Claim] | None = None,
    ) -> None:
        self.operation = operation
        self.pairs = tuple(pairs)
        self.cause = cause
        self.claims = dict(claims or {})
        super().__init__(f"idempotency store: {operation} failed for {len(self.pairs)} pair(s): {cause}")


class Ledger(Protocol):
    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> dict[Pair, Claim]:
        """Each pair's state; a `Claims` also names the attempt of each CLAIMED pair."""
        ...

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None: ...

    def release(self, pairs: Iterable[Pair], error: Exception, attempts: Mapping[Pair, Attempt] | None = None) -> None:
        """Let the pairs be claimed again; those with an `attempts` entry are parked with it (kept)."""
        ...


def record_key(pair: Pair) -> str:
    """The record's key as Powertools computes it for `event_key_jmespath="[provider, change]"` under our
    prefix: the md5 of the key's JSON. A hash keeps long S3 keys within DynamoDB's key size."""
    digest = hashlib.md5(json.dumps(list(pair), sort_keys=True).encode(), usedforsecurity=False).hexdigest()
    return f"{KEY_PREFIX}#{digest}"


class DynamoDBLedger:
    """A `Ledger` on a DynamoDB table with Powertools' idempotency schema (DynamoDB Local in tests)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        expires_after_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._expires_after_seconds = expires_after_seconds
        self._clock = clock
        self._sleep = sleep
        self._writer = BatchWriter(client, table_name, sleep=sleep)

    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> Claims:
        results = _each(pairs, CLAIM_ITEMS, lambda chunk: self._claim(chunk, remaining_ms))
        attempts = {pair: state for pair, state in results.items() if isinstance(state, Attempt)}
        states = {pair: state for pair, state in results.items() if isinstance(state, Claim)}
        claims = Claims({**states, **dict.fromkeys(attempts, Claim.CLAIMED)}, attempts)
        _raise_failures(LedgerOperation.CLAIM, results, claims)
        return claims

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        expiry, data = {"N": str(self._expiry(self._clock()))}, {"S": json.dumps(result)}
        self._write(
            LedgerOperation.COMPLETE,
            pairs,
            lambda key: {"PutRequest": {"Item": {ID: key, EXPIRY: expiry, STATUS: {"S": COMPLETED}, DATA: data}}},
        )

    def release(self, pairs: Iterable[Pair], error: Exception, attempts: Mapping[Pair, Attempt] | None = None) -> None:
        """Delete each record, or park it with its attempt: INPROGRESS, its holder's deadline long passed."""
        pairs, known = list(pairs), attempts or {}
        parked: dict[str, Attempt] = {record_key(pair): known[pair] for pair in pairs if pair in known}
        expiry = {"N": str(self._expiry(self._clock()))}

        def request_for(key: dict[str, str]) -> Any:
            attempt = parked.get(key["S"])
            if attempt is None:
                return {"DeleteRequest": {"Key": {ID: key}}}
            item: dict[str, Any] = {
                ID: key,
                EXPIRY: expiry,
                STATUS: {"S": INPROGRESS},
                IN_PROGRESS_EXPIRY: {"N": "0"},
                GENERATION: {"S": attempt.generation},
            }
            if attempt.done:
                item[DONE] = {"SS": sorted(attempt.done)}
            return {"PutRequest": {"Item": item}}

        self._write(LedgerOperation.RELEASE, pairs, request_for)

    def _expiry(self, now: float) -> int:
        return int(now) + self._expires_after_seconds

    def _claim(self, chunk: Sequence[Pair], remaining_ms: int | None) -> dict[Pair, Claim | Attempt | Exception]:
        """Fresh claims in one transaction, then takeovers of the records whose holder's deadline passed in a
        second one: a claimed pair's answer is its `Attempt`."""
        generations = {pair: new_generation() for pair in chunk}
        fresh, takeovers = self._transact(chunk, lambda pair: self._fresh_put(pair, remaining_ms, generations[pair]))
        settled: dict[Pair, Claim | Attempt | Exception] = {
            pair: Attempt(generations[pair]) if state is Claim.CLAIMED else state for pair, state in fresh.items()
        }
        if not takeovers:
            return settled
        attempts = {pair: _attempt_of(record) for pair, record in takeovers.items()}

        def takeover(pair: Pair) -> dict[str, Any]:
            return self._takeover(pair, remaining_ms, takeovers[pair], attempts[pair])

        taken, lost = self._transact(list(takeovers), takeover)
        for pair, state in taken.items():
            settled[pair] = attempts[pair] if state is Claim.CLAIMED else state
        for pair in lost:  # taken over by another invocation between our two steps
            settled[pair] = Claim.BUSY
        return settled

    def _transact(
        self, chunk: Sequence[Pair], item_for: Callable[[Pair], dict[str, Any]]
    ) -> tuple[dict[Pair, Claim | Exception], dict[Pair, Mapping[str, Any]]]:
        """One conditional write per pair in one transaction. A cancelled transaction writes nothing but says,
        per record, why: a failed condition settles that pair (DONE or BUSY, from the record returned) or,
        for an INPROGRESS record whose holder's deadline passed, names it as one to take over; the others go
        again in the next transaction. Returns (settled pairs, takeover candidates with their record)."""
        settled: dict[Pair, Claim | Exception] = {}
        takeovers: dict[Pair, Mapping[str, Any]] = {}
        pending = list(chunk)
        for attempt in range(ATTEMPTS):
            if not pending:
                break
            try:
                self._client.transact_write_items(
                    TransactItems=[item_for(pair) for pair in pending],
                    # Makes botocore's own retry of a timed-out call idempotent (no BUSY from our own write).
                    ClientRequestToken=uuid.uuid4().hex,
                )
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException" or len(reasons) != len(
                    pending
                ):
                    raise
                pending, throttled = _settle_cancelled(pending, reasons, settled, takeovers, self._clock())
                if throttled:
                    DYNAMODB_RETRY.pause(attempt, self._sleep, what="claiming again after a throttle")
                continue
            settled.update(dict.fromkeys(pending, Claim.CLAIMED))
            return settled, takeovers
        settled.update(dict.fromkeys(pending, LedgerRefusedError(f"throttled on {ATTEMPTS} attempts")))
        return settled, takeovers

    def _fresh_put(self, pair: Pair, remaining_ms: int | None, generation: str) -> dict[str, Any]:
        now = self._clock()
        item = {
            ID: {"S": record_key(pair)},
            EXPIRY: {"N": str(self._expiry(now))},
            STATUS: {"S": INPROGRESS},
            GENERATION: {"S": generation},
        }
        if remaining_ms is not None:
            item[IN_PROGRESS_EXPIRY] = {"N": str(int(now * 1000) + remaining_ms)}
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": FRESH_CONDITION,
                "ExpressionAttributeNames": {"#id": ID, "#expiry": EXPIRY},
                "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _takeover(
        self, pair: Pair, remaining_ms: int | None, record: Mapping[str, Any], attempt: Attempt
    ) -> dict[str, Any]:
        """Hold the record again, its attempt kept, if it is still the one we saw (its holder's deadline): a
        conditional put of the record as it was, under our deadline."""
        item = self._fresh_put(pair, remaining_ms, attempt.generation)
        put = item["Put"]
        if attempt.done:
            put["Item"][DONE] = {"SS": sorted(attempt.done)}
        put["ConditionExpression"] = TAKEOVER_CONDITION
        put["ExpressionAttributeNames"] = {"#status": STATUS, "#in_progress_expiry": IN_PROGRESS_EXPIRY}
        put["ExpressionAttributeValues"] = {":inprogress": {"S": INPROGRESS}, ":seen": record[IN_PROGRESS_EXPIRY]}
        return item

    def _write(
        self, operation: LedgerOperation, pairs: Iterable[Pair], request_for: Callable[[dict[str, str]], Any]
    ) -> None:
        """Unconditional puts or deletes (as Powertools' save_success and delete_record) through the shared
        batch writer; the pairs it could not write are raised as one `LedgerUnavailableError`."""
        ordered = list(dict.fromkeys(pairs))
        outcomes = self._writer.write([request_for({"S": record_key(pair)}) for pair in ordered])
        _raise_failures(operation, dict(zip(ordered, outcomes, strict=True)))


def _settle_cancelled(
    pending: Sequence[Pair],
    reasons: Sequence[Mapping[str, Any]],
    settled: dict[Pair, Claim | Exception],
    takeovers: dict[Pair, Mapping[str, Any]],
    now: float,
) -> tuple[list[Pair], bool]:
    """Record what each cancellation reason says; return the pairs to try again and whether to wait first."""
    again: list[Pair] = []
    throttled = False
    for pair, reason in zip(pending, reasons, strict=True):
        code = reason.get("Code")
        if code == "ConditionalCheckFailed":
            record = reason.get("Item", {})
            status = record.get(STATUS, {}).get("S")
            if status == COMPLETED:
                settled[pair] = Claim.DONE
            elif _holder_gone(record, now) and pair not in takeovers:
                takeovers[pair] = record
            else:
                settled[pair] = Claim.BUSY
        elif code == "TransactionConflict":  # another invocation is writing this very record right now
            settled[pair] = Claim.BUSY
        elif code in (None, "None") or code in THROTTLED:  # cancelled because of the others, or throttled
            again.append(pair)
            throttled = throttled or code in THROTTLED
        else:
            settled[pair] = LedgerRefusedError(f"{code}: {str(reason.get('Message', ''))[:200]}")
    return again, throttled


def _holder_gone(record: Mapping[str, Any], now: float) -> bool:
    """An INPROGRESS record whose holder's deadline passed (Powertools' takeover condition)."""
    if record.get(STATUS, {}).get("S") != INPROGRESS or IN_PROGRESS_EXPIRY not in record:
        return False
    expiry = stored_number(record, IN_PROGRESS_EXPIRY, low=0, high=1e15)  # epoch milliseconds
    return expiry is not None and int(expiry) < int(now * 1000)


def _attempt_of(record: Mapping[str, Any]) -> Attempt:
    """The attempt a stored record names (a record without one, written by Powertools, gets a new one)."""
    generation = record.get(GENERATION, {}).get("S") or new_generation()
    return Attempt(generation, frozenset(record.get(DONE, {}).get("SS", ())))


def _each(pairs: Iterable[Pair], size: int, call: Callable[[list[Pair]], Mapping[Pair, Any]]) -> dict[Pair, Any]:
    """`call` for every chunk of `size` pairs, in parallel; an exception becomes the result of each pair of
    its chunk instead of stopping the rest, until the store has failed `FAILURES_BEFORE_GIVING_UP` times:
    then the rest are not tried."""
    failures: list[Exception] = []  # list.append is atomic: no lock needed between the pool's threads

    def guarded(chunk: list[Pair]) -> Mapping[Pair, Any]:
        if len(failures) >= FAILURES_BEFORE_GIVING_UP:
            first = failures[0]
            gave_up = LedgerGaveUpError(f"not tried after {len(failures)} failures; first: {type(first).__name__}")
            return dict.fromkeys(chunk, gave_up)
        try:
            return call(chunk)
        except Exception as exc:  # the store's failures vary (botocore, network): each is reported
            failures.append(exc)
            return dict.fromkeys(chunk, exc)

    ordered = list(dict.fromkeys(pairs))
    chunks = [ordered[start : start + size] for start in range(0, len(ordered), size)]
    results: dict[Pair, Any] = {}
    for answered in in_threads(guarded, chunks, threads=PARALLEL_CALLS):
        results.update(answered)
    return results


def _raise_failures(
    operation: LedgerOperation, results: Mapping[Pair, Any], claims: Mapping[Pair, Claim] | None = None
) -> None:
    failed = {pair: result for pair, result in results.items() if isinstance(result, Exception)}
    if failed:
        raise LedgerUnavailableError(operation, failed, describe_error(next(iter(failed.values()))), claims)
