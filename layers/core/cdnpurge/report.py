"""The batch report: everything that happened to one batch, for the response, logs, metrics and the demo.

Built in two steps, each once and final: `BatchRun` is what decode -> translate -> claim -> plan ->
execute -> settle did (the pipeline builds it, with every failed SQS record classified), and `BatchReport`
adds what the SQS side did with it (dead-lettering, re-purge scheduling). Nothing is filled in later.

A record is reported in `batchItemFailures` if any of its changes is not yet purged at every provider it
is owed to (failed, deferred for lack of time, held by a concurrent invocation, not claimable because the
idempotency store is down, or not expressible by a provider), or if it could not be decoded at all, and
it was not dead-lettered. Each failed record is classified: *permanent* when every reason is one a retry
cannot change (malformed record, bad key or host, a target no provider can express, a provider refusing
the request or the credentials), *transient* otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdnpurge.cost import PathBill
from cdnpurge.deadletter import DeadLettering
from cdnpurge.events import Decoded
from cdnpurge.execute import Outcome
from cdnpurge.ledger import LedgerOperation, Pair
from cdnpurge.models import Plan
from cdnpurge.repurge import RepurgeScheduling
from cdnpurge.rules import Translation
from cdnpurge.settle import LedgerFailure

if TYPE_CHECKING:
    # Only a type: importing it at run time loads Powertools' whole batch processor on every cold start.
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse


@dataclass(frozen=True)
class RecordFailures:
    """Which SQS records (source ids) failed, why, and which of them no retry can fix."""

    sources: tuple[str, ...] = ()
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # source id -> why it failed
    permanent: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BatchRun:
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
    billed_paths: Mapping[str, int] = field(default_factory=dict)  # accepted billed items per distribution
    billing_failures: tuple[str, ...] = ()  # the month's path counters could not be read or added to
    failures: RecordFailures = field(default_factory=RecordFailures)


@dataclass(frozen=True)
class BatchReport:
    """A batch's run and what the SQS side did with its failed records and purged changes."""

    run: BatchRun
    dead_letters: DeadLettering = field(default_factory=DeadLettering)
    repurge: RepurgeScheduling = field(default_factory=RepurgeScheduling)

    def response(self) -> PartialItemFailureResponse:
        moved = self.dead_letters.moved
        return {
            "batchItemFailures": [
                {"itemIdentifier": source} for source in self.run.failures.sources if source not in moved
            ]
        }

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
            "dead_lettered": len(self.dead_letters.moved),
            "repurge_scheduled": len(self.repurge.scheduled),
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
    """Every failed SQS record with its (redacted) reasons, and whether any of them a retry could change."""
    source_of = {change.id: change.source_id for change in decoded.changes}
    found: _Reasons = defaultdict(list)
    for decode_error in decoded.errors:
        found[decode_error.source_id].append((decode_error.message, False))
    for translate_error in translation.errors:
        found[translate_error.source_id].append((translate_error.message, False))
    for plan_error in plan.errors:
        for change_id in plan_error.change_ids:
            found[source_of[change_id]].append((f"{plan_error.provider}: {plan_error.message}", False))
    for outcome in outcomes:
        if outcome.ok:
            continue
        error = outcome.error
        retryable = outcome.deferred or error is None or error.retryable
        why = "deferred: out of time" if outcome.deferred else "failed"
        detail = f"{outcome.request.provider}: {why}: {error.message if error else ''}".rstrip(": ")
        for change_id in outcome.request.change_ids:
            found[source_of[change_id]].append((detail, retryable))
    for provider, change_id in busy:
        found[source_of[change_id]].append((f"{provider}: in progress in another invocation", True))
    causes = {
        pair: failure.cause
        for failure in ledger_failures
        if failure.operation is LedgerOperation.CLAIM
        for pair in failure.pairs
    }
    for pair in unavailable:
        provider, change_id = pair
        cause = causes.get(pair, "no answer")
        found[source_of[change_id]].append((f"{provider}: not purged: idempotency store unavailable ({cause})", True))
    return RecordFailures(
        sources=tuple(sorted(found)),
        reasons={source: tuple(map(redact, dict.fromkeys(m for m, _ in why))) for source, why in found.items()},
        permanent=frozenset(source for source, why in found.items() if not any(r for _, r in why)),
    )


# (message, retryable) per failed source
_Reasons = dict[str, list[tuple[str, bool]]]
