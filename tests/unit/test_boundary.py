"""Fault boundaries: anything unexpected fails its own record or request, never the batch; a record
sharing its change id with a twin shares the twin's fate.

Each example below aborted the whole batch on the main branch before the boundaries existed (the poison
then came back with every redelivery and took its good neighbours to the dead-letter queue).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from typing import NoReturn

import httpx
import pytest
from aws_lambda_powertools import Logger, Metrics
from faultkit import FAULT_CONFIG, ScriptedCdn, accounted, run_scripted
from helpers import FASTLY_TOKEN, config_from
from msgspec.structs import force_setattr, replace
from reliability import tally

import cdnpurge.core.translate
from cdnpurge.cli.main import main as cli
from cdnpurge.core.boundary import RECORD_METRIC, REQUEST_METRIC
from cdnpurge.core.config import Rule
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import ProviderWrapper, PurgeResult
from cdnpurge.core.provider_errors import RejectedError, UnexpectedError
from cdnpurge.runtime.observability import record
from cdnpurge.runtime.providers.fastly import FastlyProvider
from cdnpurge.runtime.providers.http import ApiCall
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.report import BatchReport
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope, sqs_event

GOOD = "/good.html"


def good_record() -> dict[str, object]:
    return sns_envelope({"paths": [GOOD]})


def test_a_url_python_cannot_parse_fails_its_record_alone() -> None:
    event = sqs_event(sns_envelope({"urls": ["https://[www.example.com/x"]}), good_record())
    tally.hostile("unexpected", 1)
    run = run_scripted(event, cdn := ScriptedCdn())
    assert run.failures.sources == ("m0",) and "m0" in run.failures.permanent
    # refused by name since the canonical form comes first (cdnpurge.core.urls), not as an unexpected ValueError
    assert "is not a URL that can be parsed" in " ".join(run.failures.reasons["m0"])
    assert cdn.purged_paths() == [f"www.example.com{GOOD}"]
    assert accounted(event, run) == []


def test_a_surrogate_key_too_long_for_a_url_fails_its_record_alone() -> None:
    event = sqs_event(sns_envelope({"keys": ["k" * 70_000]}), good_record())
    tally.hostile("unexpected", 1)
    run = run_scripted(event, cdn := ScriptedCdn())
    assert run.failures.sources == ("m0",) and "m0" in run.failures.permanent
    assert cdn.purged_paths() == [f"www.example.com{GOOD}"]
    assert accounted(event, run) == []


def test_a_gzip_answer_that_is_not_gzip_is_a_transient_failure_of_its_request() -> None:
    def garbled(request: httpx.Request) -> httpx.Response | None:
        if "bad" in request.url.path:
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b'{"status": "ok"}')
        return None

    event = sqs_event(sns_envelope({"paths": ["/bad.html"]}), good_record())
    tally.hostile("unexpected", 1)
    run = run_scripted(event, cdn := ScriptedCdn(garbled))
    assert run.failures.sources == ("m0",) and "m0" not in run.failures.permanent  # the CDN may answer next time
    assert "DecodingError" in " ".join(run.failures.reasons["m0"]) and run.failures.unexpected == {"m0"}
    assert f"www.example.com{GOOD}" in cdn.purged_paths()
    assert accounted(event, run) == []


def test_a_token_that_cannot_be_sent_in_a_header_fails_the_requests_not_the_batch() -> None:
    token = "fastly-test-token-not-réal-0123456789"
    event = sqs_event(good_record(), sns_envelope({"keys": ["home"]}))
    tally.hostile("unexpected", 1)
    run = run_scripted(event, cdn := ScriptedCdn(), token=token)
    assert run.failures.sources == ("m0", "m1") and run.failures.permanent == {"m0", "m1"}
    reasons = " ".join(r for source in run.failures.sources for r in run.failures.reasons[source])
    assert "UnicodeEncodeError" in reasons and token[:12] not in reasons
    assert cdn.calls == []
    assert accounted(event, run) == []


def test_a_rule_repeating_a_capture_name_is_refused_by_validate(tmp_path: object) -> None:
    path = __import__("pathlib").Path(str(tmp_path)) / "purge.yaml"
    path.write_text(FAULT_CONFIG.replace('match: "{key*}"', 'match: "{a}/{a}.html"').replace("/{key}", "/{a}"))
    errors = io.StringIO()
    with redirect_stderr(errors):
        status = cli(["validate", "--config", str(path)], out=io.StringIO())
    tally.hostile("unexpected", 1)
    assert status == 2
    assert "rules[0]: match captures ['a'] more than once" in errors.getvalue()


def test_a_rule_that_cannot_compile_fails_only_the_records_it_would_judge() -> None:
    # Given: a configuration that got past validation somehow (an older validator) with a broken rule for
    # one bucket, before the catch-all
    config = config_from(FAULT_CONFIG)
    broken = Rule(bucket="broken", match="{a}/x.html", paths=("/{a}",))
    force_setattr(broken, "match", "{a}/{a}.html")  # what validation refuses, set past it
    config = replace(config, rules=(broken, *config.rules))
    event = sqs_event(s3_notification(s3_record("broken", "x/x.html")), s3_notification(s3_record("other", "ok.html")))
    tally.hostile("unexpected", 1)
    run = run_scripted(event, cdn := ScriptedCdn(), config=config)
    assert run.failures.sources == ("m0",) and "m0" in run.failures.permanent
    assert "error" in " ".join(run.failures.reasons["m0"])
    assert cdn.purged_paths() == ["www.example.com/ok.html"]
    assert run.failures.unexpected == frozenset({"m0"})
    assert RECORD_METRIC == "RecordFailedUnexpectedly"


def test_twins_sharing_a_publisher_id_share_their_fate() -> None:
    # Given: two records with one publisher id and different targets, and a CDN answering 503
    event = sqs_event(
        sns_envelope({"id": "release-7", "paths": ["/a"]}), sns_envelope({"id": "release-7", "paths": ["/b"]})
    )
    tally.hostile("fate", 1)
    run = run_scripted(event, ScriptedCdn(lambda request: httpx.Response(503)))
    # Then: both go back; neither is deleted from SQS unpurged
    assert run.failures.sources == ("m0", "m1")
    assert accounted(event, run) == []


class Exploding(ProviderWrapper):
    """A provider whose call raises what no adapter maps, quoting the token (a library's error might)."""

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        raise KeyError(f"surprise while holding {FASTLY_TOKEN}")


def test_an_exception_no_adapter_maps_fails_its_request_permanently_and_redacted() -> None:
    # Given: the service's factory, its provider swapped for one that raises a KeyError
    config = config_from(FAULT_CONFIG)
    purgers = build_purgers(config.providers, environ={"FASTLY_API_TOKEN": FASTLY_TOKEN})
    executor = purgers.executor
    executor.providers = {"fastly": Exploding(purgers.providers["fastly"])}
    request = PurgeRequest("fastly", TargetKind.URL, ("https://www.example.com/a",), False, frozenset({"c"}))
    tally.hostile("unexpected", 1)
    # When
    outcome = executor.run(request, deadline=Deadline.after(60, executor.clock), idempotency_token="t")
    # Then: one attempt, a permanent failure naming the type and where, the token redacted
    assert isinstance(outcome.error, UnexpectedError) and not outcome.error.retryable and outcome.attempts == 1
    assert outcome.error.metric_name == REQUEST_METRIC
    assert "unexpected KeyError at test_boundary.py:" in outcome.error.message
    assert FASTLY_TOKEN[:12] not in outcome.error.message and "<redacted>" in outcome.error.message


def test_a_record_failed_unexpectedly_is_logged_and_counted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a bug in translate for one URL (the canonicalisation raising what it never should)
    def broken(url: str) -> NoReturn:
        raise ValueError(f"bug for {url}")

    monkeypatch.setattr(cdnpurge.core.translate, "canonical_url", broken)
    event = sqs_event(sns_envelope({"urls": ["https://www.example.com/x"]}), good_record())
    run = run_scripted(event, ScriptedCdn())
    metrics = Metrics(namespace="cdnpurge-test", service="cdnpurge-test")
    metrics.clear_metrics()
    record(BatchReport(run), Logger(service="cdnpurge-test-unexpected"), metrics)
    metrics.flush_metrics()
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (logged,) = [d for d in documents if d.get("message") == "record failed unexpectedly"]
    assert logged["source_id"] == "m0" and "unexpected ValueError" in logged["reasons"][0]
    (emf,) = [d for d in documents if "_aws" in d and RECORD_METRIC in d]
    assert emf[RECORD_METRIC] == [1.0]


def test_a_call_the_http_client_cannot_build_is_refused_not_raised() -> None:
    # Given: the adapter's own send, below any length check the planner may make
    cdn = ScriptedCdn()
    (settings,) = config_from(FAULT_CONFIG).providers
    provider = FastlyProvider(settings, {"token": Secret(FASTLY_TOKEN)}, cdn.client())
    tally.hostile("unexpected", 2)
    # When / Then: a URL past httpx's limit, and a header value that is not ASCII, are permanent refusals
    with pytest.raises(RejectedError, match="InvalidURL"):
        provider.send(ApiCall("POST", "service/S/purge/" + "k" * 70_000))
    with pytest.raises(RejectedError, match="UnicodeEncodeError"):
        provider.send(ApiCall("POST", "purge/www.example.com/a", headers={"X-Note": "café"}))
    assert cdn.calls == []
