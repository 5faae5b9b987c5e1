"""The pipeline against the fake Fastly server, with an in-memory ledger (DynamoDB Local: integration)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FASTLY_SERVICE,
    FASTLY_TOKEN,
    MemoryLedger,
    SimulatedClock,
    config_from,
    fastly_config,
)

from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.events import repurge_messages
from cdnpurge.core.models import Change
from cdnpurge.core.registry import build_providers
from cdnpurge.core.registry import specs as provider_specs
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.ledger import Claims, LedgerOperation, LedgerUnavailableError, Pair
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.report import BatchReport
from cdnpurge.runtime.repurge import repurge_candidates
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

EVENTS = Path(__file__).parents[2] / "events"
BUCKET = "example-site-content"


def run(cdn: FakeCDN, event: dict[str, Any], ledger: MemoryLedger) -> BatchReport:
    config = fastly_config(cdn.endpoint("fastly"))
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    executor = Executor(providers, base_backoff=0.01)
    specs = {name: p.spec for name, p in providers.items()}
    return BatchReport(
        run_batch(event, config=config, specs=specs, ledger=ledger, executor=executor, deadline=Deadline.after(60))
    )


def candidates(report: BatchReport) -> tuple[Change, ...]:
    """The changes the service would schedule a re-purge for after this batch."""
    run = report.run
    return repurge_candidates(run.decoded.changes, owed=run.owed, completed=run.completed, duplicates=run.duplicates)


def test_batch_coalesces_dedupes_and_acknowledges(fake_cdn: FakeCDN) -> None:
    # Given: two changes to one article (removed then re-created) and a second article
    event = sqs_event(
        s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01", event_name="ObjectRemoved:Delete")),
        s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="02")),
        s3_notification(s3_record(BUCKET, "articles/b.html", sequencer="03")),
    )
    # When
    report = run(fake_cdn, event, MemoryLedger())
    # Then: one bulk key call + one call per URL, each target once
    assert report.response() == {"batchItemFailures": []}
    purged = fake_cdn.purged("fastly")
    assert sorted(purged) == sorted(set(purged))
    assert "key:article-a (hard)" in purged and "key:article-b (hard)" in purged
    assert "url:www.example.com/articles/a.html (hard)" in purged
    assert report.summary()["requests"] == len(fake_cdn.received_by("fastly")) == 5


def test_one_malformed_record_fails_alone(fake_cdn: FakeCDN) -> None:
    # Given
    event = sqs_event(
        s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01")),
        "{not json",
        s3_notification(s3_record(BUCKET, "docs/../x", sequencer="02")),
    )
    # When
    report = run(fake_cdn, event, MemoryLedger())
    # Then
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert "not JSON" in " ".join(report.run.failures.reasons["m1"])
    assert "'..' path segment" in " ".join(report.run.failures.reasons["m2"])
    assert "key:article-a (hard)" in fake_cdn.purged("fastly")


def test_redelivery_is_skipped_by_the_ledger_and_a_new_upload_is_not(fake_cdn: FakeCDN) -> None:
    # Given
    ledger = MemoryLedger()
    run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01"))), ledger)
    calls = len(fake_cdn.received)
    # When: the same S3 event redelivered in another SQS message, then a new upload of the object
    again = run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01"))), ledger)
    # Then
    assert len(fake_cdn.received) == calls and again.summary()["duplicates_skipped"] == 1
    newer = run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="02"))), ledger)
    assert newer.summary()["requests"] == 3 and len(fake_cdn.received) == calls + 3


def test_provider_failure_fails_the_record_and_releases_the_claim(fake_cdn: FakeCDN) -> None:
    # Given: Fastly refuses every call
    fake_cdn.inject("fastly", Fault(status=400, count=10))
    ledger = MemoryLedger()
    # When
    report = run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01"))), ledger)
    # Then
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert ledger.released and not ledger.done and not ledger.busy


HOST = "url:www.example.com"
# What each sample in events/ must purge at Fastly under `fastly_config`, and the records it must fail.
SAMPLE_OUTCOMES: dict[str, tuple[set[str], set[str]]] = {
    "eventbridge-content-published.json": ({"key:section-news (hard)", f"{HOST}/news/ (hard)"}, set()),
    "eventbridge-s3-object-created.json": ({f"{HOST}/products/widget-42.html (hard)"}, set()),
    "eventbridge-s3-object-deleted.json": ({f"{HOST}/products/widget-41.html (hard)"}, set()),
    "s3-delete.json": ({f"{HOST}/articles/2025/old-news.html (hard)"}, set()),
    "s3-put.json": ({f"{HOST}/articles/2026/cdn-purge.html (hard)"}, set()),
    "s3-test-event.json": (set(), set()),  # S3's configuration test message: ignored, not an error
    "sns-content-published.json": (
        {
            "key:article-cdn-purge (soft)",
            f"{HOST}/articles/cdn-purge (soft)",
            f"{HOST}/articles/cdn-purge.html (soft)",
        },
        set(),
    ),
    # `static.example.com` is not in allowed_hosts: the record fails, nothing is purged for it
    "sqs-eventbridge-content-published.json": (set(), {"d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70"}),
    "sqs-eventbridge-s3-object-created.json": ({f"{HOST}/ (hard)", f"{HOST}/index.html (hard)"}, set()),
    "sqs-eventbridge-s3-object-deleted.json": ({f"{HOST}/products/widget-41.html (hard)"}, set()),
    # the malformed second record fails alone; the test event is ignored; the others are purged
    "sqs-mixed-batch.json": (
        {f"{HOST}/css/legacy.css (hard)", f"{HOST}/css/site.css (hard)", f"{HOST}/css/ (soft)"},
        {"11111111-2222-4333-8444-555555555502"},
    ),
    "sqs-s3-put.json": ({f"{HOST}/docs/annual%20report%2B2026.pdf (hard)"}, set()),
    "sqs-sns-content-published.json": ({f"{HOST}/ (hard)", f"{HOST}/news/ (hard)"}, set()),
    "sqs-sns-s3-put.json": ({f"{HOST}/images/caf%C3%A9/hero%20banner.jpg (hard)"}, set()),
}


def test_every_sample_event_has_its_expected_outcome() -> None:
    assert sorted(SAMPLE_OUTCOMES) == sorted(p.name for p in EVENTS.glob("*.json"))


@pytest.mark.parametrize("sample", sorted(SAMPLE_OUTCOMES))
def test_every_sample_event_purges_what_it_names(fake_cdn: FakeCDN, sample: str) -> None:
    purged, failed = SAMPLE_OUTCOMES[sample]
    report = run(fake_cdn, json.loads((EVENTS / sample).read_text()), MemoryLedger())
    assert set(fake_cdn.purged("fastly")) == purged
    assert {item["itemIdentifier"] for item in report.response()["batchItemFailures"]} == failed


class UnreachableLedger(MemoryLedger):
    """The idempotency store is down: claims (or completions) fail like botocore's connection errors."""

    def __init__(self, *, fail: str) -> None:
        super().__init__()
        self.fail = fail

    def claim(self, pairs: Iterable[Pair], remaining_ms: int | None) -> Claims:
        pairs = list(pairs)
        if self.fail == "claim":
            raise LedgerUnavailableError(LedgerOperation.CLAIM, pairs, "EndpointConnectionError: down")
        return super().claim(pairs, remaining_ms)

    def complete(self, pairs: Iterable[Pair], result: dict[str, Any]) -> None:
        if self.fail == "complete":
            raise LedgerUnavailableError(LedgerOperation.COMPLETE, pairs, "EndpointConnectionError: down")
        super().complete(pairs, result)


def test_no_claim_no_purge_every_record_returned_for_redelivery(fake_cdn: FakeCDN) -> None:
    # Given: the idempotency store is unreachable
    event = sqs_event(
        s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01")),
        s3_notification(s3_record(BUCKET, "articles/b.html", sequencer="02")),
        "{bad",
    )
    # When
    report = run(fake_cdn, event, UnreachableLedger(fail="claim"))
    # Then: nothing purged blindly; the good records are retried (transient), the bad one is permanent
    assert fake_cdn.received == []
    assert report.run.failures.sources == ("m0", "m1", "m2")
    assert report.run.failures.permanent == frozenset({"m2"})
    assert "idempotency store unavailable (EndpointConnectionError: down)" in " ".join(
        report.run.failures.reasons["m0"]
    )
    assert [(f.operation, len(f.pairs)) for f in report.run.ledger_failures] == [("claim", 2)]


def test_a_purge_that_could_not_be_recorded_is_acknowledged_and_reported(fake_cdn: FakeCDN) -> None:
    report = run(
        fake_cdn,
        sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01"))),
        UnreachableLedger(fail="complete"),
    )
    assert report.response() == {"batchItemFailures": []}
    assert [f.operation for f in report.run.ledger_failures] == ["complete"]
    assert len(report.run.completed) == 1


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (401, True), (404, True), (503, False)])
def test_failures_are_classified_permanent_only_when_no_retry_can_help(
    fake_cdn: FakeCDN, status: int, permanent: bool
) -> None:
    fake_cdn.inject("fastly", Fault(status=status, count=100))
    config = fastly_config(fake_cdn.endpoint("fastly"))
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    clock = SimulatedClock()
    executor = Executor(providers, clock=clock, sleep=clock.sleep, max_attempts=2)
    specs = {name: p.spec for name, p in providers.items()}
    event = sqs_event(s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="01")))
    report = BatchReport(
        run_batch(
            event, config=config, specs=specs, ledger=MemoryLedger(), executor=executor, deadline=Deadline.after(60)
        )
    )
    assert report.run.failures.sources == ("m0",)
    assert (report.run.failures.permanent == frozenset({"m0"})) is permanent


def test_repurge_candidates_are_s3_changes_purged_everywhere_by_this_batch(fake_cdn: FakeCDN) -> None:
    # Given: an S3 change, a published change, and an S3 change already purged earlier
    ledger = MemoryLedger()
    run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "docs/old.html", sequencer="01"))), ledger)
    published = {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps({"keys": ["home"]})}
    event = sqs_event(
        s3_notification(s3_record(BUCKET, "docs/new.html", sequencer="02")),
        published,
        s3_notification(s3_record(BUCKET, "docs/old.html", sequencer="01")),
    )
    # When
    report = run(fake_cdn, event, ledger)
    # Then
    assert [change.key for change in candidates(report)] == ["docs/new.html"]


def test_a_repurge_message_purges_again_under_its_own_ids(fake_cdn: FakeCDN) -> None:
    # Given: a change purged, then its re-purge message
    ledger = MemoryLedger()
    first = run(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "docs/a b.html", sequencer="01"))), ledger)
    ((body, ids),) = repurge_messages(candidates(first))
    # When
    second = run(fake_cdn, sqs_event(body), ledger)
    again = run(fake_cdn, sqs_event(body), ledger)
    # Then: purged twice in all (same target), the redelivered re-purge skipped, never re-re-purged
    assert [c.id for c in second.run.decoded.changes] == [f"{ids[0]}#repurge"]
    assert fake_cdn.purged("fastly") == ["url:www.example.com/docs/a%20b.html (hard)"] * 2
    assert again.summary()["duplicates_skipped"] == 1
    assert candidates(second) == ()


def test_a_multi_cdn_batch_claims_only_what_each_provider_is_sent(fake_cdn: FakeCDN) -> None:
    # Given: Fastly (keys, URLs) beside CloudFront (paths only)
    config = config_from(
        f"""
        providers:
          - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, endpoint: {fake_cdn.endpoint("fastly")},
             hosts: [www.example.com], credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
          - {{name: cloudfront, kind: cloudfront, distribution_id: E2QWRUHAPOMQZL, hosts: [www.example.com]}}
        """
    )
    published = {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps({"keys": ["home"]})}
    specs = provider_specs(config.providers)
    ledger = MemoryLedger()
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    executor = Executor(providers, base_backoff=0.01)
    # When: a CMS publishes a surrogate key, which CloudFront cannot purge
    report = BatchReport(
        run_batch(
            sqs_event(published),
            config=config,
            specs=specs,
            ledger=ledger,
            executor=executor,
            deadline=Deadline.after(60),
        )
    )
    # Then: purged at Fastly, acknowledged, and no CloudFront claim left owed or failed
    assert report.response() == {"batchItemFailures": []} and not report.run.plan.errors
    assert fake_cdn.purged("fastly") == ["key:home (hard)"]
    assert ledger.done == {("fastly", "sns:sns-1")}
