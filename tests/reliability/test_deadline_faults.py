"""One deadline bounds every call, against servers on 127.0.0.1 that drip, hang or answer slowly.

Each hostile server is scripted on loopback and the time is the test's (an injected clock the server itself
moves, or one that moves on every look); what is asserted is what was refused, cut, reported or kept, never
how long anything took:

- an edge that drips its response head one byte at a time: the probe ends at its own timeout or the
  check's deadline, whichever is first, having read a handful of bytes (httpx alone bounds each read);
- a provider API that drips: the same through the shared HTTP flow, the request deferred by the executor;
- DynamoDB throttling every write and taking 1.5 s a call (inside botocore's bounds): releasing claims and
  writing the trail stop at their deadline, report every pair and item not written, and raise nothing;
- SSM and Secrets Manager endpoints that hang: the configuration re-check and the secret re-read after a
  401 are cut at the call's end (read timeout cut to the time left, no retry past it); a 401 whose re-read
  could not run in time defers the request instead of dead-lettering it as refused;
- a runtime client called outside `bounded_call` refuses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from helpers import FASTLY_TOKEN, SLOW_TABLE_SECONDS, SimulatedClock, config_from, dripping_server, slow_dynamodb
from reliability import tally

from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import Plan, PurgeRequest, TargetKind
from cdnpurge.core.registry import build_providers
from cdnpurge.runtime.bounded import UnboundedCallError, bounded_call
from cdnpurge.runtime.bounded.aws import aws_client
from cdnpurge.runtime.bounded.http import bounded_http_client
from cdnpurge.runtime.bounded.parameters import BoundedParameters
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.ledger import DynamoDBLedger, LedgerOperation
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.settle import Settlement
from cdnpurge.runtime.trail import DynamoDBTrail, TrailEvent, TrailUpdate
from cdnpurge.runtime.verification.probe import Prober
from cdnpurge_local.fakecdn.loopback import LoopbackHTTP

DRIP_BYTES = 400
DRIP_INTERVAL = 0.002  # real seconds between bytes: far inside any per-read timeout
TABLE = "cdnpurge-idempotency"


class TickingClock:
    """Moves `step` seconds every time it is read: time passes as the code looks at it (never the wall)."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


@contextmanager
def dripping_head() -> Iterator[tuple[str, list[int]]]:
    """At most two connections: the request is read, then a response head sent one byte per `DRIP_INTERVAL`;
    how many bytes went out before the client hung up is counted."""
    head = b'HTTP/1.1 200 OK\r\nETag: "v2"\r\nX-Filler: ' + b"x" * DRIP_BYTES + b"\r\nContent-Length: 0\r\n\r\n"
    with dripping_server(b"", head, interval=DRIP_INTERVAL, connections=2) as (port, sent):
        yield f"http://127.0.0.1:{port}", sent


def test_a_dripping_edge_ends_the_probe_at_its_timeout_not_per_read() -> None:
    # Given: a probe with a 1 s timeout, time moving 10 ms per look, an edge dripping a 400-byte head
    clock = TickingClock(0.01)
    with dripping_head() as (edge, sent):
        prober = Prober(
            hosts=frozenset({"www.example.com"}), version_header="ETag", timeout_seconds=1, probe_endpoint=edge
        )
        # When
        probe = prober.probe("https://www.example.com/a.html", Deadline.after(600, clock))
        prober.close()
        read = sent[0]
    # Then: no answer, and the edge got to send only part of its head (per-read timeouts alone read it all)
    assert probe.error is not None and "Timeout" in probe.error
    assert read < len(b"HTTP/1.1 200 OK\r\n") + DRIP_BYTES
    tally.hostile("deadline")


def test_a_dripping_edge_is_cut_at_the_checks_deadline_when_that_comes_first() -> None:
    # Given: a 60 s probe timeout, but the check's deadline 0.2 s away
    clock = TickingClock(0.01)
    with dripping_head() as (edge, sent):
        prober = Prober(
            hosts=frozenset({"www.example.com"}), version_header="ETag", timeout_seconds=60, probe_endpoint=edge
        )
        probe = prober.probe("https://www.example.com/a.html", Deadline.after(0.2, clock))
        prober.close()
        read = sent[0]
    # Then: cut within the deadline's 20 looks at the clock: a few bytes, not the head
    assert probe.error is not None
    assert read < DRIP_BYTES // 4
    # And: a probe with no time left is not started at all
    with pytest.raises(OutOfTimeError):
        prober.probe("https://www.example.com/a.html", Deadline.after(0, clock))
    tally.hostile("deadline", 2)


def test_a_provider_api_dripping_its_answer_is_deferred_not_waited_for() -> None:
    # Given: Fastly's API dripping its head, the executor's deadline 0.5 s away on a clock moving per look
    clock = TickingClock(0.01)
    with dripping_head() as (api, sent):
        config = config_from(
            f"""
            providers:
              - name: fastly
                kind: fastly
                service_id: S1
                endpoint: {api}
                hosts: [www.example.com]
                timeout_seconds: 30
                credentials:
                  token: {{env: FASTLY_API_TOKEN}}
            """
        )
        providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
        executor = Executor(providers, clock=clock, sleep=lambda _: None, max_attempts=1)
        request = PurgeRequest("fastly", TargetKind.KEY, ("k1",), False, frozenset({"c1"}))
        # When
        outcome = executor.run(request, deadline=Deadline.after(0.5, clock), idempotency_token="t")
        read = sent[0]
    # Then: the call was cut at the deadline (an unavailable answer), never completed, and nothing waited on
    assert not outcome.ok
    assert read < DRIP_BYTES // 2
    tally.hostile("deadline")


def every_item_unprocessed(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Every BatchWriteItem answered with every item unprocessed (throttled)."""
    return 200, {"UnprocessedItems": body.get("RequestItems", {})}


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.usefixtures("aws_credentials")
def test_releasing_claims_against_a_slow_throttled_table_stops_at_the_deadline_and_reports_every_pair() -> None:
    # Given: 25 claimed pairs to release, a table taking 1.5 s a call and throttling every write, 6 s to settle
    clock = SimulatedClock()
    pairs = {("fastly", f"c{i}") for i in range(25)}  # one BatchWriteItem: the calls follow one another
    with slow_dynamodb(clock, every_item_unprocessed) as (client, state):
        ledger = DynamoDBLedger(client, TABLE, clock=clock, sleep=clock.sleep)
        settle_by = Deadline.after(6, clock)
        settlement = Settlement(pairs, Plan(()), ledger, settle_by=settle_by)
        # When
        completed, failures = settlement.finish()
    # Then: no call after the deadline (the last started before it may end one call after), nothing raised,
    # and every pair not released is reported (its claim expires at the invocation's deadline)
    assert clock() <= settle_by.ends_at + SLOW_TABLE_SECONDS
    assert state["calls"] <= 6 / SLOW_TABLE_SECONDS + 1
    assert completed == set()
    (failure,) = failures
    assert failure.operation is LedgerOperation.RELEASE and set(failure.pairs) == pairs
    tally.hostile("deadline")


@pytest.mark.usefixtures("aws_credentials")
def test_the_trail_write_against_a_slow_throttled_table_stops_at_the_deadline_and_counts_what_it_lost() -> None:
    # Given: 25 verifier reports, the same table, 4 s left
    clock = SimulatedClock()
    updates = [TrailUpdate(TrailEvent.FRESH, "fastly", f"c{i}", 1.7e9) for i in range(25)]
    with slow_dynamodb(clock, every_item_unprocessed) as (client, state):
        trail = DynamoDBTrail(client, "cdnpurge-trail", clock=lambda: 1.7e9, sleep=clock.sleep)
        deadline = Deadline.after(4, clock)
        # When
        written = trail.report(updates, deadline=deadline)
    # Then
    assert clock() <= deadline.ends_at + SLOW_TABLE_SECONDS
    assert state["calls"] <= 4 / SLOW_TABLE_SECONDS + 1
    assert written.written == 0 and written.failed == 25 and written.cause
    tally.hostile("deadline")


class Hanging(BaseHTTPRequestHandler):
    """Reads the request, moves the test's clock past any deadline, and never answers (until shutdown)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state = self.server.state  # type: ignore[attr-defined]
        state["calls"] += 1
        state["clock"].now += 3600
        state["release"].wait(10)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def hanging(service: str, clock: SimulatedClock) -> Iterator[tuple[Any, dict[str, Any], list[float]]]:
    """A client for `service` aimed at a hanging endpoint; the read timeouts its attempts were given."""
    server = LoopbackHTTP(Hanging, f"hanging-{service}")
    release = threading.Event()
    state: dict[str, Any] = {"calls": 0, "clock": clock, "release": release}
    server._server.state = state  # type: ignore[attr-defined]
    given: list[float] = []
    client = aws_client(service, endpoint_url=server.endpoint, region_name="us-east-1")
    client.meta.events.register("before-send", lambda request, **_: given.append(request.context.get("read_timeout")))
    try:
        yield client, state, given
    finally:
        release.set()
        server.stop()


@pytest.mark.usefixtures("aws_credentials")
def test_the_configuration_recheck_against_a_hanging_ssm_is_cut_at_the_calls_end() -> None:
    # Given: 0.3 s left for the re-check (botocore's default would wait 60 s, then retry)
    clock = SimulatedClock()
    with hanging("ssm", clock) as (client, state, given):
        parameters = BoundedParameters(ssm=client)
        # When
        with pytest.raises(OutOfTimeError), bounded_call(Deadline.after(0.3, clock), 10, what="re-check"):
            parameters.parameter("/cdnpurge/config")
    # Then: one attempt, its read cut to the 0.3 s left; the retry was refused, not sent
    assert state["calls"] == 1
    assert given == [pytest.approx(0.3)]
    tally.hostile("deadline")


@pytest.mark.usefixtures("aws_credentials")
def test_a_401_whose_secret_reread_hangs_defers_the_request_instead_of_refusing_it() -> None:
    # Given: Fastly refusing its token (a rotation), Secrets Manager hanging on the re-read, the providers
    # built as the function builds them, and a batch deadline 0.5 s away
    clock = SimulatedClock()
    config = config_from(
        """
        providers:
          - name: fastly
            kind: fastly
            service_id: S1
            hosts: [www.example.com]
            timeout_seconds: 0.2
            credentials:
              token: {secret: cdnpurge/fastly}
        """
    )
    refusing = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(401, json={"msg": "no"})))
    with hanging("secretsmanager", clock) as (client, state, given):
        parameters = BoundedParameters(secrets=client)
        purgers = build_purgers(
            config.providers,
            secret_reader=lambda name: FASTLY_TOKEN,  # the cold start's read, before the rotation
            fresh_secret_reader=parameters.fresh_secret,
            clock=clock,
            sleep=clock.sleep,
            clients={"fastly": refusing},
        )
        request = PurgeRequest("fastly", TargetKind.KEY, ("k1",), False, frozenset({"c1"}))
        # When
        outcome = purgers.executor.run(request, deadline=Deadline.after(0.5, clock), idempotency_token="t")
    # Then: the re-read was cut at the deadline (one attempt, its read cut to the time left) and the request
    # is deferred (SQS redelivers it), not failed as refused credentials (which is dead-lettered)
    assert state["calls"] == 1 and given == [pytest.approx(0.5)]
    assert outcome.deferred and not outcome.ok
    tally.hostile("deadline")


@pytest.mark.usefixtures("aws_credentials")
def test_a_runtime_client_called_outside_a_bounded_call_refuses() -> None:
    # Given: clients from both factories (the HTTP one on a transport that would answer anything)
    http = bounded_http_client(timeout=1, transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    sqs = aws_client("sqs", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    # Then: neither makes a call without a deadline
    with pytest.raises(UnboundedCallError):
        http.get("https://www.example.com/")
    with pytest.raises(UnboundedCallError):
        sqs.send_message(QueueUrl="http://127.0.0.1:9/q", MessageBody="x")
    # And: inside one, the HTTP client answers
    with bounded_call(Deadline.after(5), 1, what="test"):
        assert http.get("https://www.example.com/").status_code == 200
    tally.hostile("deadline", 2)
