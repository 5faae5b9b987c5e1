"""What one batch leaves in the logs and metrics: escalations are logged and counted, never silent."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Logger, Metrics

from cdnpurge.core.events import Decoded
from cdnpurge.core.models import Escalation, Plan, TargetKind
from cdnpurge.core.translate import Translation
from cdnpurge.runtime.observability import record
from cdnpurge.runtime.report import BatchReport, BatchRun
from cdnpurge.runtime.trail import TrailWriting
from cdnpurge.runtime.verification.report import Tally, VerificationReport


def test_an_escalation_is_logged_and_counted_per_provider(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: a batch whose plan turned 250 image paths into one prefix at Medianova
    escalation = Escalation(
        "medianova", TargetKind.PREFIX, ("/img/",), replaced=250, requests_before=3, requests_after=1
    )
    report = BatchReport(
        BatchRun(decoded=Decoded((), (), ()), translation=Translation((), (), ()), plan=Plan((), (), (escalation,)))
    )
    # When
    record(report, Logger(service="cdnpurge-test"), Metrics(namespace="cdnpurge-test", service="cdnpurge-test"))
    # Then: one structured warning naming it, and EMF counts under the provider dimension
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (logged,) = [d for d in documents if d.get("message") == "purge escalated"]
    assert logged["level"] == "WARNING"
    assert (logged["provider"], logged["kind"], logged["targets"], logged["replaced"]) == (
        "medianova",
        "prefix",
        ["/img/"],
        250,
    )
    assert (logged["requests_before"], logged["requests_after"]) == (3, 1)
    (emf,) = [d for d in documents if "_aws" in d and d.get("provider") == "medianova"]
    assert (emf["Escalations"], emf["EscalatedTargets"]) == ([1.0], [250.0])


def test_changes_no_rule_matched_are_logged_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: a batch whose two changes matched no rule (acknowledged: nothing asks for a purge)
    report = BatchReport(
        BatchRun(decoded=Decoded((), (), ()), translation=Translation((), (), ("s3:b/x@1", "s3:b/y@2")), plan=Plan(()))
    )
    metrics = Metrics(namespace="cdnpurge-test", service="cdnpurge-test")
    metrics.clear_metrics()  # Powertools keeps one metric set per process; start from an empty one
    # When
    record(report, Logger(service="cdnpurge-test-unmatched", level="INFO"), metrics)
    metrics.flush_metrics()
    # Then
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (logged,) = [d for d in documents if d.get("message") == "changes matched no rule"]
    assert (logged["changes"], logged["change_ids"]) == (2, ["s3:b/x@1", "s3:b/y@2"])
    (emf,) = [d for d in documents if "_aws" in d and "Unmatched" in d]
    assert emf["Unmatched"] == [2.0]


def test_a_trail_not_written_is_logged_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: a batch whose purge trail could not be written (the purges stand)
    report = BatchReport(
        BatchRun(decoded=Decoded((), (), ()), translation=Translation((), (), ()), plan=Plan(())),
        trail=TrailWriting(written=3, failed=4, cause="ResourceNotFoundException: no table"),
    )
    metrics = Metrics(namespace="cdnpurge-test", service="cdnpurge-test")
    metrics.clear_metrics()
    # When
    record(report, Logger(service="cdnpurge-test-trail", level="INFO"), metrics)
    metrics.flush_metrics()
    # Then
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (logged,) = [d for d in documents if d.get("message") == "purge trail not written"]
    assert (logged["items"], logged["written"], logged["cause"]) == (4, 3, "ResourceNotFoundException: no table")
    (emf,) = [d for d in documents if "_aws" in d and "TrailWriteFailed" in d]
    assert emf["TrailWriteFailed"] == [4.0]
    assert report.response() == {"batchItemFailures": []}


def test_verification_figures_are_metrics_per_provider_and_failures_a_batch_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given: a batch whose checks saw two Fastly changes fresh (after 4 s and 9 s), one URL stale and
    # purged again, a key no URL shows, and one change failed past its deadline
    verification = VerificationReport(
        tallies={
            "fastly": Tally(
                time_to_fresh=[4.0, 9.0],
                stale=1,
                repurged=1,
                unverifiable=1,
                failed=1,
                seen_stale=[("s3:b/a@1", "https://www.example.com/a", '"old"', '"new"')],
            )
        },
        failures=['still stale at https://www.example.com/a after 300 s: ETag "old", origin "new"'],
    )
    report = BatchReport(
        BatchRun(decoded=Decoded((), (), ()), translation=Translation((), (), ()), plan=Plan(())),
        verification=verification,
    )
    metrics = Metrics(namespace="cdnpurge-test", service="cdnpurge-test")
    metrics.clear_metrics()
    # When
    record(report, Logger(service="cdnpurge-test-verify", level="INFO"), metrics)
    metrics.flush_metrics()
    # Then
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (per_provider,) = [d for d in documents if "_aws" in d and d.get("provider") == "fastly"]
    assert per_provider["TimeToFresh"] == [4.0, 9.0]
    assert (per_provider["StaleAfterPurge"], per_provider["Repurged"]) == ([1.0], [1.0])
    assert (per_provider["Unverifiable"], per_provider["VerificationFailed"]) == ([1.0], [1.0])
    (total,) = [d for d in documents if "_aws" in d and "VerificationFailed" in d and "provider" not in d]
    assert total["VerificationFailed"] == [1.0]
    assert {d.get("message") for d in documents} >= {
        "edge still stale after the purge",
        "verification failed: dead-lettered",
        "verification",
    }
