"""Coalescing windows on DynamoDB Local: a storm over many batches purges each shared key once per window,
and no fault (a flush message lost or duplicated, an invocation dead mid-flush, the table or the queue
unavailable) loses a purge. The windows' clock is injected: nothing here waits or measures time."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, RecordingSqs, config_from, create_template_table

from cdnpurge.cli.status import assemble, write_table
from cdnpurge.core.events.coalesce import COALESCE_MARKER
from cdnpurge.runtime.coalesce import DynamoDBWindows, WindowState, verified_purges
from cdnpurge.runtime.report import BatchReport
from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge.runtime.trail import batch_items
from cdnpurge_local.event_builders import eventbridge_s3, sqs_record
from cdnpurge_local.fakecdn.server import FakeCDN

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("coalesce")]

BUCKET = "example-site-content"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/purge"
WINDOW = 60


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Stack:
    """One service on a fresh table, its flush messages recorded instead of sent, and the fake CDN."""

    def __init__(
        self, dynamodb: Any, cdn: FakeCDN, *, windows_table: str | None = None, settings: str = "", keys: bool = True
    ) -> None:
        self.table = f"coalesce-{uuid.uuid4().hex[:8]}"
        create_template_table(dynamodb, "IdempotencyTable", self.table)
        self.cdn = cdn
        self.sqs = RecordingSqs()
        self.sqs_delays: list[int] = []
        self.clock = Clock()
        config = config_from(
            f"""
            providers:
              - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, endpoint: {cdn.endpoint("fastly")},
                 hosts: [www.example.com], coalesce_seconds: {WINDOW}{settings},
                 credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
            rules:
              - match: "assets/{{dir}}/{{name}}"
                keys: {'["section-{dir}"]' if keys else "[]"}
                paths: ["/assets/{{dir}}/{{name}}"]
            """
        )
        self.service = PurgeService.build(
            config,
            table_name=self.table,
            dynamodb_client=dynamodb,
            environ={"FASTLY_API_TOKEN": FASTLY_TOKEN},
            queues=Queues(purge_url=QUEUE),
            sqs_client=self.sqs,
        )
        self.windows = DynamoDBWindows(dynamodb, windows_table or self.table, clock=self.clock)
        self.service.windows = self.windows

    def uploads(self, count: int, *, sections: int = 4) -> list[dict[str, Any]]:
        run = uuid.uuid4().hex[:6]
        return [
            sqs_record(
                json.dumps(eventbridge_s3(BUCKET, f"assets/d{i % sections}/{run}-{i}.jpg")),
                message_id=f"up-{run}-{i}",
            )
            for i in range(count)
        ]

    def run(self, records: list[dict[str, Any]]) -> BatchReport:
        return self.service.handle({"Records": records})

    def flush_messages(self) -> list[dict[str, Any]]:
        """Every flush message sent so far, as SQS records (each its own message id), and forget them (their
        delays stay in `sqs_delays`)."""
        sent = [message for message in self.sqs.sent if json.loads(message.body)["cdnpurge"] == COALESCE_MARKER]
        self.sqs_delays = [message.delay for message in sent]
        self.sqs.sent.clear()
        return [sqs_record(message.body, message_id=f"flush-{uuid.uuid4().hex[:8]}") for message in sent]

    def keys_purged(self) -> list[str]:
        return [target for target in self.cdn.purged("fastly") if target.startswith("key:")]

    def state(self, generation: int) -> str:
        item = self.windows._client.get_item(
            TableName=self.table, Key=DynamoDBWindows._key("fastly", generation), ConsistentRead=True
        )["Item"]
        return str(item["state"]["S"])


@pytest.fixture
def stack(dynamodb: Any, fake_cdn: FakeCDN) -> Stack:
    return Stack(dynamodb, fake_cdn)


def failed(report: BatchReport) -> list[str]:
    return [str(item["itemIdentifier"]) for item in report.response()["batchItemFailures"]]


def test_a_storm_over_five_batches_purges_each_shared_key_once(stack: Stack) -> None:
    # Given: 100 uploads over 4 sections, in five batches inside one window
    records = stack.uploads(100)
    for start in range(0, 100, 20):
        report = stack.run(records[start : start + 20])
        # Then: each batch is acknowledged with its URLs purged and its keys left to the window
        assert failed(report) == []
        assert report.run.coalescing.deferrals[0].flush_id == "coalesce:fastly#0"
        stack.clock.now += 5
    assert stack.keys_purged() == []
    assert len(stack.cdn.purged("fastly")) == 100  # every unique URL at once
    flushes = stack.flush_messages()
    assert len(flushes) == 5  # one per joining batch
    assert all(json.loads(message["body"])["generation"] == 0 for message in flushes)
    # When: the window closes and every flush message arrives
    stack.clock.now += WINDOW
    reports = [stack.run([message]) for message in flushes]
    # Then: one purge of the four keys; every flush message acknowledged
    assert sorted(stack.keys_purged()) == [f"key:section-d{i} (hard)" for i in range(4)]
    assert len([r for r in stack.cdn.received_by("fastly") if any(t.startswith("key:") for t in r.purged)]) == 1
    assert all(failed(report) == [] for report in reports)
    assert reports[0].run.coalescing.flushes[0].purged and reports[0].run.coalescing.flushes[0].finished
    assert not any(flush.purged for report in reports[1:] for flush in report.run.coalescing.flushes)
    assert [flush.why_not for report in reports[1:] for flush in report.run.coalescing.flushes] == [
        "already purged"
    ] * 4
    assert stack.state(0) == WindowState.DONE


def test_a_change_after_the_purge_started_gets_a_purge_of_its_own(stack: Stack) -> None:
    # Given: a window joined, and taken by its flush message (its purge has started)
    stack.run(stack.uploads(1, sections=1))
    (flush,) = stack.flush_messages()
    stack.windows.take("fastly", 0)
    # When: the same key changes again
    report = stack.run(stack.uploads(1, sections=1))
    # Then: it joins the next window, never the one being purged
    assert report.run.coalescing.deferrals[0].flush_id == "coalesce:fastly#1"
    (later,) = stack.flush_messages()
    # When: both flush messages arrive
    stack.clock.now += WINDOW
    stack.run([flush])
    stack.run([later])
    # Then: the key was purged twice, once for each window
    assert stack.keys_purged() == ["key:section-d0 (hard)"] * 2


def test_only_one_flush_message_arriving_purges_every_batch_of_its_window(stack: Stack) -> None:
    # Given: three batches joined one window; two of their flush messages are lost
    for _ in range(3):
        stack.run(stack.uploads(4, sections=4))
    *lost, kept = stack.flush_messages()
    assert len(lost) == 2
    # When: only the last one arrives
    stack.clock.now += WINDOW
    report = stack.run([kept])
    # Then: every key of the window is purged
    assert failed(report) == []
    assert sorted(stack.keys_purged()) == [f"key:section-d{i} (hard)" for i in range(4)]


def test_a_duplicated_flush_message_purges_once(stack: Stack) -> None:
    # Given
    stack.run(stack.uploads(2, sections=2))
    (flush,) = stack.flush_messages()
    stack.clock.now += WINDOW
    # When: SQS delivers the same message twice, the second after the first succeeded
    first, second = stack.run([flush]), stack.run([flush])
    # Then
    assert failed(first) == failed(second) == []
    assert len(stack.keys_purged()) == 2


def test_a_window_taken_by_an_invocation_that_died_is_purged_by_the_next_flush_message(stack: Stack) -> None:
    # Given: a window with two flush messages; the first was taken by an invocation that died before purging
    stack.run(stack.uploads(1, sections=1))
    stack.run(stack.uploads(1, sections=1))
    dead, other = stack.flush_messages()
    stack.clock.now += WINDOW
    stack.windows.take("fastly", 0)
    # When: the other message arrives (or the first, redelivered or redriven under a new message id)
    report = stack.run([other])
    # Then: the ledger holds no claim on the window's purge, so this message makes it
    assert failed(report) == []
    assert stack.keys_purged() == ["key:section-d0 (hard)"]
    assert stack.state(0) == WindowState.DONE
    # When: the first message comes back
    report = stack.run([dead])
    # Then: nothing is owed any more
    assert failed(report) == [] and report.run.coalescing.flushes[0].why_not == "already purged"
    assert len(stack.keys_purged()) == 1


def test_a_flush_message_arriving_while_the_windows_purge_runs_elsewhere_is_retried(stack: Stack) -> None:
    # Given: a window whose purge another invocation has claimed in the ledger and is making
    stack.run(stack.uploads(1, sections=1))
    stack.run(stack.uploads(1, sections=1))
    _, second = stack.flush_messages()
    stack.clock.now += WINDOW
    stack.windows.take("fastly", 0)
    stack.service.ledger.claim([("fastly", "coalesce:fastly#0")], remaining_ms=60_000)
    # When: another flush message of the window arrives
    report = stack.run([second])
    # Then: it is returned to SQS (not acknowledged while the purge may still fail), and nothing is sent twice
    assert failed(report) == [second["messageId"]]
    assert stack.keys_purged() == []


def test_windows_unavailable_purge_the_shared_targets_now(dynamodb: Any, fake_cdn: FakeCDN) -> None:
    # Given: the windows' table cannot be reached (it does not exist); the ledger's can
    stack = Stack(dynamodb, fake_cdn, windows_table="no-such-table")
    # When
    report = stack.run(stack.uploads(8, sections=2))
    # Then: nothing waits, nothing is scheduled, the keys are purged at once
    assert failed(report) == []
    assert report.run.coalescing.deferrals == ()
    assert "2 target(s) purged now" in report.run.coalescing.fallbacks[0]
    assert sorted(stack.keys_purged()) == ["key:section-d0 (hard)", "key:section-d1 (hard)"]
    assert stack.flush_messages() == []


def test_a_flush_message_not_sent_purges_the_shared_targets_now(stack: Stack) -> None:
    # Given: the queue refuses the flush message
    class RefusingSqs(RecordingSqs):
        def send_message(self, **_: Any) -> dict[str, str]:
            raise RuntimeError("SendMessage failed: ServiceUnavailable")

    stack.service.sqs_factory = RefusingSqs
    # When
    report = stack.run(stack.uploads(3, sections=1))
    # Then: purged now (the window's copy, if the flush of another batch takes it, is purged again: harmless)
    assert failed(report) == []
    assert stack.keys_purged() == ["key:section-d0 (hard)"]


def test_a_flush_message_whose_window_cannot_be_read_is_returned_and_purges_later(dynamodb: Any, stack: Stack) -> None:
    # Given: a joined window, and its flush message arriving while the table cannot be reached
    stack.run(stack.uploads(2, sections=2))
    (flush,) = stack.flush_messages()
    stack.clock.now += WINDOW
    healthy = stack.service.windows
    stack.service.windows = DynamoDBWindows(dynamodb, "no-such-table", clock=stack.clock)
    # When
    report = stack.run([flush])
    # Then: the record goes back to SQS, nothing is lost
    assert failed(report) == [flush["messageId"]]
    assert "idempotency store unavailable" in report.run.failures.reasons[flush["messageId"]][0]
    # When: it is redelivered with the table back
    stack.service.windows = healthy
    report = stack.run([flush])
    # Then
    assert failed(report) == []
    assert len(stack.keys_purged()) == 2


def test_a_full_window_hands_on_to_the_next(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: windows of at most 3 targets
    monkeypatch.setattr("cdnpurge.runtime.coalesce.MAX_WINDOW_TARGETS", 3)
    # When: two batches of 2 distinct keys each
    first = stack.run(stack.uploads(2, sections=2))
    second = stack.run([*stack.uploads(3, sections=3)[2:], *stack.uploads(4, sections=4)[3:]])
    # Then: the second did not fit and opened window 1
    assert first.run.coalescing.deferrals[0].flush_id == "coalesce:fastly#0"
    assert second.run.coalescing.deferrals[0].flush_id == "coalesce:fastly#1"


def test_the_trail_and_status_say_which_purge_covered_each_change(stack: Stack) -> None:
    # Given: an upload whose key waits for window 0, then that window's purge
    deferring = stack.run(stack.uploads(1, sections=1))
    (flush,) = stack.flush_messages()
    stack.clock.now += WINDOW
    flushing = stack.run([flush])
    rules = stack.service.config.rules
    # When: each batch's trail items are read back as `cdnpurge status` shows them
    change = assemble(batch_items(deferring.run, rules, now=stack.clock.now, expires_at=1))
    window = assemble(batch_items(flushing.run, rules, now=stack.clock.now, expires_at=1))
    assert change is not None and window is not None
    shown = io.StringIO()
    write_table([change, window], shown)
    # Then: the change names the window's purge, and the window's purge lists what it sent
    (fastly,) = change.providers
    assert fastly.coalesced_into == "coalesce:fastly#0"
    assert "fastly shared targets coalesced into coalesce:fastly#0" in shown.getvalue()
    assert window.change_id == "coalesce:fastly#0" and window.providers[0].targets == ("key:section-d0",)
    assert window.providers[0].accepted_at is not None
    assert "coalescing window fastly#0" in shown.getvalue()


def test_verification_waits_for_the_windows_purge(stack: Stack) -> None:
    # Given: a batch whose key waits for a window closing in WINDOW seconds (its URL purged now)
    report = stack.run(stack.uploads(1, sections=1))
    # When
    url_purge, awaited = verified_purges(report.run.outcomes, report.run.coalescing, stack.clock.now, 10)
    # Then: its URL is checked as purged now, and its key once the window's purge ran
    assert url_purge.estimated_seconds is None
    assert awaited.provider == "fastly" and awaited.change_ids == frozenset(report.run.coalescing.covered_by())
    assert awaited.estimated_seconds == WINDOW + 10
    # When: the window's purge runs
    (flush,) = stack.flush_messages()
    stack.clock.now += WINDOW
    flushing = stack.run([flush])
    # Then: it is no change of its own to verify (its changes were checked as waiting)
    assert flushing.run.outcomes and verified_purges(flushing.run.outcomes, flushing.run.coalescing, 0, 10) == []


def test_purge_all_escalations_of_many_batches_become_one_purge_all_per_window(
    dynamodb: Any, fake_cdn: FakeCDN
) -> None:
    # Given: purge-all over 2 requests, and three batches of 5 URL-only uploads (5 requests each at Fastly)
    stack = Stack(dynamodb, fake_cdn, settings=", purge_all_over: 2", keys=False)
    for _ in range(3):
        report = stack.run(stack.uploads(5, sections=5))
        assert failed(report) == [] and report.run.outcomes == ()
    flushes = stack.flush_messages()
    # When: the window closes
    stack.clock.now += WINDOW
    for message in flushes:
        stack.run([message])
    # Then: one purge-all for the three batches
    assert stack.cdn.purged("fastly") == ["all (hard)"]


def test_a_batch_dead_between_joining_and_scheduling_is_redelivered_and_schedules_the_purge(stack: Stack) -> None:
    # Given: an invocation joined window 0 and died before sending its flush message (its records return)
    records = stack.uploads(1, sections=1)
    stack.windows.join("fastly", 0, ["key|-|section-d0"], 1, WINDOW, waited=0)
    # When: its record is redelivered
    report = stack.run(records)
    # Then: it joins the same window and sends the flush message
    (deferral,) = report.run.coalescing.deferrals
    assert deferral.flush_id == "coalesce:fastly#0" and not deferral.opened
    (flush,) = stack.flush_messages()
    stack.clock.now += WINDOW
    stack.run([flush])
    assert stack.keys_purged() == ["key:section-d0 (hard)"]


def test_a_window_whose_every_flush_message_was_lost_is_purged_with_the_next_change(stack: Stack) -> None:
    # Given: a window whose only flush message was lost, long overdue
    stack.run(stack.uploads(1, sections=1))
    assert len(stack.flush_messages()) == 1  # ... and dropped
    stack.clock.now += 10 * WINDOW
    # When: the next change for the provider arrives
    stack.run(stack.uploads(2, sections=2)[1:])
    # Then: it joins the overdue window and schedules its purge at once
    (flush,) = stack.flush_messages()
    assert stack.sqs_delays == [0]
    stack.run([flush])
    assert sorted(stack.keys_purged()) == ["key:section-d0 (hard)", "key:section-d1 (hard)"]


def test_many_flush_messages_of_one_window_in_one_batch_take_and_purge_it_once(stack: Stack) -> None:
    # Given: three batches joined one window; their three flush messages arrive in one batch
    for _ in range(3):
        stack.run(stack.uploads(2, sections=2))
    flushes = stack.flush_messages()
    stack.clock.now += WINDOW
    # When
    report = stack.run(flushes)
    # Then: one window read, one purge, every message acknowledged
    assert failed(report) == []
    (flush,) = report.run.coalescing.flushes
    assert flush.purged and flush.finished
    assert len(stack.keys_purged()) == 2
