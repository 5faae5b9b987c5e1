"""The purge trail's pure parts: which items a batch becomes (bounded, with the source and rule), how the
verifier's reports fold into a provider's status, and how `cdnpurge status` turns a URL or an age into
index keys. On DynamoDB Local: tests/integration/test_trail_dynamodb.py."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import MemoryLedger, config_from

from cdnpurge.cli.status import StatusError, assemble, parse_duration, url_lookups
from cdnpurge.core.config import Config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import Action, Change
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.report import BatchRun
from cdnpurge.runtime.trail import (
    CHANGE_SK,
    HOUR_SHARDS,
    MAX_INDEXED_TARGETS,
    TARGET_SK,
    batch_items,
    hour_keys,
    iso,
    source_of,
)
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event

NOW = 1_796_000_000.0


class Accepting:
    """A provider that accepts every request (the executor's only view of a CDN), with a job id."""

    def __init__(self, spec: object) -> None:
        self.spec = spec
        self.name = "fastly"

    def purge(self, request: object, *, idempotency_token: str, deadline: object = None) -> PurgeResult:
        return PurgeResult(provider_id=f"job-{idempotency_token[:6]}")


def batch(*keys: str, paths: int = 1) -> tuple[Config, BatchRun]:
    templates = ", ".join(f'"/v{n}/{{key}}"' for n in range(paths))
    config = config_from(
        f"""
        providers:
          - {{name: fastly, kind: fastly, service_id: svc, hosts: [www.example.com],
              credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
        rules:
          - {{bucket: other, match: "{{key*}}", paths: ["/other/{{key}}"]}}
          - {{match: "{{key*}}", paths: [{templates}]}}
        """
    )
    real = build_providers(config.providers, lambda settings: {"token": Secret("t")})
    providers = {"fastly": Accepting(real["fastly"].spec)}
    event = sqs_event(*(s3_notification(s3_record("site", key, sequencer=f"0{n}")) for n, key in enumerate(keys)))
    return config, run_batch(
        event,
        config=config,
        specs={"fastly": real["fastly"].spec},
        ledger=MemoryLedger(),
        executor=Executor(providers),  # type: ignore[arg-type]
        deadline=Deadline.after(60),
    )


def test_a_batch_becomes_a_change_item_target_items_and_a_record_per_provider() -> None:
    config, run = batch("docs/a.html")
    items = batch_items(run, config.rules, now=NOW, expires_at=123)
    change, target, record = items
    assert change["sk"] == CHANGE_SK and change["rule"] == {"index": 1, "match": "{key*}", "bucket": None}
    assert change["lookup"] == "object:site/docs/a.html" and change["hour"] in hour_keys(NOW)
    assert change["source"] == {"bucket": "site", "key": "docs/a.html", "sequencer": "00"}
    assert target["sk"].startswith(TARGET_SK) and target["lookup"] == "path:/v0/docs/a.html"
    assert record["sk"] == "provider#fastly" and record["targets"] == ["path:/v0/docs/a.html"]
    assert record["accepted_at"] == iso(NOW) and record["attempts"] == 1
    assert record["provider_ids"] and record["provider_ids"][0].startswith("job-")
    assert "last_error" not in record
    assert {item["expires_at"] for item in items} == {123}


def test_index_entries_per_change_are_bounded() -> None:
    config, run = batch("a.html", paths=MAX_INDEXED_TARGETS + 5)
    items = batch_items(run, config.rules, now=NOW, expires_at=1)
    assert sum(item["sk"].startswith(TARGET_SK) for item in items) == MAX_INDEXED_TARGETS


@pytest.mark.parametrize(
    ("change_id", "source"),
    [
        ("s3:b/k@version:v1", {"bucket": "b", "key": "k", "version_id": "v1"}),
        ("s3:b/a@b@0F", {"bucket": "b", "key": "a@b", "sequencer": "0F"}),
        (
            "s3:b/k@0F#repurge",
            {"bucket": "b", "key": "k", "sequencer": "0F", "repurge": "delayed second purge"},
        ),
    ],
)
def test_the_source_names_the_identity_s3_gave_the_change(change_id: str, source: dict[str, str]) -> None:
    bucket, _, rest = change_id.removeprefix("s3:").partition("/")
    key = rest.rpartition("@")[0]
    assert source_of(Change(change_id, Action.CREATED, "m0", bucket, key)) == source


def test_a_published_change_names_its_publisher_or_how_it_arrived() -> None:
    assert source_of(Change("pub:release-7", Action.PUBLISHED, "m0")) == {"publisher_id": "release-7", "message": "m0"}
    assert source_of(Change("sns:abc", Action.PUBLISHED, "m1")) == {"via": "sns", "message_id": "abc"}


def test_reports_fold_into_the_status_earliest_first_latest_error_last() -> None:
    at = iso(NOW)
    items: list[dict[str, Any]] = [
        {"sk": "change", "change_id": "c", "at": at, "action": "created", "source": {}},
        {"sk": "provider#p", "provider": "p", "change_id": "c", "at": at, "accepted_at": at, "attempts": 1},
        {"sk": "x1", "provider": "p", "change_id": "c", "event": "fresh", "at": iso(NOW + 5)},
        {"sk": "x2", "provider": "p", "change_id": "c", "event": "fresh", "at": iso(NOW + 3)},
        {"sk": "x3", "provider": "p", "change_id": "c", "event": "attempt", "at": iso(NOW + 2), "error": "first"},
        {"sk": "x4", "provider": "p", "change_id": "c", "event": "attempt", "at": iso(NOW + 4), "error": "second"},
        {"sk": "x5", "provider": "q", "change_id": "c", "event": "completed", "at": iso(NOW + 1)},
    ]
    status = assemble(items)
    assert status is not None
    p, q = status.providers
    assert (p.fresh_at, p.attempts, p.last_error) == (iso(NOW + 3), 3, "second")
    assert (q.provider, q.accepted_at, q.completed_at) == ("q", None, iso(NOW + 1))  # its record was lost
    assert assemble([]) is None


def test_a_url_is_looked_up_as_itself_its_path_its_directories_and_its_host() -> None:
    assert url_lookups("https://www.example.com/docs/guide/a.html?v=2#top") == [
        "url:https://www.example.com/docs/guide/a.html?v=2",
        "path:/docs/guide/a.html",
        "path:/docs/guide/a.html?v=2",
        "prefix:/",
        "prefix:/docs/",
        "prefix:/docs/guide/",
        "host:www.example.com",
    ]
    with pytest.raises(StatusError, match="not an absolute http"):
        url_lookups("/docs/a.html")


def test_ages_are_read_in_seconds_minutes_hours_and_days() -> None:
    assert [parse_duration(text) for text in ("90s", "15m", "1h", "7d")] == [90, 900, 3600, 604800]
    for text in ("0h", "1w", "h", "-1h"):
        with pytest.raises(StatusError, match="not a duration"):
            parse_duration(text)
    assert len(hour_keys(NOW)) == HOUR_SHARDS
