"""The ledger on DynamoDB Local: the three states across several transactions, and the record format
shared with Powertools Idempotency (written by one, read by the other, both ways)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from botocore.exceptions import ClientError
from helpers import create_template_table

from cdnpurge.runtime.ledger import CLAIM_ITEMS, KEY_PREFIX, Attempt, Claim, DynamoDBLedger
from cdnpurge_local.cfn import load_template
from cdnpurge_local.iam import enforce_role, function_role
from cdnpurge_local.provision import local_client
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ledger")]


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[Any, str]:
    """DynamoDB Local with the template's idempotency table: (client, table name)."""
    name = "cdnpurge-ledger-test"
    create_template_table(dynamodb, "IdempotencyTable", name)
    return dynamodb, name


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


class Clock:
    """Epoch seconds the test moves by hand."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_released_pair_keeps_its_attempt_and_progress_until_it_completes(table: tuple[Any, str]) -> None:
    # Given a pair claimed, some of its targets purged, then released unfinished (the invocation ran out of time)
    client, name = table
    ledger = DynamoDBLedger(client, name)
    (pair,) = pairs(1)
    first = ledger.claim([pair], remaining_ms=60_000)
    attempt = first.attempts[pair]
    ledger.release([pair], RuntimeError("deferred"), {pair: attempt._replace(done=frozenset({"d1", "d2"}))})
    # When the redelivered record claims it again
    again = ledger.claim([pair], remaining_ms=60_000)
    # Then it continues the same attempt, knowing what was done
    assert again == {pair: Claim.CLAIMED}
    assert again.attempts[pair] == Attempt(attempt.generation, frozenset({"d1", "d2"}))
    # And while it is held, nobody else claims it; once complete it is done
    assert ledger.claim([pair], remaining_ms=60_000) == {pair: Claim.BUSY}
    ledger.complete([pair], {"purged": True})
    assert ledger.claim([pair], remaining_ms=60_000) == {pair: Claim.DONE}


def test_a_change_claimed_after_its_record_expired_is_a_new_attempt(table: tuple[Any, str]) -> None:
    # Given a pair purged and completed (a publisher's id), kept for the idempotency window
    client, name = table
    clock = Clock()
    ledger = DynamoDBLedger(client, name, expires_after_seconds=3600, clock=clock)
    (pair,) = pairs(1)
    first = ledger.claim([pair], remaining_ms=60_000).attempts[pair]
    ledger.complete([pair], {"purged": True})
    # When the same id is published again after the window
    clock.now += 3601
    later = ledger.claim([pair], remaining_ms=60_000)
    # Then it is claimed as a new attempt (a new CloudFront CallerReference)
    assert later == {pair: Claim.CLAIMED}
    assert later.attempts[pair].generation != first.generation and not later.attempts[pair].done


def test_a_holder_gone_is_taken_over_once_with_its_attempt(table: tuple[Any, str]) -> None:
    # Given a pair whose holder died (its deadline passed without a completion or release)
    client, name = table
    clock = Clock()
    ledger = DynamoDBLedger(client, name, clock=clock)
    (pair,) = pairs(1)
    held = ledger.claim([pair], remaining_ms=1_000).attempts[pair]
    clock.now += 10
    # When two redeliveries claim it one after the other
    taken = ledger.claim([pair], remaining_ms=60_000)
    second = ledger.claim([pair], remaining_ms=60_000)
    # Then the first takes it over with the dead holder's attempt (its requests get the same tokens); the
    # second finds it held
    assert taken == {pair: Claim.CLAIMED} and taken.attempts[pair].generation == held.generation
    assert second == {pair: Claim.BUSY}


def test_a_parked_record_is_taken_over_by_powertools_too(table: tuple[Any, str]) -> None:
    client, name = table
    persistence, ledger = powertools(client, name), DynamoDBLedger(client, name)
    (pair,) = pairs(1)
    attempt = ledger.claim([pair], remaining_ms=60_000).attempts[pair]
    ledger.release([pair], RuntimeError("deferred"), {pair: attempt})
    persistence.save_inprogress({"provider": pair[0], "change": pair[1]}, remaining_time_in_millis=60_000)
    stored = persistence.get_record({"provider": pair[0], "change": pair[1]})
    assert stored is not None and stored.status == "INPROGRESS"


def test_the_ledger_needs_no_more_than_the_functions_role_grants(table: tuple[Any, str]) -> None:
    # Given the ledger's client authorised as AWS would by the template's role (no UpdateItem on its records)
    client, name = table
    account = "123456789012"
    arn = f"arn:aws:dynamodb:us-east-1:{account}:table/{name}"
    policy = function_role(
        load_template(TEMPLATE_PATH),
        parameters={"ContentBucketName": "site-content"},
        region="us-east-1",
        account=account,
        attributes={"IdempotencyTable": {"Arn": arn}},
    )
    guarded = local_client(boto3.session.Session(), "dynamodb", endpoint=client.meta.endpoint_url, region="us-east-1")
    clock = Clock()
    ledger = DynamoDBLedger(enforce_role(guarded, policy, region="us-east-1", account=account), name, clock=clock)
    done, parked, abandoned = pairs(3)
    # When it claims, completes, parks with progress, takes over a dead holder's claim and claims again
    first = ledger.claim([done, parked, abandoned], remaining_ms=1_000)
    ledger.complete([done], {"purged": True})
    ledger.release([parked], RuntimeError("deferred"), {parked: first.attempts[parked]._replace(done=frozenset({"d"}))})
    clock.now += 10
    again = ledger.claim([done, parked, abandoned], remaining_ms=60_000)
    # Then every call was allowed, and the states are as without the role
    assert again == {done: Claim.DONE, parked: Claim.CLAIMED, abandoned: Claim.CLAIMED}
    assert again.attempts[parked].done == {"d"}
    assert again.attempts[abandoned].generation == first.attempts[abandoned].generation
    # And what the role does not grant is refused (an update of a ledger record)
    with pytest.raises(ClientError, match="AccessDenied"):
        enforce_role(guarded, policy, region="us-east-1", account=account).update_item(
            TableName=name,
            Key={"id": {"S": "cdnpurge#provider-change#x"}},
            UpdateExpression="SET a = :a",
            ExpressionAttributeValues={":a": {"S": "b"}},
        )
