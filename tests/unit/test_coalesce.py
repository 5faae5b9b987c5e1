"""The pure side of coalescing: which targets wait for a window, how they are stored, and the flush message."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, config_from

from cdnpurge.cli.main import main
from cdnpurge.core.coalesce import (
    decode_target,
    encode_target,
    flush_change_id,
    flush_delay,
    flush_targets,
    flush_window,
    is_flush,
    split,
    split_flushes,
)
from cdnpurge.core.config import ConfigError
from cdnpurge.core.events import decode_event
from cdnpurge.core.events.coalesce import encode_flush
from cdnpurge.core.events.repurge import repurge_messages
from cdnpurge.core.models import Action, Change, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import router
from cdnpurge.core.registry import specs as specs_for
from cdnpurge.runtime.coalesce import CoalesceReport, Deferral, verified_purges
from cdnpurge.runtime.service import PurgeService
from cdnpurge.runtime.verification.verifier import Purged
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event

TWO_CDNS = f"""
providers:
  - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, hosts: [www.example.com], coalesce_seconds: 30,
     credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
  - {{name: other, kind: fastly, service_id: {FASTLY_SERVICE}, hosts: [www.example.com],
     credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
"""


def routed(change: str, kind: TargetKind, value: str, providers: frozenset[str] | None = None) -> RoutedTarget:
    return RoutedTarget(change, Target(kind, value), providers, None)


def test_shared_targets_wait_only_at_the_providers_that_coalesce() -> None:
    # Given: a key and a URL of one change, for two CDNs of which one coalesces
    specs = specs_for(config_from(TWO_CDNS).providers)
    key = routed("c1", TargetKind.KEY, "section-a")
    url = routed("c1", TargetKind.URL, "https://www.example.com/a/1.jpg")
    # When
    parts = split([key, url], router(specs), specs)
    # Then: the key waits at fastly and goes now to the other; the URL goes now to both
    assert parts.waiting == {"fastly": [key._replace(providers=frozenset({"fastly"}))]}
    assert parts.now == [key._replace(providers=frozenset({"other"})), url]
    assert parts.changes("fastly") == ("c1",)


def test_without_a_window_everything_is_purged_now() -> None:
    specs = specs_for(config_from(TWO_CDNS.replace(", coalesce_seconds: 30", "")).providers)
    items = [routed("c1", TargetKind.KEY, "k"), routed("c2", TargetKind.ALL, "*")]
    parts = split(items, router(specs), specs)
    assert parts.now == items and not parts.waiting


def test_giving_up_a_window_purges_its_share_now() -> None:
    specs = specs_for(config_from(TWO_CDNS).providers)
    parts = split([routed("c1", TargetKind.PREFIX, "/a/")], router(specs), specs)
    moved = parts.give_up("fastly")
    assert [item.providers for item in parts.now] == [frozenset({"other"}), frozenset({"fastly"})]
    assert moved and "fastly" not in parts.waiting


def test_a_batch_that_would_purge_everything_leaves_its_purge_all_to_the_window() -> None:
    # Given: purge-all over 2 requests, and a batch of 3 one-URL requests at Fastly
    config = config_from(TWO_CDNS.replace("coalesce_seconds: 30", "coalesce_seconds: 30, purge_all_over: 2"))
    specs = {"fastly": specs_for(config.providers)["fastly"]}
    items = [routed(f"c{i}", TargetKind.URL, f"https://www.example.com/{i}.jpg") for i in range(3)]
    # When
    parts = split(items, router(specs), specs)
    # Then: nothing now; one purge-all per change waits (stored once: one per window)
    assert parts.now == []
    stored = {encode_target(i.target.kind, i.target.value, i.soft) for i in parts.waiting["fastly"]}
    assert stored == {"all|h|*"}
    assert parts.changes("fastly") == ("c0", "c1", "c2")


def test_a_batch_under_the_purge_all_budget_purges_its_urls_now() -> None:
    config = config_from(TWO_CDNS.replace("coalesce_seconds: 30", "coalesce_seconds: 30, purge_all_over: 5"))
    specs = {"fastly": specs_for(config.providers)["fastly"]}
    items = [routed(f"c{i}", TargetKind.URL, f"https://www.example.com/{i}.jpg") for i in range(3)]
    assert split(items, router(specs), specs).now == items


@pytest.mark.parametrize("soft", [None, True, False])
@pytest.mark.parametrize(
    ("kind", "value"), [(TargetKind.KEY, "a|b"), (TargetKind.PREFIX, "/x/"), (TargetKind.ALL, "*")]
)
def test_a_stored_target_reads_back_as_itself(kind: TargetKind, value: str, soft: bool | None) -> None:
    assert decode_target(encode_target(kind, value, soft)) == (Target(kind, value), soft)


@pytest.mark.parametrize(
    "stored", ["", "key", "key|x|v", "url|-|https://a/b", "nope|-|v", "key|-|", "key|-|" + "k" * 3000]
)
def test_a_stored_entry_that_is_not_a_shared_target_is_refused(stored: str) -> None:
    assert decode_target(stored) is None


def test_a_windows_targets_go_to_its_provider_only_and_refused_entries_are_counted() -> None:
    targets, refused = flush_targets("coalesce:fastly#3", "fastly", ["key|-|a", "bogus", "prefix|s|/p/"])
    assert refused == 1
    assert targets == [
        RoutedTarget("coalesce:fastly#3", Target(TargetKind.KEY, "a"), frozenset({"fastly"}), None),
        RoutedTarget("coalesce:fastly#3", Target(TargetKind.PREFIX, "/p/"), frozenset({"fastly"}), True),
    ]


@pytest.mark.parametrize(
    ("due", "now", "delay"),
    [(100.0, 40.0, 60), (100.0, 99.2, 1), (100.0, 150.0, 0), (5000.0, 0.0, 900), (math.inf, 0.0, 0), (math.nan, 0, 0)],
)
def test_the_flush_is_delayed_to_the_windows_end_rounded_up_within_sqs_bounds(
    due: float, now: float, delay: int
) -> None:
    assert flush_delay(due, now) == delay


def flush_record(body: str, message_id: str = "m1") -> dict[str, object]:
    return {"Records": [{"eventSource": "aws:sqs", "messageId": message_id, "body": body, "attributes": {}}]}


def test_a_flush_message_decodes_to_its_windows_purge() -> None:
    decoded = decode_event(flush_record(encode_flush("fastly", 7, 1_800_000_000.5)))
    (change,) = decoded.changes
    assert change.id == flush_change_id("fastly", 7) and change.source_id == "m1"
    assert is_flush(change) and flush_window(change.id) == ("fastly", 7)
    assert split_flushes(decoded.changes) == ((change,), ())


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("provider", "a b", "field provider: must be letters, digits"),
        ("provider", "x" * 200, "field provider: Expected `str` of length <= 128"),
        ("generation", -1, "field generation: Expected `int` >= 0"),
        ("generation", 2**60, "field generation: Expected `int` <= "),
        ("generation", True, "field generation: Expected `int`, got `bool`"),
        ("generation", 1.5, "field generation: Expected `int`, got `float`"),
        ("due_at", "soon", "field due_at: Expected `float`, got `str`"),
        ("due_at", 1e300, "field due_at: Expected `float` <= 4102444800.0"),
        ("due_at", 12, "field due_at: Expected `float` >= 1000000000.0"),
        ("extra", 1, "field extra: unknown field"),
    ],
)
def test_a_flush_message_is_validated_like_any_input(field: str, value: object, problem: str) -> None:
    doc = json.loads(encode_flush("fastly", 1, 1_800_000_000.0))
    doc[field] = value
    decoded = decode_event(flush_record(json.dumps(doc)))
    assert decoded.changes == ()
    (error,) = decoded.errors
    assert problem in error.message and error.source_id == "m1"


def test_a_flush_message_with_a_non_finite_time_is_refused() -> None:
    body = encode_flush("fastly", 1, 1_800_000_000.0).replace("1800000000.0", "NaN")
    (error,) = decode_event(flush_record(body)).errors
    assert "field due_at: Expected `float` >= 1000000000.0" in error.message


def test_no_other_change_passes_for_a_windows_purge() -> None:
    # A re-purge carrying a flush-shaped id keeps its object, so it is not taken for a window's purge.
    ((body, _),) = repurge_messages([Change("coalesce:fastly#1", Action.CREATED, "m", bucket="b1b", key="k")])
    (change,) = decode_event(flush_record(body)).changes
    assert not is_flush(change)
    assert not is_flush(Change("coalesce:fastly#x", Action.PUBLISHED, "m"))


@pytest.mark.parametrize("seconds", [0, 901, -5])
def test_a_window_outside_sqs_delay_bounds_is_refused(seconds: int) -> None:
    with pytest.raises(ConfigError, match="coalesce_seconds"):
        config_from(TWO_CDNS.replace("coalesce_seconds: 30", f"coalesce_seconds: {seconds}"))


def test_cdnpurge_plan_shows_what_waits_for_the_window_and_plans_the_rest(tmp_path: Path) -> None:
    # Given: Fastly coalescing keys for 30 s, and an upload that has a key and a path
    config = tmp_path / "purge.yaml"
    config.write_text(
        TWO_CDNS.split("  - {name: other", maxsplit=1)[0]
        + 'rules: [{match: "{key*}", keys: ["k-{key}"], paths: ["/{key}"]}]\n'
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps(sqs_event(s3_notification(s3_record("site", "a.jpg", sequencer="0A")))))
    out = io.StringIO()
    # When
    code = main(["plan", "-c", str(config), "-e", str(event), "-f", "json"], out=out)
    text = io.StringIO()
    main(["plan", "-c", str(config), "-e", str(event)], out=text)
    # Then: the URL is planned now; the key waits for the window
    document = json.loads(out.getvalue())
    assert code == 0
    assert [request["kind"] for request in document["requests"]] == ["url"]
    (waiting,) = document["coalesced"]
    assert waiting["provider"] == "fastly" and waiting["targets"] == ["key:k-a.jpg"] and waiting["window_seconds"] == 30
    assert "coalesced: fastly: key:k-a.jpg (1 change(s)) wait for its 30 s window" in text.getvalue()


def test_the_deferred_changes_are_verified_after_their_windows_purge() -> None:
    report = CoalesceReport(deferrals=(Deferral("fastly", "coalesce:fastly#2", ("c1", "c2"), 3, True, 1060.0),))
    assert verified_purges((), report, 1000.0, 10) == [Purged("fastly", frozenset({"c1", "c2"}), None, 70.0)]
    assert report.covered_by() == {"c1": "coalesce:fastly#2", "c2": "coalesce:fastly#2"}


def test_the_service_refuses_a_window_without_its_purge_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = tmp_path / "purge.yaml"
    config.write_text(TWO_CDNS)
    environ = {"PURGE_CONFIG": str(config), "IDEMPOTENCY_TABLE_NAME": "t", "FASTLY_API_TOKEN": FASTLY_TOKEN}
    with pytest.raises(ConfigError, match="coalesce_seconds set but environment variable PURGE_QUEUE_URL is not"):
        PurgeService.from_environment(environ)
    service = PurgeService.from_environment({**environ, "PURGE_QUEUE_URL": "q", "BATCHING_WINDOW_SECONDS": "10"})
    assert service.queues.batching_window_seconds == 10
