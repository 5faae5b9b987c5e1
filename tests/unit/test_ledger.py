"""The ledger's own logic where DynamoDB Local cannot go: a store that times out, throttled records in a
cancelled transaction, items BatchWriteItem leaves unprocessed. The client is scripted; the records, the
conditions and the states themselves are exercised on DynamoDB Local (tests/integration/test_ledger_dynamodb.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdnpurge.runtime.ledger import (
    ATTEMPTS,
    CLAIM_ITEMS,
    FAILURES_BEFORE_GIVING_UP,
    PARALLEL_CALLS,
    Claim,
    DynamoDBLedger,
    LedgerUnavailableError,
    record_key,
)

TABLE = "cdnpurge-idempotency"
pytestmark = pytest.mark.usefixtures("within_a_minute")


class TimingOutClient:
    """Every call fails the way botocore does when DynamoDB never answers."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def transact_write_items(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1
        raise TimeoutError("Read timeout on endpoint URL")


class ScriptedClient:
    """Answers each call with the next scripted response (a dict, or a ClientError to raise)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def _answer(self, request: dict[str, Any]) -> Any:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def transact_write_items(self, **request: Any) -> Any:
        return self._answer(request)

    def batch_write_item(self, **request: Any) -> Any:
        return self._answer(request)


def cancelled(*reasons: dict[str, Any]) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": list(reasons),  # type: ignore[arg-type]
        },
        "TransactWriteItems",
    )


def test_a_failing_store_is_given_up_on_after_a_bounded_number_of_calls() -> None:
    # Given: fifty transactions' worth of pairs to claim and a store that times out on every call
    client = TimingOutClient()
    ledger = DynamoDBLedger(client, TABLE)
    pairs = [("fastly", f"c{number}") for number in range(CLAIM_ITEMS * 50)]
    # When
    with pytest.raises(LedgerUnavailableError) as raised:
        ledger.claim(pairs, remaining_ms=60_000)
    # Then: every pair is reported unclaimed, but only a bounded number of calls waited on the store
    assert set(raised.value.pairs) == set(pairs) and raised.value.claims == {}
    assert FAILURES_BEFORE_GIVING_UP <= client.calls < FAILURES_BEFORE_GIVING_UP + PARALLEL_CALLS
    assert raised.value.cause == "TimeoutError: Read timeout on endpoint URL"


def test_a_cancelled_transaction_settles_what_it_names_and_claims_the_rest_after_backing_off() -> None:
    # Given: a transaction cancelled for a done record, a held one and a throttled one
    client = ScriptedClient(
        cancelled(
            {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Item": {"status": {"S": "COMPLETED"}}},
            {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity"},
            {"Code": "ConditionalCheckFailed", "Item": {"status": {"S": "INPROGRESS"}}},
            {"Code": "TransactionConflict"},
        ),
        {},
    )
    slept: list[float] = []
    ledger = DynamoDBLedger(client, TABLE, sleep=slept.append)
    pairs = [("fastly", name) for name in ("new", "done", "throttled", "held", "racing")]
    # When
    claims = ledger.claim(pairs, remaining_ms=30_000)
    # Then: one retry, after a back-off, of only the records that were not settled
    assert claims == {
        ("fastly", "new"): Claim.CLAIMED,
        ("fastly", "done"): Claim.DONE,
        ("fastly", "throttled"): Claim.CLAIMED,
        ("fastly", "held"): Claim.BUSY,
        ("fastly", "racing"): Claim.BUSY,
    }
    retried = [item["Put"]["Item"]["id"]["S"] for item in client.sent[1]["TransactItems"]]
    assert retried == [record_key(("fastly", "new")), record_key(("fastly", "throttled"))]
    assert len(slept) == 1


def test_a_record_refused_for_a_reason_no_retry_changes_is_unavailable_and_the_rest_are_claimed() -> None:
    client = ScriptedClient(
        cancelled({"Code": "ValidationError", "Message": "Item size too large"}, {"Code": "None"}), {}
    )
    ledger = DynamoDBLedger(client, TABLE, sleep=lambda _: None)
    with pytest.raises(LedgerUnavailableError) as raised:
        ledger.claim([("fastly", "bad"), ("fastly", "good")], remaining_ms=None)
    assert raised.value.pairs == (("fastly", "bad"),)
    assert raised.value.claims == {("fastly", "good"): Claim.CLAIMED}
    assert raised.value.cause == "LedgerRefusedError: ValidationError: Item size too large"


def test_writes_left_unprocessed_are_sent_again_and_reported_if_they_never_land() -> None:
    # Given: BatchWriteItem leaves one record unprocessed on every attempt, the other is written at once
    stuck = ("fastly", "stuck")
    leftover = {"UnprocessedItems": {TABLE: [{"DeleteRequest": {"Key": {"id": {"S": record_key(stuck)}}}}]}}
    client = ScriptedClient(*[leftover] * ATTEMPTS)
    slept: list[float] = []
    ledger = DynamoDBLedger(client, TABLE, sleep=slept.append)
    # When
    with pytest.raises(LedgerUnavailableError) as raised:
        ledger.release([("fastly", "fine"), stuck], RuntimeError("purge failed"))
    # Then: only the stuck record is reported, after ATTEMPTS calls with a back-off before each retry
    assert raised.value.operation == "release" and raised.value.pairs == (stuck,)
    assert len(client.sent) == ATTEMPTS and len(slept) == ATTEMPTS - 1
    assert [len(request["RequestItems"][TABLE]) for request in client.sent] == [2] + [1] * (ATTEMPTS - 1)
