"""The pipeline, end to end: decode -> translate -> claim -> plan -> execute -> settle.

`run_batch` is everything the Lambda handler, the CLI and the demo share. Its result maps every outcome
back to the SQS records it came from: a record is reported in `batchItemFailures` if any of its changes
is not yet purged at every provider it is owed to (failed, deferred for lack of time, held by a
concurrent invocation, not claimable because the idempotency store is down, or not expressible by a
provider), or if it could not be decoded at all. Everything else is acknowledged, so one bad record
never sinks its batch.

Each failed record is also classified: *permanent* when every reason is one a retry cannot change
(malformed record, bad key or host, a target no provider can express, a provider refusing the request
or the credentials), *transient* otherwise. The service dead-letters permanent failures at once, with
their reasons, instead of letting SQS retry them five times.

Settling happens as requests finish, not at the end of the batch: a (provider, change) pair is marked
complete as soon as every request serving it succeeded (within `COMPLETION_LINGER_SECONDS`). A Lambda
killed mid-batch therefore leaves only the pairs still in flight, or just purged, to be purged again on
redelivery.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cdnpurge.config import Config
from cdnpurge.events import REPURGE_SUFFIX, Decoded, decode_event
from cdnpurge.execute import Executor, Outcome
from cdnpurge.ledger import BATCH_WRITE_ITEMS, Claim, Ledger, LedgerUnavailableError, Pair, describe_error
from cdnpurge.models import Change, Plan, PurgeRequest, RoutedTarget
from cdnpurge.plan import plan, router
from cdnpurge.providers.spec import ProviderSpec
from cdnpurge.rules import Translation, translate

if TYPE_CHECKING:
    # Only a type: importing it at run time loads Powertools' whole batch processor on every cold start.
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

__all__ = ["BatchReport", "Pair", "StoreFailure", "preview", "request_token", "run_batch"]

PURGED: dict[str, Any] = {"purged": True}  # the result stored with a completed (provider, change)
# How long the completion writer waits for a full BatchWriteItem before writing fewer records.
COMPLETION_LINGER_SECONDS = 0.1


@dataclass(frozen=True)
class StoreFailure:
    """One idempotency-store operation that failed for some pairs (see `LedgerUnavailableError`)."""

    operation: str  # "claim" | "complete" | "release"
    pairs: tuple[Pair, ...]
    cause: str


@dataclass(frozen=True)
class BatchReport:
    """Everything that happened to one batch, for the response, logs, metrics and the demo."""

    decoded: Decoded
    translation: Translation
    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    owed: tuple[Pair, ...] = ()  # every (provider, change) the batch's changes are owed
    completed: tuple[Pair, ...] = ()  # purged by this invocation and recorded (or attempted to be) as done
    duplicates: tuple[Pair, ...] = ()  # already purged within the idempotency window: skipped
    busy: tuple[Pair, ...] = ()  # held by a concurrent invocation: left for redelivery
    unavailable: tuple[Pair, ...] = ()  # not claimable (store down): not purged, left for redelivery
    store_failures: tuple[StoreFailure, ...] = ()
    failed_sources: tuple[str, ...] = ()
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # source id -> why it failed
    permanent: frozenset[str] = frozenset()  # failed sources no retry can fix
    # Filled in by the service after the pipeline (SQS I/O):
    dead_lettered: Mapping[str, str] = field(default_factory=dict)  # source id -> why it went to the DLQ
    dead_letter_errors: tuple[str, ...] = ()
    repurge_scheduled: tuple[str, ...] = ()  # change ids a delayed second purge was enqueued for
    repurge_errors: tuple[str, ...] = ()

    def response(self) -> PartialItemFailureResponse:
        return {
            "batchItemFailures": [
                {"itemIdentifier": source} for source in self.failed_sources if source not in self.dead_lettered
            ]
        }

    def summary(self) -> dict[str, int]:
        return {
            "changes": len(self.decoded.changes),
            "decode_errors": len(self.decoded.errors),
            "ignored": len(self.decoded.ignored),
            "requests": len(self.outcomes),
            "targets": sum(len(o.request.targets) for o in self.outcomes),
            "purged_requests": sum(1 for o in self.outcomes if o.ok),
            "failed_requests": sum(1 for o in self.outcomes if not o.ok),
            "duplicates_skipped": len(self.duplicates),
            "busy_elsewhere": len(self.busy),
            "ledger_unavailable": len(self.unavailable),
            "failed_records": len(self.failed_sources),
            "dead_lettered": len(self.dead_lettered),
            "repurge_scheduled": len(self.repurge_scheduled),
        }

    def repurge_candidates(self) -> tuple[Change, ...]:
        """S3 changes now purged at every provider they are owed to, at least one of them by this batch.

        Re-purges themselves are never re-purged, and a change this batch only skipped as a duplicate
        already had its re-purge scheduled by the invocation that purged it.
        """
        owed_by_change: dict[str, set[Pair]] = defaultdict(set)
        for pair in self.owed:
            owed_by_change[pair[1]].add(pair)
        completed, settled = set(self.completed), set(self.completed) | set(self.duplicates)
        return tuple(
            change
            for change in self.decoded.changes
            if change.bucket is not None
            and not change.id.endswith(REPURGE_SUFFIX)
            and owed_by_change[change.id]
            and owed_by_change[change.id] <= settled
            and owed_by_change[change.id] & completed
        )


def request_token(request: PurgeRequest) -> str:
    """A stable idempotency token for one request (CloudFront's CallerReference, log correlation).

    Derived from content and the changes served, so the same request retried gets the same token and a
    provider that deduplicates on it (CloudFront) can never create a second job for it.
    """
    canonical = json.dumps(
        [
            request.provider,
            request.kind.value,
            list(request.targets),
            request.soft,
            sorted(request.change_ids),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def preview(
    event: Mapping[str, Any], config: Config, specs: Mapping[str, ProviderSpec]
) -> tuple[Decoded, Translation, Plan]:
    """decode -> translate -> plan with no ledger and no calls: what `cdnpurge plan` prints."""
    decoded = decode_event(event)
    translation = translate(decoded.changes, config)
    return decoded, translation, plan(translation.routed, specs)


def run_batch(
    event: Mapping[str, Any],
    *,
    config: Config,
    specs: Mapping[str, ProviderSpec],
    ledger: Ledger,
    executor: Executor,
    deadline: float,
    remaining_ms: Callable[[], int] | None = None,
) -> BatchReport:
    decoded = decode_event(event)
    translation = translate(decoded.changes, config)
    # Each target's providers, routed once: what is claimed is exactly what the planner will send.
    destinations = router(specs)
    routes = [(item, destinations(item.providers, item.target.kind)) for item in translation.routed]
    owed = sorted({(provider, item.change_id) for item, providers in routes for provider in providers})
    claims, store_failures = _claim(ledger, owed, remaining_ms() if remaining_ms else None)
    claimed = {pair for pair, state in claims.items() if state is Claim.CLAIMED}
    the_plan = plan(_restrict(routes, claimed), specs)

    settlement = _Settlement(claimed, the_plan, ledger)
    try:
        outcomes = _execute(the_plan.requests, executor, deadline, settlement.record)
    except BaseException:
        settlement.abandon()
        raise
    completed, store_failures_after = settlement.finish()

    def having(state: Claim) -> tuple[Pair, ...]:
        return tuple(sorted(pair for pair, value in claims.items() if value is state))

    report = BatchReport(
        decoded=decoded,
        translation=translation,
        plan=the_plan,
        outcomes=outcomes,
        owed=tuple(owed),
        completed=tuple(sorted(completed)),
        duplicates=having(Claim.DONE),
        busy=having(Claim.BUSY),
        unavailable=having(Claim.UNAVAILABLE),
        store_failures=(*store_failures, *store_failures_after),
    )
    failures = _failure_reasons(report, decoded.changes)
    return replace(
        report,
        failed_sources=tuple(sorted(failures)),
        reasons={source: tuple(dict.fromkeys(m for m, _ in found)) for source, found in failures.items()},
        permanent=frozenset(source for source, found in failures.items() if not any(r for _, r in found)),
    )


def _claim(
    ledger: Ledger, pairs: list[Pair], remaining_ms: int | None
) -> tuple[dict[Pair, Claim], tuple[StoreFailure, ...]]:
    """Claim every owed pair; whatever the store could not answer is UNAVAILABLE, never purged blindly."""
    if not pairs:
        return {}, ()
    try:
        return ledger.claim(pairs, remaining_ms), ()
    except Exception as exc:  # what the store did not answer (all of it, if unmapped) stays UNAVAILABLE
        answered = exc.claims if isinstance(exc, LedgerUnavailableError) else {}
        failure = _store_failure("claim", pairs, exc)
    claims = {pair: answered.get(pair, Claim.UNAVAILABLE) for pair in pairs}
    return claims, (failure,)


def _store_failure(operation: str, pairs: Iterable[Pair], error: Exception) -> StoreFailure:
    """The pairs an operation could not record: those the ledger names, else all it was given."""
    if isinstance(error, LedgerUnavailableError):
        return StoreFailure(operation, error.pairs, error.cause)
    return StoreFailure(operation, tuple(pairs), describe_error(error))


def _restrict(routes: list[tuple[RoutedTarget, tuple[str, ...]]], claimed: set[Pair]) -> list[RoutedTarget]:
    """Keep, for each routed target, only the providers whose (provider, change) we claimed."""
    kept = []
    for item, providers in routes:
        mine = frozenset(p for p in providers if (p, item.change_id) in claimed)
        if mine:
            kept.append(item._replace(providers=mine))
    return kept


def _execute(
    requests: tuple[PurgeRequest, ...],
    executor: Executor,
    deadline: float,
    on_outcome: Callable[[Outcome], None],
) -> tuple[Outcome, ...]:
    """Each provider's queue runs on its own thread, so one slow or throttled CDN never delays another."""
    by_provider: dict[str, list[PurgeRequest]] = defaultdict(list)
    for request in requests:
        by_provider[request.provider].append(request)

    def run_all(queue: list[PurgeRequest]) -> list[Outcome]:
        outcomes = []
        for request in queue:
            outcome = executor.run(request, deadline=deadline, idempotency_token=request_token(request))
            on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes

    with ThreadPoolExecutor(max(1, len(by_provider))) as pool:
        results = dict(zip(by_provider, pool.map(run_all, by_provider.values()), strict=True))
    order = {id(r): i for i, r in enumerate(requests)}
    flat = [outcome for outcomes in results.values() for outcome in outcomes]
    return tuple(sorted(flat, key=lambda o: order[id(o.request)]))


class _Settlement:
    """Marks each claimed pair complete as soon as every request serving it succeeded; releases the rest.

    A pair named by a plan error, or served by any failed or deferred request, is released at the end so
    that a retry may claim it again. Ledger failures are collected, never raised: a purge that happened
    stays acknowledged even if it could not be recorded.

    Completions are written beside the provider calls by one writer thread, so marking never delays a
    purge. The writer lingers briefly for a full `BatchWriteItem`, and whatever completes while a write
    is in flight goes into the next one, so a storm of one-target requests (Fastly URLs) is recorded 25
    records a call, not one round trip per purge.
    """

    def __init__(self, claimed: set[Pair], the_plan: Plan, ledger: Ledger) -> None:
        self._claimed = claimed
        self._ledger = ledger
        self._waiting: Counter[Pair] = Counter(
            pair
            for request in the_plan.requests
            for pair in ((request.provider, change) for change in request.change_ids)
            if pair in claimed
        )
        self._failed = {(e.provider, c) for e in the_plan.errors for c in e.change_ids} & claimed
        self._completed: set[Pair] = set()
        self._unwritten: list[Pair] = []  # completed, not yet handed to the ledger
        self._closing = False
        self._write_failures: list[StoreFailure] = []
        self._changed = threading.Condition()
        self._writer = threading.Thread(target=self._write_completions, name="ledger-complete", daemon=True)
        self._writer.start()

    def record(self, outcome: Outcome) -> None:
        provider = outcome.request.provider
        pairs = [(provider, change) for change in outcome.request.change_ids if (provider, change) in self._claimed]
        with self._changed:
            if not outcome.ok:
                self._failed.update(pairs)
                return
            ready = []
            for pair in pairs:
                self._waiting[pair] -= 1
                if self._waiting[pair] == 0 and pair not in self._failed:
                    ready.append(pair)
            self._completed.update(ready)
            if ready:
                self._unwritten.extend(ready)
                self._changed.notify()

    def _write_completions(self) -> None:
        while True:
            with self._changed:
                while not self._unwritten and not self._closing:
                    self._changed.wait()
                self._changed.wait_for(
                    lambda: self._closing or len(self._unwritten) >= BATCH_WRITE_ITEMS,
                    timeout=COMPLETION_LINGER_SECONDS,
                )
                batch, self._unwritten = self._unwritten, []
            if not batch:
                return  # closing, and everything is written
            try:
                self._ledger.complete(batch, PURGED)
            except Exception as exc:  # collected, never raised: see the class docstring
                self._write_failures.append(_store_failure("complete", batch, exc))

    def finish(self) -> tuple[set[Pair], list[StoreFailure]]:
        failures = self._wait_for_writes()
        # Anything claimed and neither completed nor failed (cannot happen with a consistent plan) is
        # released too: better purged again than never.
        release = self._claimed - self._completed
        failures.extend(self._release(release))
        return set(self._completed), failures

    def abandon(self) -> None:
        """The batch is dying (an unexpected error): release what is not done, best effort."""
        self._wait_for_writes()
        self._release(self._claimed - self._completed)

    def _wait_for_writes(self) -> list[StoreFailure]:
        """Wait for every completion write; their failures become one `StoreFailure` (one log line)."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._writer.join()
        failures = self._write_failures
        if not failures:
            return []
        pairs = sorted(pair for failure in failures for pair in failure.pairs)
        return [StoreFailure("complete", tuple(pairs), failures[0].cause)]

    def _release(self, pairs: Iterable[Pair]) -> list[StoreFailure]:
        pairs = sorted(pairs)
        if not pairs:
            return []
        try:
            self._ledger.release(pairs, RuntimeError("purge not completed"))
        except Exception as exc:  # collected, never raised: see the class docstring
            return [_store_failure("release", pairs, exc)]
        return []


# (message, retryable) per failed source
_Reasons = dict[str, list[tuple[str, bool]]]


def _failure_reasons(report: BatchReport, changes: tuple[Change, ...]) -> _Reasons:
    source_of = {change.id: change.source_id for change in changes}
    reasons: _Reasons = defaultdict(list)
    for decode_error in report.decoded.errors:
        reasons[decode_error.source_id].append((decode_error.message, False))
    for translate_error in report.translation.errors:
        reasons[translate_error.source_id].append((translate_error.message, False))
    for plan_error in report.plan.errors:
        for change_id in plan_error.change_ids:
            reasons[source_of[change_id]].append((f"{plan_error.provider}: {plan_error.message}", False))
    for outcome in report.outcomes:
        if outcome.ok:
            continue
        error = outcome.error
        retryable = outcome.deferred or error is None or error.retryable
        why = "deferred: out of time" if outcome.deferred else "failed"
        detail = f"{outcome.request.provider}: {why}: {error.message if error else ''}".rstrip(": ")
        for change_id in outcome.request.change_ids:
            reasons[source_of[change_id]].append((detail, retryable))
    for provider, change_id in report.busy:
        reasons[source_of[change_id]].append((f"{provider}: in progress in another invocation", True))
    causes = {
        pair: failure.cause
        for failure in report.store_failures
        if failure.operation == "claim"
        for pair in failure.pairs
    }
    for pair in report.unavailable:
        provider, change_id = pair
        cause = causes.get(pair, "no answer")
        reasons[source_of[change_id]].append((f"{provider}: not purged: idempotency store unavailable ({cause})", True))
    return dict(reasons)
