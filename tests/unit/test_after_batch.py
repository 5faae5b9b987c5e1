"""After the batch, one shape: each step owns its failures; none aborts the batch or skips the steps after it.

A step that raises (a store refusing, a bug, running out of time) becomes that step's own reported result,
erring towards redelivery, and the steps after it still run on the event decoded once.
"""

from __future__ import annotations

from typing import Any

from helpers import FASTLY_TOKEN, MemoryLedger, RecordingSqs, SimulatedClock, fastly_config

from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.events.verify import CheckedChange, VerifyCheck, encode_check
from cdnpurge.core.models import Action
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.after_batch import AfterBatch, AfterBatchStep
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge_local.event_builders import sqs_event

DEAD_LETTERS = "https://sqs.example/dlq"


class BrokenTrail:
    """A trail whose write raises, as a store's unexpected failure would."""

    def record(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("trail table gone")


class OutOfTimeVerification:
    """Verification that runs out of time (its first call is refused)."""

    def handle(self, batch: AfterBatch, *, deadline: Deadline) -> None:
        raise OutOfTimeError("verification check: not started, out of time before the function's deadline")


def test_a_failing_step_is_reported_and_the_steps_after_it_still_run() -> None:
    # Given: a poison record (to be dead-lettered), a check message, a trail that raises and verification
    # that runs out of time
    clock = SimulatedClock()
    config = fastly_config()
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    sqs = RecordingSqs()
    service = PurgeService(
        config=config,
        providers=providers,
        ledger=MemoryLedger(),
        executor=Executor(providers, clock=clock, sleep=clock.sleep),
        queues=Queues(dead_letter_url=DEAD_LETTERS),
        trail=BrokenTrail(),  # type: ignore[arg-type]
        sqs_factory=lambda: sqs,
    )
    service.verification = OutOfTimeVerification()  # type: ignore[assignment]
    accepted = 1_700_000_000.0
    change = CheckedChange("s3:b/k@1", Action.CREATED, "b", "k", accepted, ("https://www.example.com/k",))
    check = encode_check(VerifyCheck(provider="fastly", accepted_at=accepted, changes=(change,)))
    event = sqs_event("{poison", check)
    # When
    report = service.handle(event, remaining_ms=lambda: 60_000)
    # Then: each failure is its step's own, named and counted
    assert report.trail.failed == 1 and report.trail.cause and "trail table gone" in report.trail.cause
    assert report.verification.errors and "out of time" in report.verification.errors[0]
    # And: the check message goes back to SQS (run again on redelivery), never acknowledged unrun
    assert report.verification.failed_sources == ["m1"]
    assert {"itemIdentifier": "m1"} in report.response()["batchItemFailures"]
    # And: the dead-letter step after them still ran
    assert set(report.dead_letters.moved) == {"m0"} and [s.queue for s in sqs.sent] == [DEAD_LETTERS]


def test_a_step_gets_the_event_decoded_once_and_its_deadline() -> None:
    # Given: a step that records what it was given
    seen: list[tuple[AfterBatch, Deadline]] = []
    step = AfterBatchStep("probe", lambda batch, deadline: seen.append((batch, deadline)), lambda _b, why: None)
    batch = AfterBatch(run=None, records={"m0": {"body": "x"}}, checks=())  # type: ignore[arg-type]
    deadline = Deadline.after(5)
    # When
    step.run(batch, deadline, str)
    # Then
    assert seen == [(batch, deadline)]
