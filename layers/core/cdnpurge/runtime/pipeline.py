"""The pipeline, end to end: decode -> translate -> claim -> plan -> execute -> settle.

`run_batch` is everything the Lambda handler, the CLI and the demo share. Each stage is a module of
its own (`events`, `rules`, `settle.claim` over `ledger`, `plan`, `execute`, `settle.Settlement`), and
this one only passes one stage's output to the next. Its result, a `BatchRun` (`cdnpurge.runtime.report`), maps
every outcome back to the SQS records it came from and classifies each failed one, so one bad record
never sinks its batch.

Settling happens as requests finish, not at the end of the batch (`settle.Settlement`): a Lambda killed
mid-batch leaves only the pairs still in flight, or just purged, to be purged again on redelivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, NamedTuple

from msgspec.structs import replace

from cdnpurge.core.coalesce import split, split_flushes
from cdnpurge.core.config import Config
from cdnpurge.core.cost import PathBill, PathCounter, billed_paths, budgeted_plan, month_of
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events import Decoded, decode_event
from cdnpurge.core.models import Plan, PurgeRequest, RoutedTarget
from cdnpurge.core.plan import router
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.core.translate import Translation, tag_covered, translate
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.coalesce import Coalescer, without_store
from cdnpurge.runtime.execute import Executor, execute_plan, request_token
from cdnpurge.runtime.ledger import Attempt, Claim, Claims, Ledger, Pair
from cdnpurge.runtime.progress import skip_done
from cdnpurge.runtime.report import BatchRun, classify_failures
from cdnpurge.runtime.settle import Settlement, claim

__all__ = ["Preview", "preview", "run_batch"]

# The longest one path-counter operation may take (a GetItem, or an UpdateItem per distribution).
COUNTER_SECONDS: Final = 5.0


class Preview(NamedTuple):
    """What `cdnpurge plan` prints: the decoded event, its targets, the plan and what the plan bills."""

    decoded: Decoded
    translation: Translation
    plan: Plan
    bill: PathBill


def preview(
    event: Mapping[str, Any],
    config: Config,
    specs: Mapping[str, ProviderSpec],
    *,
    month: str | None = None,
    month_so_far: int | None = None,
) -> Preview:
    """decode -> translate -> plan with no ledger and no calls (the month so far, if known, is given). The plan
    is what would be sent now: shared targets of coalescing providers wait for their window
    (`cdnpurge.core.coalesce.split`), and a flush message's targets are in its window's item."""
    decoded = decode_event(event)
    translation = translate(split_flushes(decoded.changes)[1], config)
    the_plan, bill = budgeted_plan(
        split(translation.routed, router(specs), specs).now,
        specs,
        month=month or month_of(time.time()),
        budget=config.monthly_path_budget,
        month_so_far=month_so_far,
        tag_covered=tag_covered(translation, config),
    )
    return Preview(decoded, translation, the_plan, bill)


def run_batch(
    event: Mapping[str, Any],
    *,
    config: Config,
    specs: Mapping[str, ProviderSpec],
    ledger: Ledger,
    executor: Executor,
    deadline: Deadline,
    remaining_ms: Callable[[], int] | None = None,
    redact: Callable[[str], str] = str,
    settle_by: Deadline | None = None,
    path_counter: PathCounter | None = None,
    month: str | None = None,
    home_account: str | None = None,
    coalescer: Coalescer | None = None,
) -> BatchRun:
    """One batch through every stage; `redact` cleans the failure reasons (they may quote a provider).

    No provider call runs past `deadline`, no ledger or counter call past `settle_by` (None: each within its
    own bound; see `settle.Settlement`). `path_counter` keeps the
    month's billed paths (`cdnpurge.core.cost`): read before planning when the configuration sets
    `monthly_path_budget`, added to after the purges. `month` defaults to this one. `coalescer` leaves shared
    targets to their providers' windows and takes the windows the batch's flush messages name
    (`cdnpurge.runtime.coalesce`); without one, everything is purged now. `home_account`: the stack's account
    (`decode_event`)."""
    decoded = decode_event(event, home_account=home_account)
    flushes, changes = split_flushes(decoded.changes)
    translation = translate(changes, config)
    # Each target's providers, routed once: what is claimed is exactly what the planner will send.
    destinations = router(specs)
    store_deadline = deadline if settle_by is None else settle_by
    coalesced = (
        without_store(translation.routed, flushes)
        if coalescer is None
        else coalescer.gather(translation.routed, flushes, destinations, specs, store_deadline)
    )
    routes = [(item, destinations(item.providers, item.target.kind)) for item in coalesced.routed]
    owed = sorted({(provider, item.change_id) for item, providers in routes for provider in providers})
    claims, claim_failures = claim(ledger, owed, remaining_ms() if remaining_ms else None, deadline=settle_by)
    claimed = {pair for pair, state in claims.items() if state is Claim.CLAIMED}
    attempts = claims.attempts if isinstance(claims, Claims) else {}
    month = month or month_of(time.time())
    month_so_far, billing_failures = _month_so_far(path_counter, month, config.monthly_path_budget, settle_by)
    the_plan, bill = budgeted_plan(
        skip_done(_restrict(routes, claimed), attempts, specs),
        specs,
        month=month,
        budget=config.monthly_path_budget,
        month_so_far=month_so_far,
        tag_covered=tag_covered(translation, config),
    )

    settlement = Settlement(claimed, the_plan, ledger, settle_by=settle_by, attempts=attempts)
    try:
        outcomes = execute_plan(
            the_plan.requests, executor, deadline, settlement.record, token_for=_attempt_tokens(attempts)
        )
    except BaseException:
        settlement.abandon()
        raise
    completed, settle_failures = settlement.finish()
    accepted_paths = billed_paths((outcome.request for outcome in outcomes if outcome.ok), specs)
    billing_failures += _count_paths(path_counter, month, accepted_paths, settle_by)

    def having(state: Claim) -> tuple[Pair, ...]:
        return tuple(sorted(pair for pair, value in claims.items() if value is state))

    busy, unavailable = having(Claim.BUSY), (*having(Claim.UNAVAILABLE), *coalesced.unavailable)
    ledger_failures = (*claim_failures, *coalesced.failures, *settle_failures)
    coalescing = (
        coalesced.report
        if coalescer is None
        else coalescer.settle(coalesced, set(completed), set(having(Claim.DONE)), store_deadline)
    )
    failures = classify_failures(
        decoded=decoded,
        translation=translation,
        plan=the_plan,
        outcomes=outcomes,
        busy=busy,
        unavailable=unavailable,
        ledger_failures=ledger_failures,
        redact=redact,
    )
    moved = {change for _, change in settlement.advanced}
    progressing = {change.source_id for change in decoded.changes if change.id in moved}
    return BatchRun(
        decoded=decoded,
        translation=translation,
        plan=the_plan,
        outcomes=outcomes,
        owed=tuple(owed),
        completed=tuple(sorted(completed)),
        duplicates=having(Claim.DONE),
        busy=busy,
        unavailable=unavailable,
        ledger_failures=ledger_failures,
        bill=bill,
        billed_paths=accepted_paths,
        billing_failures=billing_failures,
        coalescing=coalescing,
        failures=replace(failures, progressing=frozenset(progressing.intersection(failures.sources))),
    )


def _attempt_tokens(attempts: Mapping[Pair, Attempt]) -> Callable[[PurgeRequest], str]:
    """Each request's token names the attempt of every change it serves at its provider (CloudFront's
    `CallerReference`: the same for a redelivery continuing an attempt, new for a new one)."""

    def token_for(request: PurgeRequest) -> str:
        generations = {
            change: attempts[(request.provider, change)].generation
            for change in request.change_ids
            if (request.provider, change) in attempts
        }
        return request_token(request, generations)

    return token_for


def _counter_call(deadline: Deadline | None, what: str) -> AbstractContextManager[Deadline]:
    """One path-counter operation as one bounded call, before `deadline` (None: within its own bound)."""
    until = deadline or Deadline.after(COUNTER_SECONDS)
    return bounded_call(until, COUNTER_SECONDS, what=f"path counters: {what}")


def _month_so_far(
    counter: PathCounter | None, month: str, budget: int | None, deadline: Deadline | None
) -> tuple[int | None, tuple[str, ...]]:
    """The month's billed paths, read only when a budget needs them; a failed (or late) read plans as if
    none were billed yet (the purge matters more than the bill) and is reported."""
    if counter is None or budget is None:
        return None, ()
    try:
        with _counter_call(deadline, "reading the month"):
            return counter.month_so_far(month), ()
    except Exception as exc:  # the store's failures vary (botocore, network): reported, never fatal
        return None, (f"reading the month's billed paths: {describe_error(exc)}",)


def _count_paths(
    counter: PathCounter | None, month: str, paths: Mapping[str, int], deadline: Deadline | None
) -> tuple[str, ...]:
    """Add what was billed to the month's counters; a failure is reported, never fatal (the purge happened)."""
    if counter is None or not paths:
        return ()
    try:
        with _counter_call(deadline, "adding the batch"):
            counter.add(month, paths)
    except Exception as exc:  # as in `_month_so_far`
        return (f"counting {sum(paths.values())} billed path(s): {describe_error(exc)}",)
    return ()


def _restrict(routes: list[tuple[RoutedTarget, tuple[str, ...]]], claimed: set[Pair]) -> list[RoutedTarget]:
    """Keep, for each routed target, only the providers whose (provider, change) we claimed; a target routed
    to no provider at all stays (with none), so that the planner reports it."""
    kept = []
    for item, providers in routes:
        mine = frozenset(p for p in providers if (p, item.change_id) in claimed)
        if mine or not providers:
            kept.append(item._replace(providers=mine))
    return kept
