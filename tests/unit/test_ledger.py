"""The ledger's own logic when the store fails (the store itself is exercised on DynamoDB Local)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cdnpurge.ledger import FAILURES_BEFORE_GIVING_UP, PARALLEL_CALLS, LedgerUnavailableError, PowertoolsLedger


class TimingOutStore:
    """A persistence layer whose every call fails the way botocore does when DynamoDB never answers."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def configure(self, config: Any, key_prefix: str | None = None) -> None:
        pass

    def save_inprogress(self, data: Any, remaining_time_in_millis: int | None = None) -> None:
        with self._lock:
            self.calls += 1
        raise TimeoutError("Read timeout on endpoint URL")


def test_a_failing_store_is_given_up_on_after_a_bounded_number_of_calls() -> None:
    # Given: 500 pairs to claim and a store that times out on every call
    store = TimingOutStore()
    ledger = PowertoolsLedger(store)  # type: ignore[arg-type]
    pairs = [("fastly", f"c{number}") for number in range(500)]
    # When
    with pytest.raises(LedgerUnavailableError) as raised:
        ledger.claim(pairs, remaining_ms=60_000)
    # Then: every pair is reported unclaimed, but only a bounded number of calls waited on the store
    assert set(raised.value.pairs) == set(pairs) and raised.value.claims == {}
    assert FAILURES_BEFORE_GIVING_UP <= store.calls < FAILURES_BEFORE_GIVING_UP + PARALLEL_CALLS
    assert raised.value.cause == "TimeoutError: Read timeout on endpoint URL"
