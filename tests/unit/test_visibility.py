"""A throttled or deferred record comes back when its retry is due, not after the queue's
720 s visibility timeout: `ChangeMessageVisibility` to the planned delay, bounded, best effort."""

from __future__ import annotations

from random import Random
from typing import Any

import httpx
import pytest
from helpers import FASTLY_TOKEN, MemoryLedger, SimulatedClock, fastly_config

from cdnpurge.core.credentials import Secret
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge.runtime.visibility import MAX_VISIBILITY_SECONDS, VISIBILITY_FLOOR_SECONDS, visibility_for
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/purge"


class RecordingSqs:
    """The SQS calls the service makes; `fail` makes visibility changes raise."""

    def __init__(self, *, fail: bool = False) -> None:
        self.visibility: list[dict[str, Any]] = []
        self.fail = fail

    def change_message_visibility(self, **params: Any) -> None:
        if self.fail:
            raise ConnectionError("sqs unreachable")
        self.visibility.append(params)


def throttled_service(sqs: RecordingSqs, *, retry_after: str) -> PurgeService:
    """Fastly answering every call 429 with `retry_after`, on a simulated clock."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"msg": "slow down"}, headers={"Retry-After": retry_after})

    config = fastly_config()
    clock = SimulatedClock()
    providers = build_providers(
        config.providers,
        lambda settings: {"token": Secret(FASTLY_TOKEN)},
        {"fastly": httpx.Client(transport=httpx.MockTransport(answer))},
    )
    executor = Executor(providers, clock=clock, sleep=clock.sleep, rng=Random(3))
    return PurgeService(
        config=config,
        providers=providers,
        ledger=MemoryLedger(),
        executor=executor,
        queues=Queues(purge_url=QUEUE),
        sqs_factory=lambda: sqs,
    )


def test_a_throttled_record_is_made_visible_when_the_cdn_said_to_retry() -> None:
    # Given: the CDN asks for 40 s, and the invocation has 60
    sqs = RecordingSqs()
    service = throttled_service(sqs, retry_after="40")
    event = sqs_event(s3_notification(s3_record("example-site-content", "a.html")))
    # When
    report = service.handle(event)
    # Then: returned, and visible again in about 40 s (plus jitter), not 720
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert len(sqs.visibility) == 1
    change = sqs.visibility[0]
    assert change["QueueUrl"] == QUEUE and change["ReceiptHandle"] == "AQEBm0"
    assert 40 <= change["VisibilityTimeout"] <= 45
    assert report.visibility.changed == {"m0": change["VisibilityTimeout"]}


def test_an_absurd_retry_after_comes_back_after_the_capped_pause() -> None:
    sqs = RecordingSqs()
    service = throttled_service(sqs, retry_after="1000000000")
    service.handle(sqs_event(s3_notification(s3_record("example-site-content", "a.html"))))
    assert 300 <= sqs.visibility[0]["VisibilityTimeout"] <= 331  # MAX_PROVIDER_WAIT_SECONDS plus jitter


def test_a_failed_visibility_change_is_reported_never_fatal() -> None:
    sqs = RecordingSqs(fail=True)
    service = throttled_service(sqs, retry_after="40")
    report = service.handle(sqs_event(s3_notification(s3_record("example-site-content", "a.html"))))
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert report.visibility.changed == {} and "sqs unreachable" in report.visibility.errors[0]


@pytest.mark.parametrize(
    ("retry_in", "receives", "seconds"),
    [
        (0.0, 1, VISIBILITY_FLOOR_SECONDS),  # out of time only: back soon, but not at once
        (0.0, 3, VISIBILITY_FLOOR_SECONDS * 4),  # deferred again and again: backs off
        (33.2, 1, 34),
        (float("inf"), 1, MAX_VISIBILITY_SECONDS),
        (10.0**9, 1, MAX_VISIBILITY_SECONDS),
        (0.0, 10_000, MAX_VISIBILITY_SECONDS),
    ],
)
def test_visibility_is_the_planned_delay_within_a_floor_and_sqs_limit(
    retry_in: float, receives: int, seconds: int
) -> None:
    assert visibility_for(retry_in, receives) == seconds
