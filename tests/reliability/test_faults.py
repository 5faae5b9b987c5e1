"""Faults on the real stack: a CDN that throttles, errors, times out, resets or crawls; a Lambda that runs
out of time or dies mid-batch; a poison record; a dead-letter queue that cannot be reached.

For each: no change lost (purged at every provider, or dead-lettered with its reason), no duplicate
call, a log line naming the fault, and a metric that moved.
"""

from __future__ import annotations

import io
from typing import Any, cast

import pytest
from reliability import tally
from reliability.support import (
    Witness,
    assert_exactly,
    dead_letter_reasons,
    purged_entries,
    send,
    source,
    unique,
)

from cdnpurge.cli.main import main as cli
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, ProviderWrapper, PurgeResult
from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope
from cdnpurge_local.fakecdn.server import Fault
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-faults")]
BUCKET = "cdnpurge-rel-faults"


def service(deployment: Deployment) -> PurgeService:
    return cast(PurgeService, deployment.app.service())


# name -> (fault, the error class the log line names, the per-provider metric that must move, calls the CDN
# may have executed without answering)
TRANSIENT = {
    "429 throttled": (Fault(status=429), "ThrottledError", "Throttles", 0),
    "500 server error": (Fault(status=500), "UnavailableError", "Retries", 0),
    "503 unavailable": (Fault(status=503), "UnavailableError", "Retries", 0),
    "504 gateway timeout": (Fault(status=504), "UnavailableError", "Retries", 0),
    "timeout (no answer within 1 s)": (Fault(delay=1.3), "UnavailableError", "Retries", 1),
    "connection reset": (Fault(drop=True), "UnavailableError", "Retries", 0),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_transient_provider_fault_is_retried_once_and_nothing_is_lost(
    deployment: Deployment, witness: Witness, name: str
) -> None:
    # Given: both CDNs fail the first attempt
    template, error, metric, unanswered = TRANSIENT[name]
    for provider in ("fastly", "medianova"):
        deployment.cdn.inject(provider, Fault(status=template.status, delay=template.delay, drop=template.drop))
    tally.add(faults=2)
    path = f"/{unique('fault')}.html"
    send(deployment, s3_notification(s3_record(BUCKET, path.lstrip("/"))))
    # When
    (invocation,) = source(deployment).drain()
    # Then: purged within the same invocation by the retry; a call that got no answer may have been
    # executed by the CDN, so it is the only one allowed to repeat
    assert invocation.failed == ()
    assert_exactly(deployment, [path], resent=2 * unanswered)
    tally.add(resent=2 * unanswered)
    # And: one log line per failed attempt naming the error, and the metric moved
    attempts = witness.logs.messages("provider attempt failed")
    assert sorted(r.__dict__["provider"] for r in attempts) == ["fastly", "medianova"]
    assert all(r.__dict__["error"] == error for r in attempts)
    if template.status:
        assert all(r.__dict__["status"] == template.status for r in attempts)
    emitted = witness.metrics()
    assert emitted[(metric, "fastly")] >= 1 and emitted[(metric, "medianova")] >= 1


def test_slow_responses_within_the_timeout_are_simply_waited_for(deployment: Deployment, witness: Witness) -> None:
    deployment.cdn.inject("fastly", Fault(delay=0.6))
    deployment.cdn.inject("medianova", Fault(delay=0.6))
    tally.add(faults=2)
    path = f"/{unique('slow')}.html"
    send(deployment, s3_notification(s3_record(BUCKET, path.lstrip("/"))))
    (invocation,) = source(deployment).drain()
    assert invocation.failed == ()
    assert_exactly(deployment, [path])
    assert not witness.logs.messages("provider attempt failed")
    assert len(witness.logs.messages("purge accepted")) == 2
    # the slowness is measured: each provider's slowest request, and the change's age when purged
    emitted = witness.metrics()
    assert emitted[("RequestSeconds", "fastly")] >= 0.6 and emitted[("RequestSeconds", "medianova")] >= 0.6
    assert emitted[("ChangeToPurgeSeconds", "fastly")] >= 0.6


REFUSAL_METRICS = {400: "ProviderRejected", 401: "ProviderAuthFailed", 404: "ProviderNotFound"}


@pytest.mark.parametrize(("status", "error"), [(400, "RejectedError"), (401, "AuthError"), (404, "NotFoundError")])
def test_a_refusal_is_dead_lettered_at_once_with_its_reason(
    deployment: Deployment, witness: Witness, status: int, error: str
) -> None:
    # Given: medianova refuses the request (retrying the same call cannot help)
    deployment.cdn.inject("medianova", Fault(status=status))
    tally.add(faults=1)
    path = f"/{unique('refused')}.html"
    body = sns_envelope({"paths": [path]})
    send(deployment, body)
    # When
    invocations = source(deployment).drain()
    # Then: one invocation, one attempt; the record is in the DLQ with the reason, not redelivered
    assert len(invocations) == 1 and invocations[0].failed == ()
    assert len(deployment.cdn.received_by("medianova")) == 1
    (dead,) = deployment.dead_letters()
    witness.see(dead)
    attributes = dead["MessageAttributes"]
    assert attributes["cdnpurge-failure"]["StringValue"] == "permanent"
    assert f"medianova: failed: injected {status}" in attributes["cdnpurge-error"]["StringValue"]
    assert attributes["cdnpurge-receive-count"]["StringValue"] == "1"
    # fastly still purged it: the change is done there, and a redrive will call medianova only
    assert deployment.cdn.purged("fastly") == [purged_entries(path)["fastly"]]
    tally.add(changes=1)
    (logged,) = witness.logs.messages("record dead-lettered")
    assert logged.__dict__["failure"] == "permanent"
    assert witness.logs.messages("provider attempt failed")[0].__dict__["error"] == error
    emitted = witness.metrics()
    assert emitted[("DeadLettered", None)] == 1
    assert emitted[(REFUSAL_METRICS[status], "medianova")] == 1


def test_a_poison_record_fails_alone_and_goes_to_the_dlq_with_its_reason(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: a malformed message next to a good one
    path = f"/{unique('good')}.html"
    send(deployment, "{this is not json", sns_envelope({"paths": [path]}))
    tally.add(bad_inputs=1)
    # When
    invocations = source(deployment).drain()
    # Then: one invocation; the good record purged, the poison dead-lettered with the parser's reason
    assert len(invocations) == 1 and invocations[0].failed == () and invocations[0].deleted == 2
    assert_exactly(deployment, [path])
    reasons = dead_letter_reasons(deployment.dead_letters())
    assert list(reasons) == ["{this is not json"]
    assert "body is not JSON: Expecting property name enclosed in double quotes" in reasons["{this is not json"]
    assert witness.logs.messages("record dead-lettered")
    emitted = witness.metrics()
    assert emitted[("DecodeErrors", None)] == 1 and emitted[("DeadLettered", None)] == 1


def test_retries_exhausted_go_to_the_dlq_with_the_reason_and_a_redrive_completes_them(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: medianova is down for good; each invocation has one second of purge budget
    deployment.cdn.inject("medianova", Fault(status=503, count=10_000))
    tally.add(faults=1)
    path = f"/{unique('exhausted')}.html"
    send(deployment, s3_notification(s3_record(BUCKET, path.lstrip("/"))))
    poller = source(deployment, timeout_seconds=12.0)  # 12 - 10 - 1 (provider timeout) = 1 s of purge budget
    # When: SQS delivers it maxReceiveCount (5) times
    invocations = [poller.poll_once() for _ in range(5)]
    # Then: four redeliveries, and on the fifth receive the handler dead-letters it with its reason
    assert [len(i.failed) if i else None for i in invocations] == [1, 1, 1, 1, 0]
    assert poller.poll_once() is None
    (dead,) = deployment.dead_letters(remove=False)
    witness.see(dead)
    attributes = dead["MessageAttributes"]
    assert attributes["cdnpurge-failure"]["StringValue"] == "retries-exhausted"
    assert attributes["cdnpurge-receive-count"]["StringValue"] == "5"
    reason = attributes["cdnpurge-error"]["StringValue"]
    # the last receive either tried (and got the 503) or found no time left to try
    assert reason.startswith("medianova: ") and ("injected 503" in reason or "deferred: out of time" in reason)
    assert deployment.cdn.purged("fastly") == [purged_entries(path)["fastly"]]  # once, on the first receive
    # When: medianova recovers and the DLQ is redriven
    deployment.cdn.reset()
    resources, out = deployment.stack.resources, io.StringIO()
    argv = ["redrive", "--dlq-url", resources.dead_letter_queue_url, "--queue-url", resources.queue_url]
    assert cli([*argv, "--wait-seconds", "0"], out=out, sqs=deployment.stack.client("sqs")) == 0
    witness.see(out.getvalue())
    assert "done: 1 message(s) moved back to the queue, 0 failed" in out.getvalue()
    poller.drain()
    # Then: only medianova is called; the change is now purged everywhere, each provider once
    assert deployment.cdn.received_by("fastly") == []
    assert deployment.cdn.purged("medianova") == [purged_entries(path)["medianova"]]
    tally.add(changes=1)
    emitted = witness.metrics()
    assert emitted[("DeadLettered", None)] == 1


def test_out_of_time_mid_batch_defers_the_rest_and_the_redelivery_finishes_it(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: fastly answers slowly (0.5 s a call, one URL per call), the Lambda has 2 s of budget, and there are
    # more calls than fit in it even with a provider's calls in flight at once (at most 8: 5 rounds of 0.5 s)
    paths = [f"/{unique('late')}.html" for _ in range(40)]
    deployment.cdn.inject("fastly", Fault(delay=0.5, count=40))
    tally.add(faults=1)
    send(deployment, *(s3_notification(s3_record(BUCKET, p.lstrip("/"))) for p in paths))
    poller = source(deployment, timeout_seconds=13.0)  # 13 - 10 - 1 (provider timeout) = 2 s of purge budget
    # When
    first = poller.poll_once()
    poller.drain()
    # Then: some records were deferred (not dropped, not purged blindly) and later purged exactly once
    assert first is not None and 0 < len(first.failed) < len(paths)
    assert_exactly(deployment, paths)
    deferred = [r for r in witness.logs.messages("purge failed") if r.__dict__["deferred"]]
    assert deferred
    assert witness.metrics()[("Deferred", "fastly")] >= 1


class LambdaKilled(BaseException):
    """Stands for the runtime stopping the function: raised from inside a provider call. Not an `Exception`:
    the fault boundaries (`cdnpurge.core.boundary`) contain every exception of a record or request, so only what
    stops the process itself still ends a batch."""


class DiesOnCall(ProviderWrapper):
    """Wraps a provider; the `die_on`-th call raises `LambdaKilled` instead of reaching the CDN."""

    def __init__(self, inner: Provider, die_on: int) -> None:
        super().__init__(inner)
        self.die_on, self.calls = die_on, 0

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.calls += 1
        if self.calls == self.die_on:
            raise LambdaKilled("the function stopped here")
        return self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)


def test_a_batch_that_dies_mid_way_repeats_only_what_was_not_done(deployment: Deployment, witness: Witness) -> None:
    # Given: six changes; the handler dies on its third fastly call (two are done by then)
    paths = [f"/{unique('killed')}.html" for _ in range(6)]
    send(deployment, *(s3_notification(s3_record(BUCKET, p.lstrip("/"))) for p in paths))
    providers = cast(dict[str, Any], service(deployment).providers)
    original = providers["fastly"]
    providers["fastly"] = DiesOnCall(original, die_on=3)
    tally.add(faults=1)
    poller = source(deployment)
    try:
        # When
        died = poller.poll_once()
    finally:
        providers["fastly"] = original
    poller.drain()
    # Then: the whole batch came back; the two finished purges were not repeated
    assert died is not None and isinstance(died.error, LambdaKilled) and died.deleted == 0
    witness.see(repr(died.error))
    assert_exactly(deployment, paths)
    # An exception that ends the invocation is logged with its cause and counted before Lambda sees it
    (aborted,) = witness.logs.messages("batch aborted")
    assert aborted.exc_info is not None and aborted.exc_info[0] is LambdaKilled
    assert witness.metrics()[("BatchAborted", None)] == 1


def test_an_unreachable_dlq_leaves_the_record_to_sqs_never_dropped(deployment: Deployment, witness: Witness) -> None:
    # Given: the dead-letter send fails (queue gone)
    running = service(deployment)
    saved = running.queues
    running.queues = Queues(
        dead_letter_url=saved.dead_letter_url + "-missing" if saved.dead_letter_url else None,
        purge_url=saved.purge_url,
        max_receive_count=saved.max_receive_count,
    )
    send(deployment, "not json either")
    tally.add(bad_inputs=1, faults=1)
    try:
        # When
        first = source(deployment).poll_once()
    finally:
        running.queues = saved
    # Then: the record stays in batchItemFailures (SQS's own redrive is the fallback), the failure logged
    assert first is not None and len(first.failed) == 1
    assert witness.logs.messages("dead-letter send failed")
    assert witness.metrics()[("DeadLetterSendFailed", None)] == 1
    # and with the DLQ back, the next receive dead-letters it with its reason
    source(deployment).drain()
    (dead,) = deployment.dead_letters()
    assert "not JSON" in dead["MessageAttributes"]["cdnpurge-error"]["StringValue"]


def test_redrive_lists_with_reasons_then_moves_back_without_our_attributes(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: three poison messages dead-lettered by the handler, one carrying an attribute of its own
    sqs, resources = deployment.stack.client("sqs"), deployment.stack.resources
    trace: Any = {"trace": {"DataType": "String", "StringValue": "abc"}}
    sqs.send_message(QueueUrl=resources.queue_url, MessageBody="{bad 1", MessageAttributes=trace)
    send(deployment, "{bad 2", "{bad 3")
    tally.add(bad_inputs=3)
    source(deployment).drain()
    argv = ["redrive", "--dlq-url", resources.dead_letter_queue_url, "--queue-url", resources.queue_url]
    # When: a dry run
    dry = io.StringIO()
    assert cli([*argv, "--dry-run", "--wait-seconds", "0"], out=dry, sqs=sqs) == 0
    # Then: each listed with its reason, nothing moved
    assert dry.getvalue().count("[permanent]: record ") == 3 and "body is not JSON" in dry.getvalue()
    assert deployment.queue_depth(dead_letter=True) == 3 and deployment.queue_depth() == 0
    # When: two are moved back
    moved = io.StringIO()
    assert cli([*argv, "--max", "2", "--wait-seconds", "0"], out=moved, sqs=sqs) == 0
    witness.see(dry.getvalue(), moved.getvalue())
    # Then: they are on the queue without the cdnpurge-* attributes, their own attributes kept
    assert deployment.queue_depth(dead_letter=True) == 1 and deployment.queue_depth() == 2
    back = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    moved_back = {message["Body"]: set(message.get("MessageAttributes", {})) for message in back["Messages"]}
    (left,) = deployment.dead_letters(remove=False)
    assert len(moved_back) == 2 and left["Body"] not in moved_back
    assert all(not any(name.startswith("cdnpurge-") for name in names) for names in moved_back.values())
    if "{bad 1" in moved_back:
        assert moved_back["{bad 1"] == {"trace"}
    else:
        assert {"trace", "cdnpurge-error"} <= set(left["MessageAttributes"])
