"""The purge trail on DynamoDB Local, with the template's own table and indexes: a batch purged through the
real pipeline and fake Fastly is written, then found by change id, object, URL and age (the CLI too);
the verifier's reports merge in any order; retention is the trail's own; items stay bounded; and a trail
that cannot be written never fails a batch."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from helpers import FASTLY_TOKEN, MemoryLedger, create_template_table, fastly_config

from cdnpurge.cli.main import main as cli
from cdnpurge.cli.status import TrailReader, print_status
from cdnpurge.core.config import Config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.report import BatchRun
from cdnpurge.runtime.service import PurgeService
from cdnpurge.runtime.trail import (
    EXPIRES_AT,
    MAX_TARGETS_LISTED,
    PK,
    DynamoDBTrail,
    TrailEvent,
    TrailUpdate,
    iso,
    partition_key,
)
from cdnpurge_local.cfn import load_template
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope, sqs_event
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("trail")]

BUCKET = "example-site-content"
NOW = 1_796_000_000.0  # 2026-11-29T...Z: the trail's clock, fixed
RETENTION = 7 * 24 * 3600


@pytest.fixture
def table(dynamodb: Any) -> str:
    """A fresh trail table per test, exactly as the template declares it (key, indexes, billing)."""
    name = f"trail-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "PurgeTrailTable", name)
    return name


def purge(cdn: FakeCDN, event: dict[str, Any]) -> tuple[Config, BatchRun]:
    config = fastly_config(cdn.endpoint("fastly"))
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    run = run_batch(
        event,
        config=config,
        specs={name: p.spec for name, p in providers.items()},
        ledger=MemoryLedger(),
        executor=Executor(providers, base_backoff=0.01),
        deadline=Deadline.after(60),
    )
    return config, run


def trail(dynamodb: Any, table: str, now: float = NOW) -> DynamoDBTrail:
    return DynamoDBTrail(dynamodb, table, retention_seconds=RETENTION, clock=lambda: now, sleep=lambda _: None)


def reader(dynamodb: Any, table: str, now: float = NOW) -> TrailReader:
    return TrailReader(dynamodb, table, clock=lambda: now)


def partition(dynamodb: Any, table: str, change_id: str) -> list[dict[str, Any]]:
    return list(
        dynamodb.query(
            TableName=table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues={":pk": {"S": partition_key(change_id)}},
        )["Items"]
    )


def test_a_batch_is_traced_and_found_by_change_object_url_and_age(fake_cdn: FakeCDN, dynamodb: Any, table: str) -> None:
    # Given: an article (rule 0: paths and a surrogate key), a document (rule 1) and a publisher's URL
    published = {"id": "release-7", "urls": ["https://www.example.com/news/today"]}
    event = sqs_event(
        s3_notification(s3_record(BUCKET, "articles/a.html", sequencer="00A1")),
        s3_notification(s3_record(BUCKET, "docs/guide/b.pdf", sequencer="00B2")),
        sns_envelope(published),
    )
    config, run = purge(fake_cdn, event)
    assert run.failures.sources == ()
    # When
    written = trail(dynamodb, table).record(run, config.rules)
    # Then: every item went in
    assert written.failed == 0 and written.written > 0
    article = f"s3:{BUCKET}/articles/a.html@00A1"
    [found] = reader(dynamodb, table).by_change(article)
    assert found.source == {"bucket": BUCKET, "key": "articles/a.html", "sequencer": "00A1"}
    assert found.rule == {"index": 0, "match": "articles/{slug}.html", "bucket": BUCKET}
    assert found.action == "created"
    [fastly] = found.providers
    assert fastly.provider == "fastly" and fastly.attempts >= 1 and fastly.last_error is None
    assert set(fastly.targets) == {"path:/articles/a", "path:/articles/a.html", "key:article-a"}
    assert fastly.accepted_at is not None and fastly.accepted_at.startswith("2026-")
    assert fastly.provider_ids  # Fastly's purge ids, as PurgeResult.provider_id carries them
    assert fastly.completed_at is None and fastly.fresh_at is None  # until the verifier says so
    # And: by object, by URL (through its path, its directory prefix or itself), by age
    documents = reader(dynamodb, table).by_object(BUCKET, "docs/guide/b.pdf")
    assert [change.change_id for change in documents] == [f"s3:{BUCKET}/docs/guide/b.pdf@00B2"]
    assert documents[0].rule is not None and documents[0].rule["index"] == 1
    by_url = reader(dynamodb, table).by_url("https://www.example.com/articles/a.html?utm=x#top")
    assert [change.change_id for change in by_url] == [article]
    [news] = reader(dynamodb, table).by_url("https://www.example.com/news/today")
    assert news.change_id == "pub:release-7"
    assert news.source["publisher_id"] == "release-7" and news.rule is None
    assert reader(dynamodb, table).by_url("https://www.example.com/nothing/here.html") == []
    recent = reader(dynamodb, table, now=NOW + 60).since(3600)
    assert {change.change_id for change in recent} == {article, f"s3:{BUCKET}/docs/guide/b.pdf@00B2", news.change_id}
    assert reader(dynamodb, table, now=NOW + 2 * 3600).since(3600) == []
    assert len(reader(dynamodb, table, now=NOW + 60).since(3600, limit=2)) == 2


def test_the_cli_answers_each_question_as_a_table_or_json(fake_cdn: FakeCDN, dynamodb: Any, table: str) -> None:
    # Given
    config, run = purge(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/c.html", sequencer="0C"))))
    trail(dynamodb, table).record(run, config.rules)

    def status(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return cli(["status", "--table", table, *argv], out=out, dynamodb=dynamodb), out.getvalue()

    # When / Then: readable by default
    code, text = status("--bucket", BUCKET, "--key", "articles/c.html")
    assert code == 0
    assert f"s3://{BUCKET}/articles/c.html [sequencer 0C]" in text
    assert "rule 0: match 'articles/{slug}.html'" in text
    assert "PROVIDER" in text and "fastly" in text and "path:/articles/c.html" in text
    # JSON for scripts: the same record
    code, text = status("--change-id", f"s3:{BUCKET}/articles/c.html@0C", "--format", "json")
    document = json.loads(text)
    assert code == 0 and document["changes"][0]["providers"][0]["provider"] == "fastly"
    assert document["changes"][0]["providers"][0]["accepted_at"]
    code, text = status("--url", "https://www.example.com/articles/c")
    assert code == 0 and "articles/c.html" in text
    # Nothing recorded: exit 1, said plainly
    code, text = status("--bucket", BUCKET, "--key", "never/purged.html")
    assert code == 1 and "no purge recorded for s3://" in text
    # The demo's hook prints the same answer
    out = io.StringIO()
    assert print_status(reader(dynamodb, table), out, bucket=BUCKET, key="articles/c.html") == 0
    assert "fastly" in out.getvalue()


def test_questions_that_cannot_be_asked_are_usage_errors(
    dynamodb: Any, table: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAIL_TABLE_NAME", raising=False)
    for argv, problem in (
        (["--url", "www.example.com/a"], "not an absolute http(s) URL"),
        (["--bucket", BUCKET], "--bucket and --key go together"),
    ):
        assert cli(["status", "--table", table, *argv], out=io.StringIO(), dynamodb=dynamodb) == 2
        assert problem in capsys.readouterr().err
    assert cli(["status", "--since", "1h"], out=io.StringIO(), dynamodb=dynamodb) == 2
    assert "name the trail table" in capsys.readouterr().err
    # An AWS problem is one line, as for every command
    assert cli(["status", "--table", "no-such-table", "--since", "1h"], out=io.StringIO(), dynamodb=dynamodb) == 2
    assert "Query failed: ResourceNotFoundException" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli(["status", "--table", table, "--since", "yesterday"], out=io.StringIO(), dynamodb=dynamodb)
    assert exit_info.value.code == 2
    assert "not a duration such as 90s" in capsys.readouterr().err


def test_verifier_reports_merge_in_any_order_and_the_earliest_fresh_wins(
    fake_cdn: FakeCDN, dynamodb: Any, table: str
) -> None:
    # Given: the verifier reports before the batch's own record is written (any order is fine)
    change = f"s3:{BUCKET}/articles/d.html@0D"
    config, run = purge(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/d.html", sequencer="0D"))))
    updates = trail(dynamodb, table, now=NOW + 30)
    assert updates.fresh("fastly", change, NOW + 9.5).failed == 0
    # When
    trail(dynamodb, table).record(run, config.rules)
    written = updates.report(
        [
            TrailUpdate(TrailEvent.COMPLETED, "fastly", change, NOW + 1.0),
            TrailUpdate(TrailEvent.ATTEMPT, "fastly", change, NOW + 4.0, error='still stale: ETag "x"'),
            TrailUpdate(TrailEvent.ATTEMPT, "fastly", change, NOW + 8.0, provider_id="repurge-1"),
            TrailUpdate(TrailEvent.FRESH, "fastly", change, NOW + 12.0),  # a later sighting: not the first
        ]
    )
    assert updates.attempt("fastly", change, NOW + 20.0, error="timeout").failed == 0
    # Then
    assert written.written == 4
    [found] = reader(dynamodb, table).by_change(change)
    [fastly] = found.providers
    assert (fastly.accepted_at, fastly.completed_at, fastly.fresh_at) == (iso(NOW), iso(NOW + 1.0), iso(NOW + 9.5))
    assert fastly.attempts == 1 + 3  # the batch's one call, then three re-purges
    assert fastly.last_error == "timeout"
    assert "repurge-1" in fastly.provider_ids
    text = io.StringIO()
    print_status(reader(dynamodb, table), text, change_id=change)
    assert "+1.0 s" in text.getvalue() and "+9.5 s" in text.getvalue()


def test_every_item_expires_after_the_trails_own_retention(fake_cdn: FakeCDN, dynamodb: Any, table: str) -> None:
    # Given
    config, run = purge(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/e.html", sequencer="0E"))))
    # When
    trail(dynamodb, table).record(run, config.rules)
    trail(dynamodb, table, now=NOW + 50).fresh("fastly", f"s3:{BUCKET}/articles/e.html@0E", NOW + 50)
    # Then: 7 days from each write, on the attribute the table's TTL reads (not the ledger's hour)
    items = partition(dynamodb, table, f"s3:{BUCKET}/articles/e.html@0E")
    assert len(items) >= 3
    assert {int(item[EXPIRES_AT]["N"]) for item in items} == {int(NOW) + RETENTION, int(NOW) + 50 + RETENTION}
    ttl = load_template(TEMPLATE_PATH)["Resources"]["PurgeTrailTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": EXPIRES_AT, "Enabled": True}


@pytest.mark.parametrize(("count", "length"), [(700, 300), (150, 1500)], ids=["many", "long"])
def test_a_change_with_hundreds_of_long_targets_stays_a_small_item(
    fake_cdn: FakeCDN, dynamodb: Any, table: str, count: int, length: int
) -> None:
    # Given: a publisher naming hundreds of long paths (about 210 KB of targets, near SQS's message limit)
    change = f"pub:big-{count}"
    paths = [f"/catalogue/{number:05d}/{'x' * (length - 17)}" for number in range(count)]
    config, run = purge(fake_cdn, sqs_event(sns_envelope({"id": change.removeprefix("pub:"), "paths": paths})))
    assert run.failures.sources == ()
    # When
    written = trail(dynamodb, table).record(run, config.rules)
    # Then: written, listing what fits (in number and in bytes) and counting what it leaves out
    assert written.failed == 0
    [found] = reader(dynamodb, table).by_change(change)
    [fastly] = found.providers
    assert 0 < len(fastly.targets) <= MAX_TARGETS_LISTED
    assert len(fastly.targets) + fastly.targets_omitted == count
    largest = max(len(json.dumps(item)) for item in partition(dynamodb, table, change))
    assert largest < 64_000


class Unprocessing:
    """A DynamoDB client that accepts every BatchWriteItem and processes none of it (throttled for ever)."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.calls += 1
        return {"UnprocessedItems": RequestItems}


def test_items_left_unprocessed_are_counted_not_raised(fake_cdn: FakeCDN) -> None:
    config, run = purge(fake_cdn, sqs_event(s3_notification(s3_record(BUCKET, "articles/f.html", sequencer="0F"))))
    client = Unprocessing()
    written = DynamoDBTrail(client, "trail", sleep=lambda _: None).record(run, config.rules)
    assert written.written == 0 and written.failed > 0
    assert written.cause == "UnprocessedError: left unprocessed on 5 attempts"
    assert client.calls == 5


def test_a_trail_that_cannot_be_written_never_fails_the_batch(
    fake_cdn: FakeCDN, dynamodb: Any, credentials_env: None
) -> None:
    # Given: the service with a real ledger table, and a trail table that does not exist
    ledger = f"ledger-{uuid.uuid4().hex[:8]}"
    create_template_table(dynamodb, "IdempotencyTable", ledger)
    service = PurgeService.build(
        fastly_config(fake_cdn.endpoint("fastly")),
        table_name=ledger,
        dynamodb_client=dynamodb,
        trail_table_name="no-such-trail-table",
    )
    # When
    report = service.handle(sqs_event(s3_notification(s3_record(BUCKET, "articles/g.html", sequencer="0G"))))
    # Then: purged and acknowledged; the trail's failure is reported, for logs and the metric
    assert report.response() == {"batchItemFailures": []}
    assert "url:www.example.com/articles/g.html (hard)" in fake_cdn.purged("fastly")
    assert report.trail.written == 0 and report.trail.failed > 0
    assert report.trail.cause is not None and "ResourceNotFound" in report.trail.cause
    assert report.summary()["trail_write_failed"] == report.trail.failed
