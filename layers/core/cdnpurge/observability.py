"""Logs and metrics for one batch, in one place, from the pipeline's `BatchReport`.

One structured log line per provider request (correlation: the request token; the change ids it
serves), one per failed record with its reasons, and EMF metrics: batch totals on the handler's
`Metrics` object, per-provider counts under a `provider` dimension.
Nothing here sees a credential: reports only carry targets, ids and provider messages.
"""

from __future__ import annotations

from collections import Counter

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from cdnpurge.pipeline import BatchReport, request_token


def record(report: BatchReport, logger: Logger, metrics: Metrics) -> None:
    summary = report.summary()
    for outcome in report.outcomes:
        request = outcome.request
        fields = {
            "provider": request.provider,
            "kind": request.kind.value,
            "targets": len(request.targets),
            "soft": request.soft,
            "attempts": outcome.attempts,
            "throttled": outcome.throttled,
            "request_token": request_token(request),
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
    for source, reasons in report.reasons.items():
        logger.warning("record not completed", extra={"source_id": source, "reasons": list(reasons)})
    for ignored in report.decoded.ignored:
        logger.info("record ignored", extra={"ignored": ignored})
    logger.info("batch done", extra=summary)

    metrics.add_metric(name="Changes", unit=MetricUnit.Count, value=summary["changes"])
    metrics.add_metric(name="DecodeErrors", unit=MetricUnit.Count, value=summary["decode_errors"])
    metrics.add_metric(name="FailedRecords", unit=MetricUnit.Count, value=summary["failed_records"])
    # The alarm in template.yaml watches this total (dimension: service only).
    metrics.add_metric(name="ProviderFailed", unit=MetricUnit.Count, value=summary["failed_requests"])
    for provider, counts in _per_provider(report).items():
        # One EMF document per provider: its counts under a `provider` dimension (Metrics allows one
        # dimension set per flush, so each provider gets its own ephemeral instance).
        per_provider = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
        per_provider.add_dimension(name="provider", value=provider)
        for name, value in counts.items():
            per_provider.add_metric(name=name, unit=MetricUnit.Count, value=value)
        per_provider.flush_metrics()


def _per_provider(report: BatchReport) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for outcome in report.outcomes:
        counter = counts.setdefault(outcome.request.provider, Counter())
        counter["Requests"] += 1
        counter["Targets"] += len(outcome.request.targets)
        counter["Throttles"] += outcome.throttled
        counter["Retries"] += max(0, outcome.attempts - 1)
        if not outcome.ok:
            counter["RequestsFailed"] += 1
            if outcome.error is not None:
                counter[outcome.error.metric_name] += 1
    for provider, _change in report.duplicates:
        counts.setdefault(provider, Counter())["DuplicatesSkipped"] += 1
    return counts
