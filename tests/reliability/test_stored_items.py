"""Items read back from the table are input, and what is written fits DynamoDB's documented limits, on
DynamoDB Local (which enforces the 400 KB item limit as DynamoDB does).

Coalescing windows: a window's item holds its targets' set, and DynamoDB refuses (ValidationException) any
update that would make an item larger than 400 KB, names and values together. The window was bounded by a
count of targets (1,000) only: a thousand stored targets of 2 KB each is 2 MB, so a window of long prefixes
reached the limit after about 200 and every later join failed (purged at once, no coalescing) until it closed.
Now each join adds its bytes to a counter the join's condition checks, and a full window hands on to the next.

A window's numbers (the head's generation, a window's due time and counts) are read back through one bounded
reader: a value no writer of this code makes (1e125, 2^60, 1.5, -5) is refused or clamped where it is read,
and the batch falls back to purging now instead of enqueuing a flush message its own decoder would refuse.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from helpers import create_template_table
from reliability import tally

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.gcra import Draw, Limit
from cdnpurge.runtime.coalesce import (
    KEY_PREFIX,
    MAX_WINDOW_BYTES,
    Coalescer,
    DynamoDBWindows,
    WindowBusyError,
    stored_bytes,
)
from cdnpurge.runtime.meter import MeterUnavailableError
from cdnpurge.runtime.meter_dynamodb import KEY_PREFIX as METER_PREFIX
from cdnpurge.runtime.meter_dynamodb import STORED_AHEAD_SECONDS, DynamoDBMeter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stored-items")]

NOW = 1_800_000_000.0
DEADLINE = Deadline(ends_at=10_000.0, clock=lambda: 0.0)
DAY = Deadline(ends_at=NOW + 86_400.0, clock=lambda: NOW)


@pytest.fixture
def windows(dynamodb: Any) -> DynamoDBWindows:
    table = f"stored-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "IdempotencyTable", table)
    return DynamoDBWindows(dynamodb, table, clock=lambda: NOW)


def long_prefixes(count: int, start: int = 0) -> list[str]:
    """Stored prefix targets of about 2 KB each (a stored target may be 2,048 characters)."""
    return [f"prefix|-|https://www.example.com/{number:06d}/" + "p" * 1990 for number in range(start, start + count)]


def test_dynamodb_local_refuses_an_item_over_400_kb(windows: DynamoDBWindows) -> None:
    """The limit the windows are bounded by is real here: without the byte bound, the third join of 100 long
    prefixes (about 600 KB in all) is refused by DynamoDB Local itself."""
    client = windows._client
    key = {"id": {"S": f"{KEY_PREFIX}#raw#0"}}
    for start in (0, 100):
        client.update_item(
            TableName=windows._table,
            Key=key,
            UpdateExpression="ADD #t :t",
            ExpressionAttributeNames={"#t": "targets"},
            ExpressionAttributeValues={":t": {"SS": long_prefixes(100, start)}},
        )
    with pytest.raises(client.exceptions.ClientError, match=r"ValidationException|size"):
        client.update_item(
            TableName=windows._table,
            Key=key,
            UpdateExpression="ADD #t :t",
            ExpressionAttributeNames={"#t": "targets"},
            ExpressionAttributeValues={":t": {"SS": long_prefixes(100, 200)}},
        )
    tally.hostile("stored")


def test_a_window_of_long_targets_hands_on_before_its_item_passes_400_kb(windows: DynamoDBWindows) -> None:
    # Given: joins of 100 prefixes of about 2 KB each, each joining the provider's open window
    coalescer = Coalescer(windows=windows, send_flush=lambda body, delay: None)
    generations = []
    # When: eight such joins (1.6 MB of targets in all, each window at most MAX_WINDOW_BYTES)
    for join in range(8):
        stored = long_prefixes(100, start=join * 100)
        generations.append(coalescer._join("fastly", stored, 1, 60, DEADLINE).generation)
        tally.hostile("stored")
    # Then: every join landed in a window (none refused by DynamoDB), and each window stayed under the cap
    assert generations == sorted(generations) and generations[-1] >= 4
    for generation in set(generations):
        taken = windows.take("fastly", generation)
        assert taken is not None
        assert stored_bytes(taken.targets) <= MAX_WINDOW_BYTES


def test_a_join_larger_than_a_window_is_purged_now_not_refused_by_dynamodb(windows: DynamoDBWindows) -> None:
    with pytest.raises(WindowBusyError, match="do not fit one window"):
        windows.join("fastly", 0, long_prefixes(200), 1, 60, waited=0)
    tally.hostile("stored")


@pytest.mark.parametrize("generation", ["1e30", "1.5", str(2**53), str(2**60), "-1"])
def test_a_head_generation_no_writer_makes_is_refused_where_it_is_read(
    windows: DynamoDBWindows, generation: str
) -> None:
    # Given: the provider's head item holds a generation this code never writes
    windows._client.put_item(
        TableName=windows._table,
        Item={"id": {"S": f"{KEY_PREFIX}#fastly"}, "generation": {"N": generation}},
    )
    # When / Then: the join falls back (purged now) instead of opening a window whose flush message is refused
    with pytest.raises(WindowBusyError, match="generation"):
        windows.open_generation("fastly")
    tally.hostile("stored")


@pytest.mark.parametrize("due_at", ["1e125", "-5", "0"])
def test_a_window_due_time_no_writer_makes_never_reaches_a_flush_message(windows: DynamoDBWindows, due_at: str) -> None:
    # Given: window 0 exists, pending, with a due time this code never writes
    windows._client.put_item(
        TableName=windows._table,
        Item={
            "id": {"S": f"{KEY_PREFIX}#fastly#0"},
            "state": {"S": "pending"},
            "due_at": {"N": due_at},
            "opened_at": {"N": "-5"},
            "changes": {"N": "9" * 38},  # the most digits DynamoDB keeps
            "targets": {"SS": ["key|-|k"]},
        },
    )
    sent: list[str] = []
    coalescer = Coalescer(windows=windows, send_flush=lambda body, delay: sent.append(body))
    # When: a batch joins it
    try:
        joined = coalescer._join("fastly", ["key|-|k2"], 1, 60, DEADLINE)
    except WindowBusyError:
        joined = None  # not a time: the batch purges now
    if joined is not None:
        # Then (a readable but absurd time): the flush message is refused where it is written, so the caller falls
        # back, rather than sent and refused on arrival
        from cdnpurge.core.events.coalesce import encode_flush

        with pytest.raises(Exception, match="due_at"):
            encode_flush("fastly", joined.generation, joined.due_at)
    # And the window's numbers read back are bounded
    taken = windows.take("fastly", 0)
    assert taken is not None and taken.changes <= 10**12 and taken.opened_at >= 0
    assert sent == []
    tally.hostile("stored")


def test_a_full_progress_record_fits_one_item_with_the_longest_key(dynamodb: Any) -> None:
    """Durable progress keeps at most MAX_DONE digests in the ledger's record: parked at its largest, beside the
    longest pair key a change id allows, the record is still written (DynamoDB Local refuses over 400 KB), and
    reads back whole."""
    from cdnpurge.core.events.reading import MAX_ID_CHARS
    from cdnpurge.core.models import TargetKind
    from cdnpurge.runtime.ledger import Claim, DynamoDBLedger
    from cdnpurge.runtime.progress import MAX_DONE, target_digest

    table = f"progress-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "IdempotencyTable", table)
    ledger = DynamoDBLedger(dynamodb, table)
    pair = ("fastly", "pub:" + "i" * MAX_ID_CHARS)
    attempt = ledger.claim([pair], remaining_ms=60_000).attempts[pair]
    full = frozenset(target_digest(TargetKind.URL, f"https://www.example.com/{n}") for n in range(MAX_DONE))
    ledger.release([pair], RuntimeError("deferred"), {pair: attempt._replace(done=full)})
    again = ledger.claim([pair], remaining_ms=60_000)
    assert again == {pair: Claim.CLAIMED} and again.attempts[pair].done == full
    tally.hostile("stored")


@pytest.mark.parametrize(
    "stored",
    [
        {"paused_until": "9E+125"},
        {"requests_tat": "9E+125"},
        {"requests_rate": "0", "requests_rate_at": "9E+125"},
        {"requests_rate": "-5", "requests_cut_at": "9E+125"},
        {"requests_rate": "1E-130", "requests_base": "-1"},
    ],
    ids=["paused-for-ever", "tat-for-ever", "rate-zero", "rate-negative", "rate-tiny"],
)
def test_a_meter_item_no_writer_makes_stalls_its_account_an_hour_at_most(dynamodb: Any, stored: dict[str, str]) -> None:
    # Given a meter item whose numbers cdnpurge never writes (DynamoDB stores numbers up to 9.9E+125)
    table = f"meter-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "IdempotencyTable", table)
    item = {"id": {"S": METER_PREFIX + "fastly/account"}} | {name: {"N": value} for name, value in stored.items()}
    dynamodb.put_item(TableName=table, Item=item)
    meter = DynamoDBMeter(dynamodb, table, clock=lambda: NOW, first_lead=0.0)
    # When a call of that account asks for its slot with a day to spare
    try:
        reservation = meter.reserve("fastly/account", [Draw(Limit("requests", rate=10.0, burst=1))], DAY)
    except MeterUnavailableError:
        reservation = None  # the calls go at the static share: bounded as well
    # Then its wait is bounded by what cdnpurge could have written, never the stored number, and no rate of 0
    # or below reaches the arithmetic
    assert reservation is None or reservation.wait <= STORED_AHEAD_SECONDS
    tally.hostile("stored")


def test_an_in_progress_hold_no_writer_makes_expires_within_an_hour(dynamodb: Any) -> None:
    # Given a CloudFront in-progress item holding every wildcard until 9.9E+125, with a count of 9.9E+125
    table = f"meter-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "IdempotencyTable", table)
    item = {
        "id": {"S": METER_PREFIX + "cloudfront/E1"},
        "ipv": {"N": "1"},
        "ipx_x": {"N": "9E+125"},
        "ip_x_wildcards": {"N": "9E+125"},
    }
    dynamodb.put_item(TableName=table, Item=item)
    meter = DynamoDBMeter(dynamodb, table, clock=lambda: NOW, first_lead=0.0)
    # When a call needs one wildcard
    wait = meter.hold("cloudfront/E1", "mine", {"wildcards": 1}, {"wildcards": 15}, seconds=60.0, deadline=DAY)
    # Then it is told to wait an hour at most, not for ever
    assert 0.0 < wait <= STORED_AHEAD_SECONDS
    tally.hostile("stored")
