"""An idempotency ledger in memory: for unit tests of the pipeline and for benchmark runs that show the
ledger's share of the wall time. What runs in production, `cdnpurge.runtime.ledger.DynamoDBLedger`, is tested
on DynamoDB Local; this one keeps the same three states, parks released pairs with their attempt as the
DynamoDB ledger does, and is safe to share between threads."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from cdnpurge.runtime.ledger import Attempt, Claim, Claims, Pair, new_generation


class MemoryLedger:
    """A `cdnpurge.runtime.ledger.Ledger`: `done` and `busy` hold the pairs in each state, `released` every
    release, `parked` the attempt each released pair keeps (taken over by its next claim)."""

    def __init__(self) -> None:
        self.done: set[Pair] = set()
        self.busy: set[Pair] = set()
        self.released: list[Pair] = []
        self.parked: dict[Pair, Attempt] = {}
        self._lock = threading.Lock()

    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> Claims:
        claims = Claims()
        with self._lock:
            for pair in pairs:
                if pair in self.done:
                    claims[pair] = Claim.DONE
                elif pair in self.busy:
                    claims[pair] = Claim.BUSY
                else:
                    self.busy.add(pair)
                    claims[pair] = Claim.CLAIMED
                    parked = self.parked.pop(pair) if pair in self.parked else None
                    claims.attempts[pair] = parked or Attempt(new_generation())
        return claims

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        with self._lock:
            for pair in pairs:
                self.busy.discard(pair)
                self.parked.pop(pair, None)
                self.done.add(pair)

    def release(self, pairs: Iterable[Pair], error: Exception, attempts: Mapping[Pair, Attempt] | None = None) -> None:
        with self._lock:
            for pair in pairs:
                self.busy.discard(pair)
                self.released.append(pair)
                if attempts and pair in attempts:
                    self.parked[pair] = attempts[pair]
