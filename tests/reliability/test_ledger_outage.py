"""The idempotency table goes away mid-run (DynamoDB Local stopped) and comes back.

Policy under test: without a claim nothing is purged (no blind purge) and nothing is dropped: every
record whose changes could not be claimed is returned for redelivery. A purge that happened but could
not be recorded is acknowledged (it happened), logged and counted. A claim left behind by a dead
invocation expires with that invocation's deadline. This module has a stack of its own.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from helpers import SimulatedClock, create_template_table
from reliability import tally
from reliability.support import (
    Witness,
    assert_exactly,
    send,
    source,
    unique,
)

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, ProviderWrapper, PurgeResult
from cdnpurge.runtime.ledger import Claim, DynamoDBLedger
from cdnpurge.runtime.service import PurgeService
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-ledger")]
BUCKET = "cdnpurge-rel-ledger"


def restart_dynamodb(deployment: Deployment, port: int) -> None:
    """Start DynamoDB Local again on the port the handler's client knows, with an empty table."""
    deployment.stack.dynamodb.start(port=port)
    create_template_table(
        deployment.stack.client("dynamodb"), "IdempotencyTable", deployment.stack.resources.table_name
    )


def test_table_unreachable_returns_every_record_and_purges_nothing_blindly(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: one change purged while the table is up, then DynamoDB Local stops
    before, during = f"/{unique('up')}.html", [f"/{unique('down')}.html" for _ in range(2)]
    send(deployment, s3_notification(s3_record(BUCKET, before.lstrip("/"))))
    source(deployment).drain()
    port = deployment.stack.dynamodb.port
    deployment.stack.dynamodb.stop()
    tally.add(faults=1)
    send(deployment, sns_envelope({"paths": [during[0]]}), s3_notification(s3_record(BUCKET, during[1].lstrip("/"))))
    # When
    outage = source(deployment).poll_once()
    # Then: both records returned for redelivery; no provider was called for them
    assert outage is not None and len(outage.failed) == 2 and outage.deleted == 0
    assert deployment.cdn.purged("fastly") == [f"url:www.example.com{before} (hard)"]
    (logged,) = witness.logs.messages("idempotency store unavailable during claim")
    assert logged.__dict__["pairs"] == 4 and "returned to SQS" in logged.__dict__["policy"]
    assert "EndpointConnectionError" in logged.__dict__["cause"]
    assert witness.metrics()[("LedgerUnavailable", None)] == 4
    # When: the table is back (empty: DynamoDB Local keeps it in memory) and SQS redelivers
    restart_dynamodb(deployment, port)
    source(deployment).drain()
    # Then: each change purged exactly once at each provider
    assert_exactly(deployment, [before, *during])


class StopsTheTable(ProviderWrapper):
    """Wraps a provider: before its first call, DynamoDB Local is stopped (claims are already made)."""

    def __init__(self, inner: Provider, deployment: Deployment) -> None:
        super().__init__(inner)
        self.deployment = deployment

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        self.deployment.stack.dynamodb.stop()
        return self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)


def test_table_lost_after_the_purge_acknowledges_the_record_and_says_so(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: the table disappears while the purge is in flight
    path = f"/{unique('after')}.html"
    send(deployment, sns_envelope({"paths": [path]}))
    providers = cast(dict[str, Any], cast(PurgeService, deployment.app.service()).providers)
    original, port = providers["medianova"], deployment.stack.dynamodb.port
    providers["medianova"] = StopsTheTable(original, deployment)
    tally.add(faults=1)
    try:
        # When
        invocation = source(deployment).poll_once()
    finally:
        providers["medianova"] = original
    # Then: the purge happened, so the record is acknowledged, not redelivered to purge again
    assert invocation is not None and invocation.failed == () and invocation.deleted == 1
    assert_exactly(deployment, [path])
    (logged,) = witness.logs.messages("idempotency store unavailable during complete")
    assert "acknowledged" in logged.__dict__["policy"]
    assert witness.metrics()[("LedgerWriteFailed", None)] >= 1
    restart_dynamodb(deployment, port)


def test_a_claim_left_by_a_dead_invocation_expires_with_its_deadline(deployment: Deployment) -> None:
    # Given: a claim made with 0.8 s left and never settled (the runtime killed the function). The ledger
    # reads an injected clock, far ahead of real time so that no TTL of the table can act on the items:
    # DynamoDB Local compares the times the ledger writes and sends, so the test moves time exactly.
    clock = SimulatedClock(now=4_000_000_000.0)
    ledger = DynamoDBLedger(
        deployment.stack.client("dynamodb"),
        deployment.stack.resources.table_name,
        expires_after_seconds=60,
        clock=clock,
    )
    pair = ("fastly", unique("orphan"))
    assert ledger.claim([pair], 800) == {pair: Claim.CLAIMED}
    # Then: a redelivery within the deadline leaves it alone; past the deadline, the retry may claim it
    clock.now += 0.79
    assert ledger.claim([pair], 800) == {pair: Claim.BUSY}
    clock.now += 0.02
    assert ledger.claim([pair], 800) == {pair: Claim.CLAIMED}
    # And: once purged it is skipped until the idempotency window (60 s, whole seconds) is over
    ledger.complete([pair], {"purged": True})
    clock.now += 59
    assert ledger.claim([pair], 800) == {pair: Claim.DONE}
    clock.now += 2
    assert ledger.claim([pair], 800) == {pair: Claim.CLAIMED}
