"""The pipeline, end to end: decode -> translate -> claim -> plan -> execute -> settle.

`run_batch` is everything the Lambda handler, the CLI and the demo share. Its result maps every outcome
back to the SQS records it came from: a record is reported in `batchItemFailures` if any of its changes
is not yet purged at every provider it is owed to (failed, deferred for lack of time, held by a
concurrent invocation, or not expressible by a provider), or if it could not be decoded at all.
Everything else is acknowledged, so one bad record never sinks its batch.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from cdnpurge.config import Config
from cdnpurge.events import Decoded, decode_event
from cdnpurge.execute import Executor, Outcome
from cdnpurge.ledger import Claim, Ledger
from cdnpurge.models import Change, Plan, PurgeRequest
from cdnpurge.plan import plan
from cdnpurge.providers.base import ProviderSpec
from cdnpurge.rules import RoutedTarget, Translation, translate

Pair = tuple[str, str]  # (provider, change id)


@dataclass(frozen=True)
class BatchReport:
    """Everything that happened to one batch, for the response, logs, metrics and the demo."""

    decoded: Decoded
    translation: Translation
    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    duplicates: tuple[Pair, ...] = ()  # already purged within the idempotency window: skipped
    busy: tuple[Pair, ...] = ()  # held by a concurrent invocation: left for redelivery
    failed_sources: tuple[str, ...] = ()
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # source id -> why it failed

    def response(self) -> PartialItemFailureResponse:
        return {"batchItemFailures": [{"itemIdentifier": source} for source in self.failed_sources]}

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
            "failed_records": len(self.failed_sources),
        }


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
    owed = _owed_pairs(translation.routed, specs)
    claims = ledger.claim(sorted(owed), remaining_ms() if remaining_ms else None)
    claimed = {pair for pair, state in claims.items() if state is Claim.CLAIMED}
    the_plan = plan(_restrict(translation.routed, claimed, specs), specs)
    outcomes = _execute(the_plan.requests, executor, deadline)

    succeeded, failed = _settle(claimed, the_plan, outcomes)
    if succeeded:
        ledger.complete(succeeded, {"purged": True})
    if failed:
        ledger.release(failed, RuntimeError("purge not completed"))

    report = BatchReport(
        decoded=decoded,
        translation=translation,
        plan=the_plan,
        outcomes=outcomes,
        duplicates=tuple(sorted(pair for pair, state in claims.items() if state is Claim.DONE)),
        busy=tuple(sorted(pair for pair, state in claims.items() if state is Claim.BUSY)),
    )
    reasons = _failure_reasons(report, decoded.changes)
    return replace(report, failed_sources=tuple(sorted(reasons)), reasons=reasons)


def _owed_pairs(routed: tuple[RoutedTarget, ...], specs: Mapping[str, ProviderSpec]) -> set[Pair]:
    return {
        (provider, item.change_id)
        for item in routed
        for provider in (item.providers if item.providers is not None else specs)
    }


def _restrict(
    routed: tuple[RoutedTarget, ...], claimed: set[Pair], specs: Mapping[str, ProviderSpec]
) -> list[RoutedTarget]:
    """Keep, for each routed target, only the providers whose (provider, change) we claimed."""
    kept = []
    for item in routed:
        wanted = item.providers if item.providers is not None else frozenset(specs)
        mine = frozenset(p for p in wanted if (p, item.change_id) in claimed)
        if mine:
            kept.append(replace(item, providers=mine))
    return kept


def _execute(requests: tuple[PurgeRequest, ...], executor: Executor, deadline: float) -> tuple[Outcome, ...]:
    """Each provider's queue runs on its own thread, so one slow or throttled CDN never delays another."""
    by_provider: dict[str, list[PurgeRequest]] = defaultdict(list)
    for request in requests:
        by_provider[request.provider].append(request)

    def run_all(queue: list[PurgeRequest]) -> list[Outcome]:
        return [executor.run(r, deadline=deadline, idempotency_token=request_token(r)) for r in queue]

    with ThreadPoolExecutor(max(1, len(by_provider))) as pool:
        results = dict(zip(by_provider, pool.map(run_all, by_provider.values()), strict=True))
    order = {id(r): i for i, r in enumerate(requests)}
    flat = [outcome for outcomes in results.values() for outcome in outcomes]
    return tuple(sorted(flat, key=lambda o: order[id(o.request)]))


def _settle(claimed: set[Pair], the_plan: Plan, outcomes: tuple[Outcome, ...]) -> tuple[set[Pair], set[Pair]]:
    """A claimed pair is done only if every request serving that change at that provider succeeded."""
    failed: set[Pair] = set()
    for outcome in outcomes:
        if not outcome.ok:
            failed.update((outcome.request.provider, c) for c in outcome.request.change_ids)
    for error in the_plan.errors:
        failed.update((error.provider, c) for c in error.change_ids)
    failed &= claimed
    return claimed - failed, failed


def _failure_reasons(report: BatchReport, changes: tuple[Change, ...]) -> dict[str, tuple[str, ...]]:
    source_of = {change.id: change.source_id for change in changes}
    reasons: dict[str, list[str]] = defaultdict(list)
    for decode_error in report.decoded.errors:
        reasons[decode_error.source_id].append(decode_error.message)
    for translate_error in report.translation.errors:
        reasons[translate_error.source_id].append(translate_error.message)
    for plan_error in report.plan.errors:
        for change_id in plan_error.change_ids:
            reasons[source_of[change_id]].append(f"{plan_error.provider}: {plan_error.message}")
    for outcome in report.outcomes:
        if outcome.ok:
            continue
        why = "deferred: out of time" if outcome.deferred else "failed"
        detail = f"{outcome.request.provider}: {why}: {outcome.error.message if outcome.error else ''}".rstrip(": ")
        for change_id in outcome.request.change_ids:
            reasons[source_of[change_id]].append(detail)
    for provider, change_id in report.busy:
        reasons[source_of[change_id]].append(f"{provider}: in progress in another invocation")
    return {source: tuple(dict.fromkeys(messages)) for source, messages in reasons.items()}
