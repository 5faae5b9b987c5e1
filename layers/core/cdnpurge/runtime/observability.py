"""Logs and metrics for one batch, in one place, from the pipeline's `BatchReport`.

One structured log line per provider request (correlation: the request token; the change ids it
serves), one per escalation (the planner purged more than asked, to need fewer calls), one per failed
provider attempt (`attempt_logger`), one per failed or dead-lettered record with
its reasons, one per idempotency-store failure naming the policy applied, and EMF metrics: batch totals
on the handler's `Metrics` object, per-provider counts and timings under a `provider` dimension.
Nothing here sees a credential: reports only carry targets, ids and provider messages, and provider
messages are redacted by the service before they get here.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from cdnpurge.core.boundary import RECORD_METRIC
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import ProviderError
from cdnpurge.runtime.execute import AttemptListener
from cdnpurge.runtime.ledger import LedgerOperation
from cdnpurge.runtime.meter import METER_UNAVAILABLE_METRIC
from cdnpurge.runtime.report import BatchReport

# What each idempotency-store failure means for the records, in the log line that reports it.
STORE_POLICY: Final = {
    LedgerOperation.CLAIM: "not purged (never purge without a claim); records returned to SQS for redelivery",
    LedgerOperation.COMPLETE: (
        "purged but not recorded as done; records acknowledged (a duplicate delivery may purge again)"
    ),
    LedgerOperation.RELEASE: "claims left in progress; they expire at this invocation's deadline, then retries proceed",
}


def attempt_logger(logger: Logger) -> AttemptListener:
    """An executor listener logging every failed provider attempt (429, 5xx, timeout, reset, refusal), with the
    request token that attempt sent (CloudFront's CallerReference: the content and each change's generation)."""

    def log(request: PurgeRequest, attempt: int, what: PurgeResult | ProviderError, token: str) -> None:
        if isinstance(what, ProviderError):
            logger.warning(
                "provider attempt failed",
                extra={
                    "provider": request.provider,
                    "kind": request.kind.value,
                    "targets": len(request.targets),
                    "attempt": attempt,
                    "error": type(what).__name__,
                    "status": what.status,
                    "retryable": what.retryable,
                    "provider_message": what.message,
                    "request_token": token,
                },
            )

    return log


def record(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """The batch's log lines, then its metrics (per batch, per provider, and verification's)."""
    summary = report.summary()
    _log_batch(report, logger, summary)
    _record_verification(report, logger, metrics)
    _record_visibility(report, logger, metrics)
    _record_bill(report, logger, metrics)
    _record_coalescing(report, logger, metrics)
    _emit_metrics(report, metrics, summary)


def _log_batch(report: BatchReport, logger: Logger, summary: dict[str, int]) -> None:
    for outcome in report.run.outcomes:
        request = outcome.request
        fields = {
            "provider": request.provider,
            "kind": request.kind.value,
            "targets": len(request.targets),
            "soft": request.soft,
            "attempts": outcome.attempts,
            "throttled": outcome.throttled,
            "request_token": outcome.token,
            "change_ids": sorted(request.change_ids)[:20],
        }
        if outcome.ok and outcome.result is not None:
            logger.info("purge accepted", extra={**fields, "provider_id": outcome.result.provider_id})
        else:
            error = outcome.error
            logger.error(
                "purge failed",
                extra={
                    **fields,
                    "deferred": outcome.deferred,
                    "error": type(error).__name__ if error else None,
                    "status": error.status if error else None,
                    "provider_message": error.message if error else None,
                },
            )
    for escalation in report.run.plan.escalations:
        logger.warning(
            "purge escalated",
            extra={
                "provider": escalation.provider,
                "kind": escalation.kind.value,
                "targets": list(escalation.targets)[:20],
                "replaced": escalation.replaced,
                "requests_before": escalation.requests_before,
                "requests_after": escalation.requests_after,
                "soft": escalation.soft,
            },
        )
    for failure in report.run.ledger_failures:
        logger.error(
            f"idempotency store unavailable during {failure.operation}",
            extra={
                "operation": failure.operation,
                "pairs": len(failure.pairs),
                "cause": failure.cause,
                "policy": STORE_POLICY.get(failure.operation, ""),
            },
        )
    for source, reasons in report.run.failures.reasons.items():
        if source in report.dead_letters.moved:
            logger.error(
                "record dead-lettered",
                extra={"source_id": source, "failure": report.dead_letters.moved[source], "reasons": list(reasons)},
            )
        else:
            permanent = source in report.run.failures.permanent
            logger.warning(
                "record not completed",
                extra={"source_id": source, "reasons": list(reasons), "permanent": permanent},
            )
    for source in sorted(report.run.failures.unexpected):
        # Beside the record's own line: a bug or an unmapped library error to fix, not bad input to correct.
        logger.error(
            "record failed unexpectedly",
            extra={"source_id": source, "reasons": list(report.run.failures.reasons.get(source, ()))},
        )
    for problem in report.dead_letters.errors:
        logger.error("dead-letter send failed; record left to SQS redrive", extra={"error": problem})
    if report.trail.failed:
        # The purges stand and the records are acknowledged; only `cdnpurge status` will not show them.
        logger.error(
            "purge trail not written",
            extra={"items": report.trail.failed, "written": report.trail.written, "cause": report.trail.cause},
        )
    if report.repurge.scheduled:
        logger.info("re-purge scheduled", extra={"changes": len(report.repurge.scheduled)})
    for problem in report.repurge.errors:
        logger.error("re-purge not scheduled (the first purge stands)", extra={"error": problem})
    for ignored in report.run.decoded.ignored:
        logger.info("record ignored", extra={"ignored": ignored})
    unmatched = report.run.translation.unmatched
    if unmatched:
        # Acknowledged (no rule asks for a purge), but said: a rule typo would otherwise purge nothing quietly.
        logger.info(
            "changes matched no rule",
            extra={
                "changes": len(report.run.translation.unmatched),
                "change_ids": list(report.run.translation.unmatched[:20]),
            },
        )
    logger.info("batch done", extra=summary)


def _emit_metrics(report: BatchReport, metrics: Metrics, summary: dict[str, int]) -> None:
    count = MetricUnit.Count
    metrics.add_metric(name="Changes", unit=count, value=summary["changes"])
    metrics.add_metric(name="DecodeErrors", unit=count, value=summary["decode_errors"])
    metrics.add_metric(name="Unmatched", unit=count, value=len(report.run.translation.unmatched))
    metrics.add_metric(name="FailedRecords", unit=count, value=summary["failed_records"])
    metrics.add_metric(name=RECORD_METRIC, unit=count, value=summary["failed_unexpectedly"])
    # The alarm in template.yaml watches this total (dimension: service only).
    metrics.add_metric(name="ProviderFailed", unit=count, value=summary["failed_requests"])
    metrics.add_metric(name="DeadLettered", unit=count, value=summary["dead_lettered"])
    metrics.add_metric(name="LedgerUnavailable", unit=count, value=summary["ledger_unavailable"])
    # Calls paced at the static share because the shared rate meter failed (alarmed in template.yaml).
    metrics.add_metric(name=METER_UNAVAILABLE_METRIC, unit=count, value=sum(o.unmetered for o in report.run.outcomes))
    store_writes_failed = sum(
        len(f.pairs) for f in report.run.ledger_failures if f.operation is not LedgerOperation.CLAIM
    )
    metrics.add_metric(name="LedgerWriteFailed", unit=count, value=store_writes_failed)
    if report.trail.written or report.trail.failed:
        metrics.add_metric(name="TrailWriteFailed", unit=count, value=report.trail.failed)
    if report.dead_letters.errors:
        metrics.add_metric(name="DeadLetterSendFailed", unit=count, value=len(report.dead_letters.errors))
    if report.repurge.scheduled or report.repurge.errors:
        metrics.add_metric(name="RepurgeScheduled", unit=count, value=summary["repurge_scheduled"])
        metrics.add_metric(name="RepurgeFailed", unit=count, value=len(report.repurge.errors))
    timings = _per_provider_seconds(report, now=time.time())
    for provider, counts in _per_provider(report).items():
        # One EMF document per provider: its counts under a `provider` dimension (Metrics allows one
        # dimension set per flush, so each provider gets its own ephemeral instance).
        per_provider = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
        per_provider.add_dimension(name="provider", value=provider)
        for name, value in counts.items():
            per_provider.add_metric(name=name, unit=count, value=value)
        for name, seconds in timings.get(provider, {}).items():
            per_provider.add_metric(name=name, unit=MetricUnit.Seconds, value=round(seconds, 3))
        checked = report.verification.tallies.get(provider)
        for seconds in checked.time_to_fresh if checked else ():
            # One value per change seen fresh (EMF keeps them all), so p50/p99 are per change, not per batch.
            per_provider.add_metric(name="TimeToFresh", unit=MetricUnit.Seconds, value=round(seconds, 3))
        per_provider.flush_metrics()


def _record_verification(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """One line per provider verified (its figures), one per check dead-lettered, one per send problem,
    and the batch total of changes that failed verification (per-provider figures go with the others)."""
    for reason in report.verification.failures:
        logger.error("verification failed: dead-lettered", extra={"reason": reason})
    for problem in report.verification.errors:
        logger.error("verification problem (the check stays with SQS or was not scheduled)", extra={"error": problem})
    for provider, tally in report.verification.tallies.items():
        for change_id, seconds, urls in tally.seen_fresh:
            logger.info(
                "edge fresh",
                extra={"provider": provider, "change_id": change_id, "time_to_fresh": round(seconds, 3), "urls": urls},
            )
        for change_id, url, served, origin in tally.seen_stale:
            logger.warning(
                "edge still stale after the purge",
                extra={"provider": provider, "change_id": change_id, "url": url, "served": served, "origin": origin},
            )
        logger.info(
            "verification",
            extra={
                "provider": provider,
                "fresh": len(tally.time_to_fresh),
                "stale_after_purge": tally.stale,
                "repurged": tally.repurged,
                "unverifiable": tally.unverifiable,
                "failed": tally.failed,
                "probes": tally.probes,
                "checks_scheduled": tally.checks_scheduled,
                "waiting_for_job": tally.waiting,
            },
        )
    if report.verification.tallies:
        # The alarm in template.yaml watches this total (dimension: service only).
        failed = sum(tally.failed for tally in report.verification.tallies.values())
        metrics.add_metric(name="VerificationFailed", unit=MetricUnit.Count, value=failed)


def _record_visibility(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """Returned records made visible when their retry is due, and the calls that failed (best effort); then
    the batch's configuration check."""
    _record_config_change(report, logger, metrics)
    changes = report.visibility
    if not (changes.changed or changes.errors):
        return
    if changes.changed:
        logger.info(
            "records return when their retry is due",
            extra={"visibility_seconds": dict(sorted(changes.changed.items())[:20])},
        )
    for problem in changes.errors:
        logger.error("visibility not changed; record returns after the queue's timeout", extra={"error": problem})
    metrics.add_metric(name="VisibilityChanged", unit=MetricUnit.Count, value=len(changes.changed))
    metrics.add_metric(name="VisibilityChangeFailed", unit=MetricUnit.Count, value=len(changes.errors))


def _record_coalescing(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """Shared targets left to a window (which purge covers each change), windows purged, and fallbacks."""
    coalescing = report.run.coalescing
    for deferral in coalescing.deferrals:
        logger.info(
            "coalesced into a window's purge",
            extra={
                "provider": deferral.provider,
                "coalesced_into": deferral.flush_id,
                "targets": deferral.targets,
                "changes": len(deferral.change_ids),
                "change_ids": list(deferral.change_ids[:20]),
                "opened_window": deferral.opened,
                "due_at": deferral.due_at,
            },
        )
    for flush in coalescing.flushes:
        logger.info(
            "window purged" if flush.purged else "window flush message read",
            extra={
                "provider": flush.provider,
                "window": flush.flush_id,
                "targets": flush.targets,
                "changes": flush.changes,
                "taken": flush.taken,
                "finished": flush.finished,
                "why_not": flush.why_not or None,
            },
        )
    for problem in coalescing.fallbacks:
        logger.warning("coalescing fell back to purging now", extra={"error": problem})
    for problem in coalescing.errors:
        logger.warning("coalescing window not updated (nothing lost)", extra={"error": problem})
    if not (coalescing.deferrals or coalescing.flushes or coalescing.fallbacks):
        return
    count = MetricUnit.Count
    metrics.add_metric(name="Coalesced", unit=count, value=sum(len(d.change_ids) for d in coalescing.deferrals))
    metrics.add_metric(name="CoalescedTargets", unit=count, value=sum(d.targets for d in coalescing.deferrals))
    metrics.add_metric(name="CoalescedPurges", unit=count, value=sum(1 for f in coalescing.flushes if f.purged))
    metrics.add_metric(name="CoalesceFallbacks", unit=count, value=len(coalescing.fallbacks))


def _record_config_change(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """A reloaded configuration, or an update refused (the previous configuration keeps running)."""
    if report.config_change.reloaded:
        logger.info("configuration reloaded: its document changed")
    if report.config_change.problem:
        logger.error(
            "configuration update refused; the previous configuration keeps running",
            extra={"error": report.config_change.problem},
        )
        metrics.add_metric(name="ConfigReloadFailed", unit=MetricUnit.Count, value=1)


def _record_bill(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    """What the batch was billed at per-path-billed providers (CloudFront), and the budget: logs and metrics
    (`InvalidationPaths` always, `PathBudgetExceeded` under a budget, for an alarm)."""
    count = MetricUnit.Count
    bill = report.run.bill
    if bill is not None and bill.exceeded:
        # Purged anyway (stale content costs more than a few cents), but said and alarmed.
        logger.warning(
            "monthly path budget exceeded",
            extra={
                "month": bill.month,
                "billed_paths": dict(bill.paths),
                "month_so_far": bill.month_so_far,
                "budget": bill.budget,
                "economised": bill.economised,
            },
        )
    if report.run.billed_paths:
        logger.info(
            "invalidation paths billed",
            extra={"month": bill.month if bill else None, "paths": dict(report.run.billed_paths)},
        )
    for problem in report.run.billing_failures:
        logger.error("billed-path counter unavailable", extra={"error": problem})
    # CloudFront paths this batch was billed for (sent and accepted), and whether it crossed the budget.
    metrics.add_metric(name="InvalidationPaths", unit=count, value=sum(report.run.billed_paths.values()))
    if bill is not None and bill.budget is not None:
        metrics.add_metric(name="PathBudgetExceeded", unit=count, value=int(bill.exceeded))
    if report.run.billing_failures:
        metrics.add_metric(name="PathCountFailed", unit=count, value=len(report.run.billing_failures))


def _per_provider_seconds(report: BatchReport, *, now: float) -> dict[str, dict[str, float]]:
    """Per provider, the batch's worst: `RequestSeconds`, the longest a request took (pacing, calls and
    retries: slow or throttled CDNs show here), and `ChangeToPurgeSeconds`, from the oldest change a purge
    served to its acceptance (the staleness a site operator sees). One value per batch, not per request:
    a storm's thousands of requests would otherwise fill hundreds of EMF documents."""
    changed_at: dict[str, float] = {}
    for change in report.run.decoded.changes:
        when = change.event_epoch()
        if when is not None:
            changed_at[change.id] = when
    timings: dict[str, dict[str, float]] = {}
    for outcome in report.run.outcomes:
        mine = timings.setdefault(outcome.request.provider, {})
        mine["RequestSeconds"] = max(mine.get("RequestSeconds", 0.0), outcome.seconds)
        oldest = min((changed_at[c] for c in outcome.request.change_ids if c in changed_at), default=None)
        if outcome.ok and oldest is not None:
            mine["ChangeToPurgeSeconds"] = max(mine.get("ChangeToPurgeSeconds", 0.0), now - oldest)
    return timings


def _per_provider(report: BatchReport) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for outcome in report.run.outcomes:
        counter = counts.setdefault(outcome.request.provider, Counter())
        counter["Requests"] += 1
        counter["Targets"] += len(outcome.request.targets)
        counter["Throttles"] += outcome.throttled
        counter["Retries"] += max(0, outcome.attempts - 1)
        if outcome.deferred:
            counter["Deferred"] += 1
        if not outcome.ok:
            counter["RequestsFailed"] += 1
            if outcome.error is not None:
                counter[outcome.error.metric_name] += 1
    for escalation in report.run.plan.escalations:
        counter = counts.setdefault(escalation.provider, Counter())
        counter["Escalations"] += 1
        counter["EscalatedTargets"] += escalation.replaced
    for provider, _change in report.run.duplicates:
        counts.setdefault(provider, Counter())["DuplicatesSkipped"] += 1
    for provider, _change in report.run.unavailable:
        counts.setdefault(provider, Counter())["LedgerUnavailable"] += 1
    for provider, tally in report.verification.tallies.items():
        counter = counts.setdefault(provider, Counter())
        counter["StaleAfterPurge"] += tally.stale
        counter["Repurged"] += tally.repurged
        counter["Unverifiable"] += tally.unverifiable
        counter["VerificationFailed"] += tally.failed
    return counts
