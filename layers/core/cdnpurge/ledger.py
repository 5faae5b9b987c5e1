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
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

COMPLETED = "COMPLETED"
# Enough parallel DynamoDB calls to hide round trips for large batches without throttling a table.
PARALLEL_CALLS = 16


class Claim(StrEnum):
    CLAIMED = "claimed"  # ours to purge now
    DONE = "done"  # purged by an earlier delivery within the idempotency window: skip
    BUSY = "busy"  # another invocation holds it right now: leave it, let SQS redeliver


class Ledger(Protocol):
    def claim(self, pairs: Iterable[tuple[str, str]], remaining_ms: int | None) -> dict[tuple[str, str], Claim]: ...

    def complete(self, pairs: Iterable[tuple[str, str]], result: dict[str, Any]) -> None: ...

    def release(self, pairs: Iterable[tuple[str, str]], error: Exception) -> None: ...


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

    def claim(self, pairs: Iterable[tuple[str, str]], remaining_ms: int | None) -> dict[tuple[str, str], Claim]:
        ordered = list(dict.fromkeys(pairs))
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            claims = list(pool.map(lambda pair: self._claim(pair, remaining_ms), ordered))
        return dict(zip(ordered, claims, strict=True))

    def _claim(self, pair: tuple[str, str], remaining_ms: int | None) -> Claim:
        try:
            self._persistence.save_inprogress(_data(pair), remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError as exists:
            record = exists.old_data_record
            return Claim.DONE if record is not None and record.status == COMPLETED else Claim.BUSY
        return Claim.CLAIMED

    def complete(self, pairs: Iterable[tuple[str, str]], result: dict[str, Any]) -> None:
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            list(pool.map(lambda pair: self._persistence.save_success(_data(pair), result), set(pairs)))

    def release(self, pairs: Iterable[tuple[str, str]], error: Exception) -> None:
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            list(pool.map(lambda pair: self._persistence.delete_record(_data(pair), error), set(pairs)))


def _data(pair: tuple[str, str]) -> dict[str, str]:
    provider, change = pair
    return {"provider": provider, "change": change}
