"""After the batch, one shape: what follows the purges is a list of steps of one kind.

Writing the purge trail, running and scheduling verification checks, dead-lettering, returning records when
their retry is due and scheduling re-purges each used to be wired by hand in the service, each re-reading the
event and each remembering (or not) the deadline and its own failures. Here:

- the event's records are decoded once (`AfterBatch`: the SQS records by id, the check messages) and every
  step reads them from there;
- every step is an `AfterBatchStep`: it runs with the batch and the deadline its calls must end by
  (`cdnpurge.runtime.bounded` holds every call to it), and says what its result is when it fails;
- `AfterBatchStep.run` is the step's fault boundary: whatever the step raises, running out of time
  included, becomes that step's own failed result (reported in the batch report, logged and counted), never
  an aborted batch and never a skipped later step. Each failed result errs on the side of redelivery: a
  check message whose step failed is returned to SQS, a record not dead-lettered stays in `batchItemFailures`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events.verify import VerifyCheck
from cdnpurge.runtime.deadletter import sqs_records
from cdnpurge.runtime.report import BatchRun

T = TypeVar("T")


class AfterBatch(msgspec.Struct, frozen=True):
    """What every step after the batch reads: the pipeline's run and the event, decoded once."""

    run: BatchRun
    records: Mapping[str, Mapping[str, Any]]  # the event's SQS records by message id
    checks: tuple[tuple[str, VerifyCheck], ...]  # (message id, check): the batch's checks, validated when decoded

    @classmethod
    def of(cls, event: Mapping[str, Any], run: BatchRun) -> AfterBatch:
        return cls(run, sqs_records(event), run.decoded.checks)


class AfterBatchStep(msgspec.Struct, Generic[T], frozen=True):
    """One step after the batch: `work` does it before the deadline; `failed` is its result when it raised
    (given why, redacted): what it could not do, in the step's own report type."""

    name: str
    work: Callable[[AfterBatch, Deadline], T]
    failed: Callable[[AfterBatch, str], T]

    def run(self, batch: AfterBatch, deadline: Deadline, redact: Callable[[str], str]) -> T:
        try:
            return self.work(batch, deadline)
        except Exception as exc:  # the step's fault boundary: see the module docstring
            return self.failed(batch, redact(f"{self.name}: {describe_error(exc)}"))
