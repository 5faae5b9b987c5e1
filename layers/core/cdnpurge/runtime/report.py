"""The batch report: everything that happened to one batch, for the response, logs, metrics and the demo.

Built in two steps, each once and final: `BatchRun` is what decode -> translate -> claim -> plan ->
execute -> settle did (the pipeline builds it, with every failed SQS record classified), and `BatchReport`
adds what the SQS side did with it (dead-lettering, re-purge scheduling), what verification did (checks
run and scheduled; a check record that could not be run or rescheduled is returned for redelivery) and
the purge trail's write. Nothing is filled in later.

A record is reported in `batchItemFailures` if any of its changes is not yet purged at every provider it
is owed to (failed, deferred for lack of time, held by a concurrent invocation, not claimable because the
idempotency store is down, or not expressible by a provider), or if it could not be decoded at all, and
it was not dead-lettered. Each failed record is classified: *permanent* when every reason is one a retry
cannot change (malformed record, bad key or host, a target no provider can express, a provider refusing
the request or the credentials), *transient* otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import msgspec

from cdnpurge.core.cost import PathBill
from cdnpurge.core.events import Decoded
from cdnpurge.core.models import Plan
from cdnpurge.core.translate import Translation
from cdnpurge.runtime.coalesce import CoalesceReport
from cdnpurge.runtime.continuation import Continuations
from cdnpurge.runtime.deadletter import DeadLettering
from cdnpurge.runtime.execute import Outcome
from cdnpurge.runtime.ledger import LedgerOperation, Pair
from cdnpurge.runtime.repurge import RepurgeScheduling
from cdnpurge.runtime.settle import LedgerFailure
from cdnpurge.runtime.trail import TrailWriting
from cdnpurge.runtime.verification.report import VerificationReport
from cdnpurge.runtime.visibility import VisibilityChanges

if TYPE_CHECKING:
    # Only a type: importing it at run time loads Powertools' whole batch processor on every cold start.
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse


class RecordFailures(msgspec.Struct, frozen=True):
    """Which SQS records (source ids) failed, why, and which of them no retry can fix."""

    sources: tuple[str, ...] = ()
    reasons: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)  # source id -> why it failed
    permanent: frozenset[str] = frozenset()
    # source id -> seconds until its retry is due, for records that failed only by throttles and deferrals
    # that said when (`Outcome.retry_in`): they are made visible again then (`cdnpurge.runtime.visibility`)
    retry_in: Mapping[str, float] = msgspec.field(default_factory=dict)
    # failed (among other reasons, perhaps) by an exception no stage expected (`cdnpurge.core.boundary`)
    unexpected: frozenset[str] = frozenset()
    # failed, yet moved forward by this receive (some of their targets purged): continued on their last
    # allowed receive instead of dead-lettered (`cdnpurge.runtime.continuation`)
    progressing: frozenset[str] = frozenset()


class BatchRun(msgspec.Struct, frozen=True):
    """What the pipeline's stages did to one batch."""

    decoded: Decoded
    translation: Translation
    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    owed: tuple[Pair, ...] = ()  # every (provider, change) the batch's changes are owed
    completed: tuple[Pair, ...] = ()  # purged by this invocation and recorded (or attempted to be) as done
    duplicates: tuple[Pair, ...] = ()  # already purged within the idempotency window: skipped
    busy: tuple[Pair, ...] = ()  # held by a concurrent invocation: left for redelivery
    unavailable: tuple[Pair, ...] = ()  # not claimable (store down): not purged, left for redelivery
    ledger_failures: tuple[LedgerFailure, ...] = ()
    bill: PathBill | None = None  # what the plan bills at per-path-billed providers (CloudFront)
    billed_paths: Mapping[str, int] = msgspec.field(default_factory=dict)  # accepted billed items per distribution
    billing_failures: tuple[str, ...] = ()  # the month's path counters could not be read or added to
    coalescing: CoalesceReport = msgspec.field(default_factory=CoalesceReport)  # shared targets left to windows
    failures: RecordFailures = msgspec.field(default_factory=RecordFailures)


class ConfigChange(msgspec.Struct, frozen=True):
    """What a batch's configuration check found (`service.ConfigReload`): a new document applied, or one
    refused and why (the previous one keeps running)."""

    reloaded: bool = False
    problem: str | None = None


class BatchReport(msgspec.Struct, frozen=True):
    """A batch's run and what the SQS side did with its failed records and purged changes."""

    run: BatchRun
    dead_letters: DeadLettering = msgspec.field(default_factory=DeadLettering)
    repurge: RepurgeScheduling = msgspec.field(default_factory=RepurgeScheduling)
    trail: TrailWriting = msgspec.field(default_factory=TrailWriting)  # the purge trail's write (never fails a record)
    verification: VerificationReport = msgspec.field(default_factory=VerificationReport)
    visibility: VisibilityChanges = msgspec.field(default_factory=VisibilityChanges)
    config_change: ConfigChange = msgspec.field(default_factory=ConfigChange)
    continuations: Continuations = msgspec.field(default_factory=Continuations)  # records sent again as new messages

    def response(self) -> PartialItemFailureResponse:
        moved = {*self.dead_letters.moved, *self.continuations.continued}
        failed = [source for source in self.run.failures.sources if source not in moved]
        failed += [source for source in self.verification.failed_sources if source not in failed]
        return {"batchItemFailures": [{"itemIdentifier": source} for source in failed]}

    def summary(self) -> dict[str, int]:
        run = self.run
        return {
            "changes": len(run.decoded.changes),
            "decode_errors": len(run.decoded.errors),
            "ignored": len(run.decoded.ignored),
            "requests": len(run.outcomes),
            "targets": sum(len(o.request.targets) for o in run.outcomes),
            "purged_requests": sum(1 for o in run.outcomes if o.ok),
            "failed_requests": sum(1 for o in run.outcomes if not o.ok),
            "duplicates_skipped": len(run.duplicates),
            "busy_elsewhere": len(run.busy),
            "ledger_unavailable": len(run.unavailable),
            "failed_records": len(run.failures.sources),
            "failed_unexpectedly": len(run.failures.unexpected),
            "dead_lettered": len(self.dead_letters.moved),
            "continued": len(self.continuations.continued),
            "repurge_scheduled": len(self.repurge.scheduled),
            "trail_written": self.trail.written,
            "trail_write_failed": self.trail.failed,
            "verification_checks_scheduled": sum(t.checks_scheduled for t in self.verification.tallies.values()),
            "verification_failed": sum(t.failed for t in self.verification.tallies.values()),
        }


def classify_failures(
    *,
    decoded: Decoded,
    translation: Translation,
    plan: Plan,
    outcomes: tuple[Outcome, ...],
    busy: tuple[Pair, ...],
    unavailable: tuple[Pair, ...],
    ledger_failures: tuple[LedgerFailure, ...],
    redact: Callable[[str], str],
) -> RecordFailures:
    """Every failed SQS record with its (redacted) reasons, and whether any of them a retry could change.

    A failure of a record's own content (decoding, translating) is that record's. A failure of a change
    (planning, purging, claiming) is every record's carrying that change id: records that share one
    (a publisher reusing its `id`, the same S3 operation seen twice) were claimed, planned and settled as
    one change, so they share its fate, and none is acknowledged while its twin goes back unpurged.
    """
    sources_of: dict[str, list[str]] = defaultdict(list)
    for change in decoded.changes:
        sources_of[change.id].append(change.source_id)
    found: _Reasons = defaultdict(list)
    due: dict[str, list[float]] = defaultdict(list)  # the retry times of each source's timed failures
    surprised: set[str] = set()

    def fail(sources: Iterable[str], message: str, retryable: bool, unexpected: bool = False) -> None:
        for source in sources:
            found[source].append((message, retryable))
            if unexpected:
                surprised.add(source)

    for decode_error in decoded.errors:
        fail((decode_error.source_id,), decode_error.message, False, decode_error.unexpected)
    for translate_error in translation.errors:
        fail((translate_error.source_id,), translate_error.message, False, translate_error.unexpected)
    for plan_error in plan.errors:
        for change_id in plan_error.change_ids:
            fail(sources_of[change_id], f"{plan_error.provider}: {plan_error.message}", False, plan_error.unexpected)
    for outcome in outcomes:
        if outcome.ok:
            continue
        error = outcome.error
        retryable = outcome.deferred or error is None or error.retryable
        why = "deferred: out of time" if outcome.deferred else "failed"
        detail = f"{outcome.request.provider}: {why}: {error.message if error else ''}".rstrip(": ")
        for change_id in outcome.request.change_ids:
            fail(sources_of[change_id], detail, retryable, error is not None and error.unexpected)
            if outcome.retry_in is not None:
                for source in sources_of[change_id]:
                    due[source].append(outcome.retry_in)
    for provider, change_id in busy:
        fail(sources_of[change_id], f"{provider}: in progress in another invocation", True)
    causes = {
        pair: failure.cause
        for failure in ledger_failures
        if failure.operation is LedgerOperation.CLAIM
        for pair in failure.pairs
    }
    for pair in unavailable:
        provider, change_id = pair
        cause = causes.get(pair, "no answer")
        fail(sources_of[change_id], f"{provider}: not purged: idempotency store unavailable ({cause})", True)
    return RecordFailures(
        sources=tuple(sorted(found)),
        reasons={source: tuple(map(redact, dict.fromkeys(m for m, _ in why))) for source, why in found.items()},
        permanent=frozenset(source for source, why in found.items() if not any(r for _, r in why)),
        # every failure of the source said when (one entry per change and failure in both)
        retry_in={source: max(times) for source, times in due.items() if len(times) == len(found[source])},
        unexpected=frozenset(surprised),
    )


# (message, retryable) per failed source
_Reasons = dict[str, list[tuple[str, bool]]]
