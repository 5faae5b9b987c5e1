"""Durable progress below the change, on DynamoDB Local: a published change too big for one invocation
advances on every receive, and is never dead-lettered for size alone while it makes progress.

The change names 700 URLs; Fastly's fake purges one URL a call; each call takes a second of the
invocation's (simulated) time and the invocation may call for about 100 seconds, so no receive can finish
it. SQS is played by the test: a record returned in `batchItemFailures` comes back with its receive count
one higher, a message the function sends to the purge queue arrives as a new message (count 1), and the
queue's `maxReceiveCount` is 5, as in the template.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from helpers import RecordingSqs, SimulatedClock, create_template_table, fastly_config
from reliability import tally

from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge_local.event_builders import sqs_record
from cdnpurge_local.fakecdn.server import FakeCDN

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("progress")]

PURGE_QUEUE, DEAD_LETTERS = "https://sqs.local/purge", "https://sqs.local/dead-letters"
URLS = [f"https://www.example.com/release/{number:04d}.html" for number in range(700)]
SECONDS_PER_CALL = 1.0
REMAINING_MS = 130_000  # minus the margins: about 100 s of provider calls per receive
MAX_RECEIVES = 5


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[Any, str]:
    name = "cdnpurge-progress-test"
    create_template_table(dynamodb, "IdempotencyTable", name)
    return dynamodb, name


def build(table: tuple[Any, str], fake_cdn: FakeCDN, sqs: RecordingSqs) -> PurgeService:
    client, name = table
    clock = SimulatedClock()
    return PurgeService.build(
        fastly_config(fake_cdn.endpoint("fastly")),
        table_name=name,
        dynamodb_client=client,
        clock=clock,
        sleep=clock.sleep,
        on_attempt=lambda *_: clock.sleep(SECONDS_PER_CALL),
        queues=Queues(purge_url=PURGE_QUEUE, dead_letter_url=DEAD_LETTERS, max_receive_count=MAX_RECEIVES),
        sqs_client=sqs,
    )


def deliver(service: PurgeService, sqs: RecordingSqs, body: str) -> tuple[list[tuple[str, int]], int, int]:
    """SQS played by hand: `body` delivered, what fails redelivered with its count one higher, what the function
    sends to the purge queue delivered as new, for at most 40 receives. (What is left, receives, continuations.)"""
    queue: list[tuple[str, int]] = [(body, 1)]
    receives = continued = sent_before = 0
    while queue and receives < 40:
        message, count = queue.pop(0)
        record = sqs_record(message, message_id=f"m{receives}", attributes={"ApproximateReceiveCount": str(count)})
        report = service.handle({"Records": [record]}, remaining_ms=lambda: REMAINING_MS)
        receives += 1
        continued += len(report.continuations.continued)
        if report.response()["batchItemFailures"]:
            queue.append((message, count + 1))
        for sent in sqs.sent[sent_before:]:
            if sent.queue == PURGE_QUEUE:
                queue.append((sent.body, 1))
        sent_before = len(sqs.sent)
    return queue, receives, continued


def test_a_change_bigger_than_one_invocation_advances_on_each_receive_until_done(
    table: tuple[Any, str], fake_cdn: FakeCDN, credentials_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One call in flight: every call's simulated second is added to the one clock, so calls in flight at once
    # would add their seconds instead of overlapping them, and a call started in time would be cut by the others'
    # seconds (its pair then stays claimed until the invocation's real deadline, which this test's instant
    # redeliveries never reach). Calls in flight at once are the executor's and the meter's tests' subject.
    monkeypatch.setattr("cdnpurge.runtime.execute.MAX_CALLS_IN_FLIGHT", 1)
    # Given the service on DynamoDB Local, a one-URL-per-call CDN, and a publish message of 700 URLs
    sqs = RecordingSqs()
    service = build(table, fake_cdn, sqs)
    body = json.dumps({"id": "release-7", "urls": URLS})
    # When SQS delivers it (and redelivers what fails, and delivers what the function sends) until it is done
    queue, receives, continued = deliver(service, sqs, body)
    # Then several receives finished it, each URL purged exactly once, nothing dead-lettered
    # the fake records a URL purge as `url:<host><path> (hard)`
    purged = Counter(
        f"https://{entry.removeprefix('url:').removesuffix(' (hard)')}" for entry in fake_cdn.purged("fastly")
    )
    lost = len(set(URLS) - set(purged))
    duplicates = sum(count - 1 for count in purged.values())
    tally.add(changes=1, lost=lost, duplicates=duplicates)
    tally.hostile("progress", receives)
    assert not queue, f"still queued after {receives} receives"
    assert (lost, duplicates) == (0, 0)
    assert [sent for sent in sqs.sent if sent.queue == DEAD_LETTERS] == []
    assert receives > MAX_RECEIVES and continued >= 1


def test_a_change_whose_progress_record_is_full_ends_in_the_dead_letter_queue_instead_of_circling(
    table: tuple[Any, str], fake_cdn: FakeCDN, credentials_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge that is not recorded is no progress. A progress record keeps at most MAX_DONE digests; past it the
    receives purged the same unrecorded URLs again and again, each counted as progress, so the record was
    continued as a new message for ever. Now only recorded progress continues a record."""
    monkeypatch.setattr("cdnpurge.runtime.execute.MAX_CALLS_IN_FLIGHT", 1)
    # Given: a record that can keep only 150 digests, and a change of 700 URLs (about 110 purged a receive)
    monkeypatch.setattr("cdnpurge.runtime.progress.MAX_DONE", 150)
    sqs = RecordingSqs()
    service = build(table, fake_cdn, sqs)
    # When
    queue, receives, continued = deliver(service, sqs, json.dumps({"id": "release-8", "urls": URLS}))
    # Then: it ended (dead-lettered with its reason) within a few receives, rather than circling
    dead = [sent for sent in sqs.sent if sent.queue == DEAD_LETTERS]
    tally.hostile("progress", receives)
    assert not queue, f"still circling after {receives} receives ({continued} continuations)"
    assert len(dead) == 1 and receives <= 2 * MAX_RECEIVES
