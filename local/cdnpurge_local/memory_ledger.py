"""An idempotency ledger in memory: for unit tests of the pipeline and for benchmark runs that show the
ledger's share of the wall time. What runs in production, `cdnpurge.runtime.ledger.DynamoDBLedger`, is tested
on DynamoDB Local; this one keeps the same three states and is safe to share between threads."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from cdnpurge.runtime.ledger import Claim, Pair


class MemoryLedger:
    """A `cdnpurge.runtime.ledger.Ledger`: `done` and `busy` hold the pairs in each state, `released` every release."""

    def __init__(self) -> None:
        self.done: set[Pair] = set()
        self.busy: set[Pair] = set()
        self.released: list[Pair] = []
        self._lock = threading.Lock()

    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> dict[Pair, Claim]:
        claims: dict[Pair, Claim] = {}
        with self._lock:
            for pair in pairs:
                if pair in self.done:
                    claims[pair] = Claim.DONE
                elif pair in self.busy:
                    claims[pair] = Claim.BUSY
                else:
                    self.busy.add(pair)
                    claims[pair] = Claim.CLAIMED
        return claims

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        with self._lock:
            for pair in pairs:
                self.busy.discard(pair)
                self.done.add(pair)

    def release(self, pairs: Iterable[Pair], error: Exception) -> None:
        with self._lock:
            for pair in pairs:
                self.busy.discard(pair)
                self.released.append(pair)
