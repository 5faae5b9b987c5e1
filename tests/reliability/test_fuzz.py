"""Hypothesis over event shapes, through the whole pipeline and the service's dead-letter step.

Unit level (in-memory ledger, a recording SQS stand-in, simulated time) against the fake Fastly server
over real HTTP. Every generated batch must: raise nothing; fail only records that exist; leave no change
behind (each is purged at every provider it is owed to, or its record failed); dead-letter exactly the
records it acknowledges as failed, each with a reason; and never call anything but the configured CDN.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from aws_lambda_powertools import Logger, Metrics
from helpers import FASTLY_TOKEN, MemoryLedger, SimulatedClock, fastly_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.credentials import Secret
from cdnpurge.core.protocol import Provider
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.deadletter import ERROR_ATTRIBUTE
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.observability import record
from cdnpurge.runtime.providers.http import HttpProvider
from cdnpurge.runtime.redaction import RedactingProvider, secret_forms
from cdnpurge.runtime.service import PurgeService, Queues
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN

BUCKET = "example-site-content"
logger = Logger(service="cdnpurge")
metrics = Metrics(namespace="CDNPurge", service="cdnpurge")
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,
    database=None,
)

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
# Keys as S3 would send them and as a hostile producer might: unicode, + and %, dot segments, controls.


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` four times in five: enough valid input to exercise claims, plans and calls too."""
    return st.integers(0, 4).flatmap(lambda n: bad if n == 0 else good)


safe_key = st.text(alphabet=string.ascii_letters + string.digits + "/-_.", min_size=1, max_size=30)
raw_key = mostly(
    st.one_of(safe_key, st.text(alphabet=string.ascii_letters + "+% ", min_size=1, max_size=10)),
    st.one_of(
        st.text(min_size=1, max_size=20),
        st.sampled_from(["../etc/passwd", "a/./b", "%00", "%FF", "a%2Bb+c", "caf%C3%A9.html", "x" * 1100, "%"]),
    ),
)
hosts = st.sampled_from(["www.example.com", "cdn.example.com", "evil.example", "127.0.0.1", "169.254.169.254", ""])
target_lists = st.lists(mostly(safe_key, st.one_of(st.text(max_size=15), json_leaf)), max_size=4)


@st.composite
def s3_record(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventSource": draw(mostly(st.just("aws:s3"), st.sampled_from(["aws:sqs", None]))),
        "eventName": draw(
            mostly(
                st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"]),
                st.sampled_from(["ObjectRestore:Post", "Weird:Thing", ""]),
            )
        ),
        "eventTime": "2026-11-23T10:00:00.000Z",
        "s3": {
            "bucket": {"name": draw(st.sampled_from([BUCKET, "other-bucket", ""]))},
            "object": {"key": draw(raw_key), "sequencer": draw(st.text(string.hexdigits, min_size=1, max_size=8))},
        },
    }
    broken = mostly(
        st.just([]), st.lists(st.sampled_from(["eventName", "s3", "s3.object", "s3.object.key"]), max_size=1)
    )
    for path in draw(broken):
        parent = record
        *parents, last = path.split(".")
        for part in parents:
            parent = parent[part]
        parent[last] = draw(json_value)
    return record


@st.composite
def publish(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    fields = st.sets(st.sampled_from(["keys", "paths", "urls", "hosts", "soft", "id"]), min_size=1, max_size=4)
    for name in draw(fields):
        if name == "urls":
            message[name] = [
                f"https://{draw(hosts)}/{draw(st.text(max_size=8))}" for _ in range(draw(st.integers(0, 3)))
            ]
        elif name == "hosts":
            message[name] = draw(st.lists(hosts, max_size=3))
        elif name == "paths":
            message[name] = draw(st.lists(st.text(max_size=12).map(lambda p: "/" + p), max_size=3))
        elif name in ("soft", "id"):
            message[name] = draw(json_leaf)
        else:
            message[name] = draw(target_lists)
    return message


@st.composite
def document(draw: st.DrawFn) -> Any:
    """One SQS body's document, in any envelope, mostly almost-right."""
    kind = draw(st.sampled_from(["s3", "sns", "eventbridge-s3", "eventbridge-publish", "publish", "repurge", "any"]))
    if kind == "s3":
        return {"Records": draw(st.lists(s3_record(), min_size=0, max_size=3))}
    if kind == "sns":
        inner = draw(mostly(st.one_of(publish(), st.builds(lambda r: {"Records": [r]}, s3_record())), json_value))
        message = draw(mostly(st.just(json.dumps(inner)), st.text(max_size=10)))
        return {
            "Type": draw(st.sampled_from(["Notification", "SubscriptionConfirmation", "Other"])),
            "MessageId": draw(st.sampled_from(["m-1", "m-2", ""])),
            "Message": message,
        }
    if kind == "eventbridge-s3":
        return {
            "id": draw(mostly(st.sampled_from(["e-1", "e-2"]), st.sampled_from(["", None]))),
            "source": "aws.s3",
            "detail-type": draw(st.sampled_from(["Object Created", "Object Deleted", "Object Tags Added", "?"])),
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": draw(raw_key), "sequencer": "01"}},
        }
    if kind == "eventbridge-publish":
        return {
            "id": draw(st.sampled_from(["e-1", "e-3"])),
            "source": "cms.content",
            "detail-type": "Content Published",
            "detail": draw(mostly(publish(), json_value)),
        }
    if kind == "publish":
        return draw(publish())
    if kind == "repurge":
        changes = [
            {
                "id": draw(st.text(max_size=10)),
                "action": draw(st.sampled_from(["created", "removed", "x"])),
                "bucket": BUCKET,
                "key": draw(st.text(max_size=12)),
            }
            for _ in range(draw(st.integers(0, 2)))
        ]
        return {"cdnpurge": draw(mostly(st.just("repurge"), st.just("other"))), "changes": changes}
    return draw(json_value)


@st.composite
def sqs_event(draw: st.DrawFn) -> dict[str, Any]:
    records = []
    for number in range(draw(st.integers(1, 5))):
        doc = draw(document())
        body: Any = json.dumps(doc) if draw(st.integers(0, 9)) else draw(st.one_of(st.text(max_size=20), json_leaf))
        record: dict[str, Any] = {
            "messageId": f"msg-{number}",
            "body": body,
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "attributes": {"ApproximateReceiveCount": draw(st.sampled_from(["1", "4", "5", "9", "x"]))},
            "messageAttributes": draw(
                st.sampled_from([{}, {"trace": {"dataType": "String", "stringValue": "t"}}, {"bad": 3}, None])
            ),
        }
        if not draw(st.integers(0, 29)):
            del record[draw(st.sampled_from(["messageId", "body", "eventSource"]))]
        records.append(record)
    return {"Records": records}


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **request: Any) -> dict[str, str]:
        self.sent.append(request)
        return {"MessageId": f"sent-{len(self.sent)}"}


@pytest.fixture(scope="module")
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id="SU1Z0isxPaozGVKXdv0eY")]) as running:
        yield running


def service_for(cdn: FakeCDN, sqs: RecordingSqs, destinations: list[str]) -> PurgeService:
    """The service as deployed, with every HTTP request's destination (scheme, host, port) recorded at the
    transport: a call to anywhere but the fake CDN is seen even if no server answered it."""
    config = fastly_config(cdn.endpoint("fastly"))
    raw = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    for provider in raw.values():
        if isinstance(provider, HttpProvider):
            provider.client.event_hooks["request"].append(
                lambda request: destinations.append(f"{request.url.scheme}://{request.url.netloc.decode()}")
            )
    providers: dict[str, Provider] = {
        name: RedactingProvider(provider, secret_forms([FASTLY_TOKEN])) for name, provider in raw.items()
    }
    clock = SimulatedClock()
    return PurgeService(
        config=config,
        providers=providers,
        ledger=MemoryLedger(),
        executor=Executor(providers, clock=clock, sleep=clock.sleep, base_backoff=0.01),
        queues=Queues(dead_letter_url="dlq", purge_url="queue", max_receive_count=5),
        secrets=secret_forms([FASTLY_TOKEN]),
        sqs_factory=lambda: sqs,
    )


@FUZZ
@given(event=sqs_event())
@example(  # found by this test: the URL reaches the CDN percent-encoded (`/%C2%80`), as it should
    event={
        "Records": [
            {
                "messageId": "msg-0",
                "body": '{"urls": ["https://www.example.com/\\u0080"]}',
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
            }
        ]
    }
)
@example(  # found by this test: a fragment never reaches a CDN, so `/#` is purged as `/` everywhere
    event={
        "Records": [
            {
                "messageId": "msg-0",
                "body": '{"id": "e-1", "source": "cms.content", "detail-type": "Content Published", '
                '"detail": {"paths": ["/#"], "keys": []}}',
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
            }
        ]
    }
)
def test_no_event_shape_crashes_loses_a_change_or_misroutes_a_failure(cdn: FakeCDN, event: dict[str, Any]) -> None:
    # Given
    sqs = RecordingSqs()
    destinations: list[str] = []
    service = service_for(cdn, sqs, destinations)
    calls_before = len(cdn.received)
    # When: the batch runs and is logged and measured as the handler does
    report = service.handle(event)
    record(report, logger, metrics)
    metrics.flush_metrics()
    # Then: failures belong to real records (or to the event as a whole when a record has no id)
    ids = {r["messageId"] for r in event["Records"] if isinstance(r.get("messageId"), str)}
    assert set(report.run.failures.sources) <= ids | {"event"}
    assert all(report.run.failures.reasons[source] for source in report.run.failures.sources)
    # nothing lost: every change owed to a provider is purged or skipped as done, or its record failed ...
    settled = set(report.run.completed) | set(report.run.duplicates)
    lost = [
        change
        for change in report.run.decoded.changes
        if not {pair for pair in report.run.owed if pair[1] == change.id} <= settled
        and change.source_id not in report.run.failures.sources
    ]
    # ... and "purged" means the CDN received it: every accepted request's targets are in what it recorded
    # (compared percent-decoded: the fake records the path as it arrived on the wire, `/%C2%80` for `/\x80`)
    received = {unquote(entry) for entry in cdn.purged("fastly")}
    for outcome in report.run.outcomes:
        if outcome.ok:
            for target in outcome.request.targets:
                entry = target.removeprefix("https://") if outcome.request.kind.value == "url" else target
                mode = "soft" if outcome.request.soft else "hard"
                wanted = unquote(f"{outcome.request.kind.value}:{entry} ({mode})")
                assert wanted in received, (outcome.request, sorted(received)[-5:])
    assert len(cdn.received) - calls_before <= sum(outcome.attempts for outcome in report.run.outcomes)
    # every failed record is either returned to SQS or dead-lettered with its reason, never both
    returned = {item["itemIdentifier"] for item in report.response()["batchItemFailures"]}
    assert returned | set(report.dead_letters.moved) == set(report.run.failures.sources)
    assert not returned & set(report.dead_letters.moved)
    assert len(sqs.sent) == len(report.dead_letters.moved) + (1 if report.repurge.scheduled else 0)
    for sent in sqs.sent:
        assert sent["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]
    # and nothing but the configured provider's own API was called
    assert set(destinations) <= {cdn.endpoint("fastly").rsplit("/", 1)[0]}, destinations
    for call in cdn.received[calls_before:]:
        assert "evil" not in call.path and "169.254" not in call.path
    bad = {error.source_id for error in report.run.decoded.errors} | {
        e.source_id for e in report.run.translation.errors
    }
    tally.add(changes=len(report.run.decoded.changes), lost=len(lost), bad_inputs=len(bad))
    assert lost == []
