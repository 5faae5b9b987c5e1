"""The ledger on DynamoDB Local: the three states across several transactions, and the record format
shared with Powertools Idempotency (written by one, read by the other, both ways)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from helpers import create_template_table

from cdnpurge.runtime.ledger import CLAIM_ITEMS, KEY_PREFIX, Claim, DynamoDBLedger
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DynamoDBLocal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ledger")]


@pytest.fixture(scope="module")
def table() -> Iterator[tuple[Any, str]]:
    """DynamoDB Local with the template's idempotency table: (client, table name)."""
    with DynamoDBLocal() as dynamodb:
        client = local_client(boto3.session.Session(), "dynamodb", endpoint=dynamodb.endpoint, region="us-east-1")
        name = "cdnpurge-ledger-test"
        create_template_table(client, "IdempotencyTable", name)
        yield client, name


def powertools(client: Any, name: str) -> DynamoDBPersistenceLayer:
    """Powertools' own persistence layer, configured as the ledger documents its keys."""
    persistence = DynamoDBPersistenceLayer(table_name=name, boto3_client=client)
    persistence.configure(
        IdempotencyConfig(event_key_jmespath="[provider, change]", raise_on_no_idempotency_key=True),
        key_prefix=KEY_PREFIX,
    )
    return persistence


def pairs(count: int, provider: str = "fastly") -> list[tuple[str, str]]:
    run = uuid.uuid4().hex[:8]
    return [(provider, f"s3:bucket/{run}/{number}.jpg@{number:018X}") for number in range(count)]


def test_claims_across_several_transactions_tell_new_done_and_held_apart(table: tuple[Any, str]) -> None:
    client, name = table
    ledger = DynamoDBLedger(client, name)
    # Given: 250 pairs (ten transactions); 40 already purged, 30 held by another invocation
    every = pairs(10 * CLAIM_ITEMS)
    done, held = every[10:50], every[120:150]
    ledger.claim(done + held, remaining_ms=60_000)
    ledger.complete(done, {"purged": True})
    # When
    claims = ledger.claim(every, remaining_ms=60_000)
    # Then
    assert {pair for pair, state in claims.items() if state is Claim.DONE} == set(done)
    assert {pair for pair, state in claims.items() if state is Claim.BUSY} == set(held)
    assert sum(state is Claim.CLAIMED for state in claims.values()) == len(every) - len(done) - len(held)
    # And: released pairs can be claimed again; completed ones stay done
    ledger.release(every[:100], RuntimeError("purge failed"))
    again = ledger.claim(every[:100], remaining_ms=60_000)
    assert {pair for pair, state in again.items() if state is Claim.CLAIMED} == set(every[:100])


def test_records_written_by_powertools_are_honoured_by_the_ledger(table: tuple[Any, str]) -> None:
    client, name = table
    persistence, ledger = powertools(client, name), DynamoDBLedger(client, name)
    done, held = pairs(2)
    persistence.save_inprogress({"provider": done[0], "change": done[1]}, remaining_time_in_millis=60_000)
    persistence.save_success({"provider": done[0], "change": done[1]}, {"purged": True})
    persistence.save_inprogress({"provider": held[0], "change": held[1]}, remaining_time_in_millis=60_000)
    assert ledger.claim([done, held], remaining_ms=60_000) == {done: Claim.DONE, held: Claim.BUSY}


def test_records_written_by_the_ledger_are_honoured_by_powertools(table: tuple[Any, str]) -> None:
    client, name = table
    persistence, ledger = powertools(client, name), DynamoDBLedger(client, name)
    done, held = pairs(2)
    ledger.claim([done, held], remaining_ms=60_000)
    ledger.complete([done], {"purged": True})
    stored = persistence.get_record({"provider": done[0], "change": done[1]})
    assert stored is not None and stored.status == "COMPLETED"
    assert stored.response_json_as_dict() == {"purged": True}
    with pytest.raises(IdempotencyItemAlreadyExistsError) as exists:
        persistence.save_inprogress({"provider": held[0], "change": held[1]}, remaining_time_in_millis=60_000)
    assert exists.value.old_data_record is not None and exists.value.old_data_record.status == "INPROGRESS"
