"""The pipeline, end to end: decode -> translate -> claim -> plan -> execute -> settle.

`run_batch` is everything the Lambda handler, the CLI and the demo share. Each stage is a module of
its own (`events`, `rules`, `settle.claim` over `ledger`, `plan`, `execute`, `settle.Settlement`), and
this one only passes one stage's output to the next. Its result, a `BatchRun` (`cdnpurge.report`), maps
every outcome back to the SQS records it came from and classifies each failed one, so one bad record
never sinks its batch.

Settling happens as requests finish, not at the end of the batch (`settle.Settlement`): a Lambda killed
mid-batch leaves only the pairs still in flight, or just purged, to be purged again on redelivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cdnpurge.config import Config
from cdnpurge.events import Decoded, decode_event
from cdnpurge.execute import Executor, execute_plan
from cdnpurge.ledger import Claim, Ledger, Pair
from cdnpurge.models import Plan, RoutedTarget
from cdnpurge.plan import plan, router
from cdnpurge.providers.spec import ProviderSpec
from cdnpurge.report import BatchRun, classify_failures
from cdnpurge.rules import Translation, translate
from cdnpurge.settle import Settlement, claim

__all__ = ["preview", "run_batch"]


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
    redact: Callable[[str], str] = str,
    settle_by: float | None = None,
) -> BatchRun:
    """One batch through every stage; `redact` cleans the failure reasons (they may quote a provider).

    `deadline` and `settle_by` are on the executor's clock: no provider call starts that could not end by
    `deadline`, no ledger write starts after `settle_by` (see `settle.Settlement`)."""
    decoded = decode_event(event)
    translation = translate(decoded.changes, config)
    # Each target's providers, routed once: what is claimed is exactly what the planner will send.
    destinations = router(specs)
    routes = [(item, destinations(item.providers, item.target.kind)) for item in translation.routed]
    owed = sorted({(provider, item.change_id) for item, providers in routes for provider in providers})
    claims, claim_failures = claim(ledger, owed, remaining_ms() if remaining_ms else None)
    claimed = {pair for pair, state in claims.items() if state is Claim.CLAIMED}
    the_plan = plan(_restrict(routes, claimed), specs)

    settlement = Settlement(claimed, the_plan, ledger, settle_by=settle_by, clock=executor.clock)
    try:
        outcomes = execute_plan(the_plan.requests, executor, deadline, settlement.record)
    except BaseException:
        settlement.abandon()
        raise
    completed, settle_failures = settlement.finish()

    def having(state: Claim) -> tuple[Pair, ...]:
        return tuple(sorted(pair for pair, value in claims.items() if value is state))

    busy, unavailable = having(Claim.BUSY), having(Claim.UNAVAILABLE)
    ledger_failures = (*claim_failures, *settle_failures)
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
        failures=classify_failures(
            decoded=decoded,
            translation=translation,
            plan=the_plan,
            outcomes=outcomes,
            busy=busy,
            unavailable=unavailable,
            ledger_failures=ledger_failures,
            redact=redact,
        ),
    )


def _restrict(routes: list[tuple[RoutedTarget, tuple[str, ...]]], claimed: set[Pair]) -> list[RoutedTarget]:
    """Keep, for each routed target, only the providers whose (provider, change) we claimed."""
    kept = []
    for item, providers in routes:
        mine = frozenset(p for p in providers if (p, item.change_id) in claimed)
        if mine:
            kept.append(item._replace(providers=mine))
    return kept
