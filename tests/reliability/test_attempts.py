"""A new attempt is a new invalidation, a redelivery the same one (CloudFront's `CallerReference`).

- property: a request's token changes with the purge generation of any change it serves, and only then;
- faults through the pipeline (a CloudFront stand-in that answers a repeated reference with the first
  invalidation, as AWS documents): a purge that failed and is redelivered continues its attempt (the same
  reference, no second invalidation for what was created), while a publisher id purged again after the
  idempotency window is a new attempt (a new invalidation).

The same rule is enforced by the local stack's moto server (`cdnpurge_local.cloudfront_references`); the
end-to-end cases are tests/contract/test_cloudfront.py and tests/integration/test_verification_cloudfront.py.
"""

from __future__ import annotations

import json
from typing import Any

from helpers import SimulatedClock
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.config import parse_config
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import UnavailableError
from cdnpurge.core.registry import specs as specs_of
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.runtime.execute import Executor, request_token
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge_local.event_builders import sqs_event
from cdnpurge_local.memory_ledger import MemoryLedger

CONFIG = parse_config("providers: [{name: cf, kind: cloudfront, distribution_id: E1}]\n")
CHANGES = st.frozensets(st.sampled_from(["pub:a", "pub:b", "s3:x@1"]), min_size=1)


@settings(max_examples=200, deadline=None)
@given(CHANGES, st.data())
def test_the_token_names_the_attempt_of_every_change_served(changes: frozenset[str], data: st.DataObject) -> None:
    request = PurgeRequest("cf", TargetKind.PATH, ("/a", "/b"), False, changes)
    generations = {change: data.draw(st.sampled_from(["g1", "g2", "verify-1"])) for change in changes}
    changed = data.draw(st.sampled_from(sorted(changes)))
    other = {**generations, changed: generations[changed] + "'"}
    assert request_token(request, generations) == request_token(request, dict(generations))
    assert request_token(request, generations) != request_token(request, other)
    tally.hostile("attempts")


class DedupingCloudFront:
    """CreateInvalidation as AWS documents it: a repeated reference returns the first invalidation."""

    def __init__(self, spec: ProviderSpec, *, failures: int = 0) -> None:
        self.name, self.spec = "cf", spec
        self.invalidations: dict[str, tuple[str, ...]] = {}
        self.failures = failures

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        created = idempotency_token not in self.invalidations
        self.invalidations.setdefault(idempotency_token, request.targets)
        if self.failures:  # created, then the answer is lost (a 5xx after the fact)
            self.failures -= 1
            raise UnavailableError("cf", "InternalError", status=500)
        return PurgeResult(f"I{len(self.invalidations)}", detail="created" if created else "existing")


def run(provider: DedupingCloudFront, ledger: MemoryLedger, body: dict[str, Any]) -> None:
    clock = SimulatedClock()
    executor = Executor({"cf": provider}, clock=clock, sleep=clock.sleep, max_attempts=1)
    run_batch(
        sqs_event(json.dumps(body)),
        config=CONFIG,
        specs={"cf": provider.spec},
        ledger=ledger,
        executor=executor,
        deadline=Deadline.after(60, clock),
    )


def test_a_redelivery_continues_its_attempt_and_a_reused_id_after_the_window_is_a_new_one() -> None:
    spec = specs_of(CONFIG.providers)["cf"]
    cloudfront, ledger = DedupingCloudFront(spec, failures=1), MemoryLedger()
    body = {"id": "release-7", "paths": ["/news/"]}
    # Given a purge whose invalidation was created but whose answer was lost: the record is released
    run(cloudfront, ledger, body)
    assert len(cloudfront.invalidations) == 1 and ("cf", "pub:release-7") not in ledger.done
    # When SQS redelivers it: the same attempt, the same reference, no second invalidation
    run(cloudfront, ledger, body)
    assert len(cloudfront.invalidations) == 1 and ("cf", "pub:release-7") in ledger.done
    # When the publisher reuses the id after the idempotency window (the record expired)
    ledger.done.clear()
    run(cloudfront, ledger, body)
    # Then it is a new attempt: CloudFront creates a second invalidation of the same path
    assert list(cloudfront.invalidations.values()) == [("/news/",), ("/news/",)]
    tally.hostile("attempts", 3)
