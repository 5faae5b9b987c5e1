"""The webhook function's handler: one metric per request with the source (and a refusal's reason) as
dimensions, the intake's answer returned as is, and a deadline that keeps a margin before Lambda's timeout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdnpurge.core.deadline import Deadline
from cdnpurge.runtime.webhook.http import respond
from cdnpurge.runtime.webhook.intake import IntakeResult, Outcome
from cdnpurge_local.event_source import LocalLambdaContext
from cdnpurge_local.webhook_gateway import load_webhook_handler


class Intake:
    def __init__(self, result: IntakeResult) -> None:
        self.result = result
        self.deadlines: list[Deadline] = []

    def handle(self, event: dict[str, Any], deadline: Deadline) -> IntakeResult:
        self.deadlines.append(deadline)
        return self.result


def emf_documents(text: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


@pytest.mark.parametrize(
    ("result", "metric", "dimensions"),
    [
        (
            IntakeResult(respond(202, {"status": "accepted"}), Outcome.ACCEPTED, "cms", None, "pub:x"),
            "WebhookAccepted",
            {"service", "source"},
        ),
        (
            IntakeResult(respond(401, {"message": "unauthorized"}), Outcome.REJECTED, "unknown", "unknown_source"),
            "WebhookRejected",
            {"service", "source", "reason"},
        ),
    ],
    ids=["accepted", "rejected"],
)
def test_each_request_is_counted_per_source(
    result: IntakeResult,
    metric: str,
    dimensions: set[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CDNPurge")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "cdnpurge-webhook")
    app = load_webhook_handler()
    stub = Intake(result)
    monkeypatch.setattr(app, "intake", lambda: stub)
    context = LocalLambdaContext(timeout_seconds=20, clock=lambda: 0.0)
    # When
    response = app.lambda_handler({}, context)
    # Then
    assert response == result.response
    [document] = emf_documents(capsys.readouterr().out)
    [[directive]] = [document["_aws"]["CloudWatchMetrics"]]
    assert [m["Name"] for m in directive["Metrics"]] == [metric]
    assert set(directive["Dimensions"][0]) == dimensions
    assert document["source"] == result.source and document[metric] == [1.0]
    # The intake's deadline leaves the answer margin before Lambda's 20 s
    assert stub.deadlines[0].remaining() <= 20 - app.ANSWER_MARGIN_SECONDS
