"""One DynamoDB batch writer and one retry policy, shared by the idempotency ledger and the purge trail.

Both write with `BatchWriteItem` (25 requests a call, several calls in parallel) and must resend what
DynamoDB leaves unprocessed, backing off between attempts; each used to carry its own copy of that loop,
and the copies drifted (one matched unprocessed items by key, the other resent the whole answer; their
back-offs and give-up rules differed). Here it is written once:

- `RetryPolicy` (as urllib3's `Retry`): how many attempts, and the jittered exponential back-off between
  them. `DYNAMODB_RETRY` is the one policy both stores use.
- `BatchWriter.write`: every request either written or reported with why not, never raised. Each back-off
  is a wait within the current bounded call (`cdnpurge.runtime.bounded.sleep_within`) and every call is
  made through the runtime's bounded client, so no write runs past the deadline; after
  `FAILURES_BEFORE_GIVING_UP` failed calls the store is taken to be down and the rest are not tried (an
  unreachable table that times out must not eat the function's time one call at a time).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.runtime.bounded import in_threads, sleep_within

BATCH_WRITE_ITEMS: Final = 25  # BatchWriteItem's limit per call
# Enough parallel DynamoDB calls to hide round trips for storms without throttling a table.
PARALLEL_CALLS: Final = 8
# After this many failed calls in one write the store is taken to be down (see the module docstring).
FAILURES_BEFORE_GIVING_UP: Final = PARALLEL_CALLS


class StoreGaveUpError(CdnpurgeError):
    """Not attempted: earlier calls of the same write had already failed (see `FAILURES_BEFORE_GIVING_UP`)."""


class UnprocessedError(CdnpurgeError):
    """DynamoDB kept leaving these requests unprocessed (throttled) for every attempt of the policy."""


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often to try a call DynamoDB answered only in part, and how long to wait in between."""

    attempts: int = 5
    base_seconds: float = 0.05
    max_seconds: float = 2.0

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `retry` (0 for the first): exponential, jittered by +-50%, capped."""
        jitter = rng.uniform(0.5, 1.5) if rng is not None else random.uniform(0.5, 1.5)
        return float(min(self.max_seconds, self.base_seconds * 2**retry * jitter))

    def pause(self, retry: int, sleep: Callable[[float], None], *, what: str) -> None:
        """Wait before retry number `retry`, within the current bounded call (`OutOfTimeError` past its end)."""
        sleep_within(self.backoff(retry), sleep, what=what)


DYNAMODB_RETRY: Final = RetryPolicy()


class BatchWriter:
    """`BatchWriteItem` requests (puts or deletes) to one table, as described in the module docstring."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        policy: RetryPolicy = DYNAMODB_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.table_name = table_name
        self.policy = policy
        self._sleep = sleep

    def write(self, requests: Sequence[Mapping[str, Any]]) -> list[Exception | None]:
        """Write every request; for each, None when written, else the reason it was not. Must run inside
        `bounded_call` (the client refuses otherwise); never raises for a store failure."""
        chunks = [
            range(start, min(start + BATCH_WRITE_ITEMS, len(requests)))
            for start in range(0, len(requests), BATCH_WRITE_ITEMS)
        ]
        failures: list[Exception] = []  # list.append is atomic: no lock needed between the pool's threads

        def write_chunk(chunk: range) -> dict[int, Exception | None]:
            if len(failures) >= FAILURES_BEFORE_GIVING_UP:
                first = failures[0]
                gave_up = StoreGaveUpError(f"not tried after {len(failures)} failures; first: {type(first).__name__}")
                return dict.fromkeys(chunk, gave_up)
            try:
                return self._write_chunk(chunk, requests)
            except Exception as exc:  # the store's failures vary (botocore, network, out of time): reported
                failures.append(exc)
                return dict.fromkeys(chunk, exc)

        results: dict[int, Exception | None] = {}
        for answered in in_threads(write_chunk, chunks, threads=PARALLEL_CALLS):
            results.update(answered)
        return [results[index] for index in range(len(requests))]

    def _write_chunk(self, chunk: range, requests: Sequence[Mapping[str, Any]]) -> dict[int, Exception | None]:
        """One chunk, resending what DynamoDB leaves unprocessed (matched to the request it returns)."""
        pending = list(chunk)
        for attempt in range(self.policy.attempts):
            if attempt:
                self.policy.pause(attempt - 1, self._sleep, what=f"resending to {self.table_name}")
            response = self._client.batch_write_item(RequestItems={self.table_name: [requests[i] for i in pending]})
            unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
            pending = [index for index in pending if requests[index] in unprocessed]
            if not pending:
                break
        refused = UnprocessedError(f"left unprocessed on {self.policy.attempts} attempts")
        left = set(pending)
        return {index: refused if index in left else None for index in chunk}
