"""Idempotency at the grain that survives batching: one record per (provider, change).

Powertools Idempotency keys a record by a hash of chosen payload fields, with an INPROGRESS state that
locks out concurrent duplicates and a COMPLETED state that short-circuits redeliveries until the record
expires. Its decorator works per function call; we need the same states per (provider, change) because
one purge request serves many changes and SQS may redeliver a change in a differently-composed batch.
So the ledger drives the Powertools persistence layer's public API (`save_inprogress`, `save_success`,
`delete_record`) directly, keyed on `[provider, change]`:

- a redelivered or duplicated change already COMPLETED at a provider is not purged there again;
- one already INPROGRESS elsewhere is left to that invocation and its record retried later by SQS;
- provider A succeeded, provider B failed: only B's record is released, so a retry calls only B;
- a new upload of the same object has a new change id (new sequencer), so it is purged again.

When the store itself fails (DynamoDB unreachable, throttled, erroring), every operation still runs for
all its pairs and then raises `LedgerUnavailableError` naming the pairs it could not record; `claim`
attaches what it did learn, so the pipeline purges only what it really claimed and returns the rest to
SQS. A pair claimed by an invocation that died mid-batch is not stuck: its INPROGRESS record expires at
that invocation's deadline (`remaining_ms`), after which a redelivery may claim it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

Pair = tuple[str, str]  # (provider, change id)
COMPLETED = "COMPLETED"
# Enough parallel DynamoDB calls to hide round trips for large batches without throttling a table.
PARALLEL_CALLS = 16
# After this many failed calls in one operation the store is taken to be down and the remaining pairs
# are not tried: an unreachable table that times out (rather than refusing) must not eat the function's
# whole timeout one pair at a time. Those pairs get the same policy as the ones that failed.
FAILURES_BEFORE_GIVING_UP = PARALLEL_CALLS


class StoreGaveUpError(Exception):
    """Not attempted: earlier calls of the same operation had already failed (see FAILURES_BEFORE_GIVING_UP)."""


class Claim(StrEnum):
    CLAIMED = "claimed"  # ours to purge now
    DONE = "done"  # purged by an earlier delivery within the idempotency window: skip
    BUSY = "busy"  # another invocation holds it right now: leave it, let SQS redeliver
    UNAVAILABLE = "unavailable"  # the store could not be asked: never purge blindly, let SQS redeliver


class LedgerUnavailableError(Exception):
    """The idempotency store failed for some pairs of one operation (`claim`, `complete` or `release`).

    `cause` names the first underlying error (type and message; the store's errors carry no secrets).
    `claims` holds, for `claim`, the state of every pair that was answered; the others are UNAVAILABLE.
    """

    def __init__(
        self, operation: str, pairs: Iterable[Pair], cause: str, claims: Mapping[Pair, Claim] | None = None
    ) -> None:
        self.operation = operation
        self.pairs = tuple(pairs)
        self.cause = cause
        self.claims = dict(claims or {})
        super().__init__(f"idempotency store: {operation} failed for {len(self.pairs)} pair(s): {cause}")


class Ledger(Protocol):
    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> dict[Pair, Claim]: ...

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None: ...

    def release(self, pairs: Iterable[Pair], error: Exception) -> None: ...


class PowertoolsLedger:
    """A `Ledger` on any Powertools persistence layer (DynamoDB in AWS, DynamoDB Local in tests)."""

    def __init__(self, persistence: BasePersistenceLayer, *, expires_after_seconds: int = 3600) -> None:
        config = IdempotencyConfig(
            event_key_jmespath="[provider, change]",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
        )
        persistence.configure(config, key_prefix="cdnpurge#provider-change")
        self._persistence = persistence

    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> dict[Pair, Claim]:
        results = _each(pairs, lambda pair: self._claim(pair, remaining_ms))
        claims = {pair: state for pair, state in results.items() if isinstance(state, Claim)}
        _raise_failures("claim", results, claims)
        return claims

    def _claim(self, pair: Pair, remaining_ms: int | None) -> Claim:
        try:
            self._persistence.save_inprogress(_data(pair), remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError as exists:
            record = exists.old_data_record
            return Claim.DONE if record is not None and record.status == COMPLETED else Claim.BUSY
        return Claim.CLAIMED

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        _raise_failures("complete", _each(pairs, lambda pair: self._persistence.save_success(_data(pair), result)))

    def release(self, pairs: Iterable[Pair], error: Exception) -> None:
        _raise_failures("release", _each(pairs, lambda pair: self._persistence.delete_record(_data(pair), error)))


def _each(pairs: Iterable[Pair], call: Callable[[Pair], Any]) -> dict[Pair, Any]:
    """`call` for every pair in parallel; an exception becomes that pair's result instead of stopping the
    rest, until the store has failed `FAILURES_BEFORE_GIVING_UP` times: then the rest are not tried."""
    failures: list[Exception] = []  # list.append is atomic: no lock needed between the pool's threads

    def guarded(pair: Pair) -> Any:
        if len(failures) >= FAILURES_BEFORE_GIVING_UP:
            first = failures[0]
            return StoreGaveUpError(f"not tried after {len(failures)} failures; first: {type(first).__name__}")
        try:
            return call(pair)
        except Exception as exc:  # the store's failures vary (botocore, Powertools): each is reported
            failures.append(exc)
            return exc

    ordered = list(dict.fromkeys(pairs))
    if not ordered:
        return {}
    with ThreadPoolExecutor(min(PARALLEL_CALLS, len(ordered))) as pool:
        return dict(zip(ordered, pool.map(guarded, ordered), strict=True))


def _raise_failures(operation: str, results: Mapping[Pair, Any], claims: Mapping[Pair, Claim] | None = None) -> None:
    failed = {pair: result for pair, result in results.items() if isinstance(result, Exception)}
    if failed:
        raise LedgerUnavailableError(operation, failed, describe_error(next(iter(failed.values()))), claims)


def describe_error(error: BaseException) -> str:
    """An AWS or store failure for a log line or a batch reason: its type and a bounded message (callers
    that might see a provider's text redact it)."""
    return f"{type(error).__name__}: {str(error)[:200]}"


def _data(pair: Pair) -> dict[str, str]:
    provider, change = pair
    return {"provider": provider, "change": change}
