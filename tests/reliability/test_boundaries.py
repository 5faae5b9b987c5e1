"""Fault boundaries on the real stack (the handler on DynamoDB Local, moto and the fake CDNs): a record
that makes any stage raise fails alone, dead-lettered with its reason, logged and counted; twins sharing a
change id go, or stay, together.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

import pytest
from reliability import tally
from reliability.support import Witness, assert_exactly, dead_letter_reasons, send, source, unique

import cdnpurge.core.translate
from cdnpurge.core.urls import canonical_url
from cdnpurge_local.event_builders import sns_envelope
from cdnpurge_local.fakecdn.server import Fault
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-boundaries")]
BUCKET = "cdnpurge-rel-boundaries"


def test_a_record_that_makes_translation_raise_fails_alone(
    deployment: Deployment, witness: Witness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a translate step that lets Python's URL parser raise (as it once did: `cdnpurge.core.urls` now refuses
    # such a URL by name, so the bug is put back for this test), and a URL the parser rejects, beside a good
    # record
    real = canonical_url

    def unguarded(url: str) -> SplitResult:
        urlsplit(url)  # raises ValueError("Invalid IPv6 URL") for `https://[...`
        return real(url)

    monkeypatch.setattr(cdnpurge.core.translate, "canonical_url", unguarded)
    path = f"/{unique('good')}.html"
    poison = sns_envelope({"urls": ["https://[www.example.com/x"]})
    send(deployment, poison, sns_envelope({"paths": [path]}))
    tally.hostile("unexpected", 1)
    # When
    invocations = source(deployment).drain()
    # Then: one invocation answers both; the good record purged everywhere, the poison dead-lettered at once
    assert len(invocations) == 1 and invocations[0].error is None and invocations[0].failed == ()
    assert_exactly(deployment, [path])
    (reason,) = dead_letter_reasons(deployment.dead_letters()).values()
    assert reason.startswith("unexpected ValueError at ") and "Invalid IPv6 URL" in reason
    assert witness.logs.messages("record failed unexpectedly")
    emitted = witness.metrics()
    assert emitted[("RecordFailedUnexpectedly", None)] == 1 and emitted[("DeadLettered", None)] == 1


def test_twins_are_dead_lettered_together_when_their_change_is_refused(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: two records with one publisher id and different targets; fastly refuses one of their two requests
    first, second = f"/{unique('twin')}.html", f"/{unique('twin')}.html"
    deployment.cdn.inject("fastly", Fault(status=400))
    publisher_id = unique("release")
    bodies = [sns_envelope({"id": publisher_id, "paths": [p]}) for p in (first, second)]
    send(deployment, *bodies)
    tally.hostile("fate", 2)
    # When
    invocations = source(deployment).drain()
    # Then: the change failed at fastly, so neither record is deleted as done: both are in the DLQ
    assert len(invocations) == 1 and invocations[0].deleted == 2 and invocations[0].failed == ()
    dead = deployment.dead_letters()
    witness.see(dead)
    assert len(dead) == 2
    assert all("fastly: failed: injected 400" in reason for reason in dead_letter_reasons(dead).values())
