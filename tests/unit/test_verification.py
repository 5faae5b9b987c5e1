"""Verification at the edge: the handler checks what viewers get after a purge, on the fake edge.

Real purge fakes (`FakeCDN`) over HTTP, the caching edge on loopback learning their purges, the real
handler service (providers, executor, planner) and the check messages it writes; only SQS is a recorder
here (the check messages are delivered by the test, after moving the injected clock by their delay).
No sleeps: the edge, the fakes' jobs and verification read one `ManualClock`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from helpers import (
    FASTLY_SERVICE,
    FASTLY_TOKEN,
    MemoryLedger,
    RecordingSqs,
    Sent,
    SimulatedClock,
    Trail,
    TrailListener,
    config_from,
)

from cdnpurge.core.config import ConfigError
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.events import decode_event
from cdnpurge.core.events.own import MAX_SENDS
from cdnpurge.core.events.reading import MalformedError
from cdnpurge.core.events.verify import CheckedChange, VerifyCheck, decode_check, encode_check
from cdnpurge.core.models import Action
from cdnpurge.runtime.deadletter import ERROR_ATTRIBUTE, FAILURE_ATTRIBUTE
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.report import BatchReport
from cdnpurge.runtime.service import PurgeService, Queues, Verification, VerificationWiring
from cdnpurge.runtime.verification.probe import Prober, ProbeRefused
from cdnpurge.runtime.verification.report import Tally
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.fakecdn.akamai import AkamaiBehaviour
from cdnpurge_local.fakecdn.clock import ManualClock
from cdnpurge_local.fakecdn.edge import Edge, EdgeFault, EdgeServer
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.origin import MemoryOrigin
from cdnpurge_local.fakecdn.server import FakeCDN

START = 1_764_000_000.0  # epoch seconds: verification stamps wall-clock times
BUCKET, WWW = "example-site-content", "www.example.com"
ARTICLE = "articles/a.html"
ARTICLE_URL = f"https://{WWW}/{ARTICLE}"
PURGE_QUEUE, DEAD_LETTERS = "https://sqs.local/purge", "https://sqs.local/dlq"
MN_TOKEN, MN_ORG, MN_RESOURCE = "mn-test-token-not-real", "org-0001", "res-0001"
AK_CLIENT, AK_SECRET, AK_ACCESS = "akab-client-not-real", "ak-secret-not-real-AAAA=", "akab-access-not-real"
PROVIDERS = ("fastly", "medianova", "akamai")


@dataclass
class World:
    clock: ManualClock
    origin: MemoryOrigin
    cdn: FakeCDN
    edges: dict[str, Edge]
    servers: dict[str, EdgeServer]
    sqs: RecordingSqs
    trail: Trail
    service: PurgeService
    delivered: int = 0

    def view(self, provider: str, url: str = ARTICLE_URL) -> httpx.Response:
        address, headers = self.servers[provider].address(url)
        return httpx.get(address, headers=headers)

    def upload(self, key: str, body: bytes) -> BatchReport:
        """A new version at the origin and its S3 event through the handler."""
        self.origin.put(key, body)
        when = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        return self.service.handle(sqs_event(s3_notification(s3_record(BUCKET, key, event_time=when))))

    def checks(self) -> list[Sent]:
        return [m for m in self.sqs.sent if m.queue == PURGE_QUEUE]

    def run_next_checks(self) -> BatchReport | None:
        """Deliver the checks not delivered yet, once the longest of their delays has passed."""
        due = self.checks()[self.delivered :]
        if not due:
            return None
        self.delivered += len(due)
        self.clock.advance(max(m.delay for m in due))
        return self.service.handle(sqs_event(*(m.body for m in due)))

    def purge_calls(self, provider: str) -> int:
        return sum(1 for call in self.cdn.received if call.provider == provider and call.method == "POST")


CONFIG = """
providers:
  - name: fastly
    kind: fastly
    service_id: {fastly_service}
    endpoint: {fastly_endpoint}
    hosts: [www.example.com]
    credentials: {{token: {{value: {fastly_token}}}}}
    verify: {{probe_endpoint: "{fastly_edge}", interval_seconds: 5, max_repurges: 2, deadline_seconds: 60}}
  - name: medianova
    kind: medianova
    organization_uuid: {mn_org}
    resource_uuid: {mn_resource}
    endpoint: {medianova_endpoint}
    hosts: [www.example.com]
    credentials: {{token: {{value: {mn_token}}}}}
    verify: {{probe_endpoint: "{medianova_edge}", interval_seconds: 5, deadline_seconds: 120}}
  - name: akamai
    kind: akamai
    host: akab-test.purge.akamaiapis.net
    endpoint: {akamai_endpoint}
    hosts: [www.example.com]
    credentials:
      client_token: {{value: {ak_client}}}
      client_secret: {{value: "{ak_secret}"}}
      access_token: {{value: {ak_access}}}
    verify: {{probe_endpoint: "{akamai_edge}", interval_seconds: 2, deadline_seconds: 60}}
rules:
  - match: "articles/{{slug}}.html"
    paths: ["/articles/{{slug}}.html"]
    keys: ["article-{{slug}}"]
  - match: "aliases/{{slug}}.html"
    paths: ["/aliases/{{slug}}.html", "/aliases/{{slug}}"]
    providers: [fastly]
  - match: "tags/{{name}}"
    keys: ["tag-{{name}}"]
    providers: [fastly]
allow_inline_secrets: true
"""


@pytest.fixture
def world() -> Iterator[World]:
    clock = ManualClock(START)
    origin = MemoryOrigin(clock)
    behaviours = [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE),
        MedianovaBehaviour(
            token=MN_TOKEN, organization_uuid=MN_ORG, resource_uuid=MN_RESOURCE, completion_delay=30, clock=clock
        ),
        AkamaiBehaviour(client_token=AK_CLIENT, client_secret=AK_SECRET, access_token=AK_ACCESS, estimated_seconds=5),
    ]
    edges = {name: Edge(name, origin, clock, hosts=frozenset({WWW})) for name in PROVIDERS}
    with ExitStack() as running:
        cdn = running.enter_context(FakeCDN(behaviours))
        servers = {name: running.enter_context(EdgeServer(edge)) for name, edge in edges.items()}
        for edge in edges.values():
            edge.listen(cdn)
        config = config_from(
            CONFIG.format(
                fastly_service=FASTLY_SERVICE,
                fastly_token=FASTLY_TOKEN,
                mn_org=MN_ORG,
                mn_resource=MN_RESOURCE,
                mn_token=MN_TOKEN,
                ak_client=AK_CLIENT,
                ak_secret=AK_SECRET,
                ak_access=AK_ACCESS,
                **{f"{name}_endpoint": cdn.endpoint(name) for name in PROVIDERS},
                **{f"{name}_edge": server.endpoint for name, server in servers.items()},
            )
        )
        pacing = SimulatedClock()
        purgers = build_purgers(config.providers, environ={}, clock=pacing, sleep=pacing.sleep)
        sqs = RecordingSqs()
        service = PurgeService(
            config=config,
            providers=purgers.providers,
            ledger=MemoryLedger(),
            executor=purgers.executor,
            queues=Queues(dead_letter_url=DEAD_LETTERS, purge_url=PURGE_QUEUE),
            secrets=purgers.secrets,
            sqs_factory=lambda: sqs,
        )
        trail = Trail()
        service.verification = Verification(
            service, VerificationWiring(listener=TrailListener(trail), origin=origin, clock=clock)
        )
        world = World(clock, origin, cdn, edges, servers, sqs, trail, service)
        # The site as viewers had it: version 1 cached at every edge.
        origin.put(ARTICLE, b"version 1")
        for name in PROVIDERS:
            assert world.view(name).content == b"version 1"
        yield world
        service.verification.verifier.close()


def test_a_silent_purge_is_caught_reported_and_purged_again(world: World) -> None:
    # Given Fastly purges (the URL and the surrogate key) that will be accepted and never take effect
    world.edges["fastly"].inject(EdgeFault.SILENT, count=2)
    # When version 2 is uploaded and purged
    first = world.upload(ARTICLE, b"version 2")
    new_etag = world.origin.fetch(WWW, f"/{ARTICLE}")
    assert new_etag is not None
    assert first.response() == {"batchItemFailures": []}
    assert world.view("fastly").content == b"version 1"  # the silent failure: accepted, still stale
    # Then the first check sees it stale, says so and purges again
    check = world.run_next_checks()
    assert check is not None
    fastly = check.verification.tallies["fastly"]
    assert (fastly.stale, fastly.repurged, fastly.time_to_fresh) == (1, 1, [])
    stale = [entry for entry in world.trail.stale if entry[0] == "fastly"]
    assert [(url, origin, attempt) for _, _, url, _, origin, attempt in stale] == [(ARTICLE_URL, new_etag.etag, 1)]
    assert stale[0][3] != new_etag.etag  # what was served: version 1's ETag
    assert world.purge_calls("fastly") == 3  # URL and key, then the stale URL once more
    # And the next check sees it fresh: first-seen-fresh recorded, time to fresh measured from the event
    after = world.run_next_checks()
    assert after is not None
    assert world.view("fastly").content == b"version 2"
    fresh = [entry for entry in world.trail.fresh if entry[0] == "fastly"]
    assert [(url, at) for _, _, at, url in fresh] == [(ARTICLE_URL, world.clock())]
    assert after.verification.tallies["fastly"].time_to_fresh == [world.clock() - START]
    assert world.trail.failed == []


def test_the_shield_refilling_a_stale_copy_is_caught_and_purged_again(world: World) -> None:
    # Given a shield that refills the Fastly edge from its stale copy right after the purge
    world.edges["fastly"].inject(EdgeFault.SHIELD_REFILL, count=2)  # the URL purge and the key purge
    # When version 2 is uploaded and purged, then checked
    world.upload(ARTICLE, b"version 2")
    check = world.run_next_checks()
    # Then the refilled copy is seen stale and purged again, and the next look finds version 2
    assert check is not None and check.verification.tallies["fastly"].repurged == 1
    assert world.purge_calls("fastly") == 3
    world.run_next_checks()
    assert world.view("fastly").content == b"version 2"
    assert any(entry[0] == "fastly" for entry in world.trail.fresh)


def test_a_job_in_progress_is_waited_for_without_probing_then_verified(world: World) -> None:
    # Given Medianova jobs that stay pending for 30 s (the edge stale meanwhile)
    world.upload(ARTICLE, b"version 2")
    medianova_calls = world.service.executor.buckets["medianova"].recent
    purges_paced = len(medianova_calls)
    # When the first check runs 5 s later
    first = world.run_next_checks()
    # Then it asks Medianova's job listing (one call, paced with Medianova's purges), probes nothing and
    # checks again later
    assert first is not None
    assert len(medianova_calls) == purges_paced + 1
    assert first.verification.tallies["medianova"].probes == 0
    assert any(c.provider == "medianova" and c.method == "GET" for c in world.cdn.received)
    assert world.view("medianova").content == b"version 1"
    purged = world.purge_calls("medianova")
    # And once the job completes, the edge is seen fresh with no purge sent again
    while world.run_next_checks() is not None:
        pass
    assert world.view("medianova").content == b"version 2"
    assert [url for provider, _, _, url in world.trail.fresh if provider == "medianova"] == [ARTICLE_URL]
    assert world.purge_calls("medianova") == purged
    assert world.trail.failed == []


def test_akamai_is_checked_once_its_estimated_seconds_have_passed(world: World) -> None:
    # When version 2 is purged at Akamai, which estimates 5 s
    world.upload(ARTICLE, b"version 2")
    akamai_check = next(m for m in world.checks() if json.loads(m.body)["provider"] == "akamai")
    purged = world.purge_calls("akamai")
    # Then its check waits the estimate (not its shorter 2 s interval), and then finds the edge fresh
    assert akamai_check.delay == 5
    world.run_next_checks()
    assert [url for provider, _, _, url in world.trail.fresh if provider == "akamai"] == [ARTICLE_URL]
    assert world.purge_calls("akamai") == purged  # nothing purged again


def test_keys_no_url_shows_are_counted_unverifiable_and_get_no_check(world: World) -> None:
    # When an object whose rule names only a surrogate key is purged
    report = world.upload("tags/blue", b"blue")
    # Then the key is counted unverifiable at Fastly, and no check is scheduled for it
    assert report.verification.tallies["fastly"].unverifiable == 1
    assert report.verification.tallies["fastly"].checks_scheduled == 0
    assert world.checks() == []


def test_a_url_the_edge_does_not_serve_the_object_at_is_unverifiable_not_stale(world: World) -> None:
    # When an object is purged whose rule also names an alias path the origin has no object for
    world.upload("aliases/b.html", b"b")
    report = world.run_next_checks()
    # Then the alias (404 at the edge) is counted unverifiable, never purged again, and the real URL verified
    assert report is not None
    fastly = report.verification.tallies["fastly"]
    assert (fastly.unverifiable, fastly.stale, fastly.repurged) == (1, 0, 0)
    assert [(change, urls) for change, _, urls in fastly.seen_fresh] == [
        (world.trail.fresh[0][1], (f"https://{WWW}/aliases/b.html",))
    ]
    assert world.checks()[world.delivered :] == []


def test_still_stale_past_the_deadline_is_dead_lettered_with_the_reason(world: World) -> None:
    # Given a Fastly edge where no purge ever takes effect
    world.edges["fastly"].inject(EdgeFault.SILENT, count=10)
    old = world.view("fastly").headers["ETag"]
    world.upload(ARTICLE, b"version 2")
    new = world.origin.fetch(WWW, f"/{ARTICLE}")
    assert new is not None
    # When every check runs, until none is left
    reports = []
    while (report := world.run_next_checks()) is not None:
        reports.append(report)
    # Then it was purged again at most twice, and past the 60 s deadline dead-lettered with the reason
    assert world.purge_calls("fastly") == 2 + 2  # URL and key, then the URL twice (max_repurges)
    assert sum(r.verification.tallies.get("fastly", _empty()).failed for r in reports) == 1
    (provider, change_id, reason), *rest = world.trail.failed
    assert rest == [] and provider == "fastly" and change_id.startswith(f"s3:{BUCKET}/{ARTICLE}@")
    elapsed = int(reason.split(" after ")[1].split(" s:")[0])
    assert elapsed >= 60
    assert reason == f"still stale at {ARTICLE_URL} after {elapsed} s: ETag {old}, origin {new.etag}"
    (letter,) = [m for m in world.sqs.sent if m.queue == DEAD_LETTERS]
    assert letter.attributes[FAILURE_ATTRIBUTE]["StringValue"] == "verification-failed"
    assert letter.attributes[ERROR_ATTRIBUTE]["StringValue"] == reason
    assert decode_check(letter.body, now=START).changes[0].id == change_id
    assert FASTLY_TOKEN not in json.dumps([m.__dict__ for m in world.sqs.sent])


def _empty() -> Tally:
    return Tally()


# -- the message and the prober ---------------------------------------------------------------------


def test_a_check_message_round_trips_and_the_decoder_acknowledges_it_without_a_change() -> None:
    check = VerifyCheck(
        provider="fastly",
        accepted_at=START,
        changes=(CheckedChange("s3:b/k@1", Action.CREATED, "b", "k", START - 3, (ARTICLE_URL,), ()),),
        jobs=("job-1",),
        ready_at=START + 5,
        attempt=2,
        repurges=1,
    )
    body = encode_check(check)
    assert decode_check(body, now=START) == check
    decoded = decode_event(sqs_event(body))
    assert (decoded.changes, decoded.errors) == ((), ())
    assert decoded.ignored == ("m0: verification check",)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            '{"cdnpurge":"verify","provider":"fastly","changes":[{"id":"x","action":"created","bucket":null,'
            '"key":null,"changed_at":1764000000,"urls":[]}]}',
            "field accepted_at: field required",
        ),
        (
            '{"cdnpurge":"verify","provider":"fastly","accepted_at":1764000000,"changes":[{"id":"x","action":"moved",'
            '"bucket":null,"key":null,"changed_at":1764000000,"urls":[]}]}',
            "field changes\\[0\\].action: not one of the allowed values",
        ),
        (
            '{"cdnpurge":"verify","provider":"fastly","accepted_at":1764000000,"attempt":0,"repurges":0,"changes":[]}',
            "field changes: Expected `array` of length >= 1",
        ),
        ("{not json", "verification message is not JSON: JSON is malformed"),
        (
            '{"cdnpurge":"verify","provider":"fastly","accepted_at":"1764000000"}',
            "field accepted_at: Expected `float`, got `str`",
        ),
    ],
)
def test_a_malformed_check_message_is_named(body: str, problem: str) -> None:
    with pytest.raises(MalformedError, match=problem):
        decode_check(body, now=START)


def test_probes_go_only_to_allow_listed_hosts_and_never_follow_a_redirect_elsewhere() -> None:
    asked: list[str] = []

    def edge(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path == "/moved":
            return httpx.Response(301, headers={"Location": "https://evil.example.net/x"})
        if request.url.path == "/here":
            return httpx.Response(302, headers={"Location": "/there"})
        return httpx.Response(200, headers={"ETag": '"v2"'})

    prober = Prober(
        hosts=frozenset({WWW}), version_header="ETag", timeout_seconds=1, transport=httpx.MockTransport(edge)
    )
    with pytest.raises(ProbeRefused):
        prober.probe("https://evil.example.net/a", Deadline.after(60))
    moved = prober.probe(f"https://{WWW}/moved", Deadline.after(60))
    followed = prober.probe(f"https://{WWW}/here", Deadline.after(60))
    prober.close()
    assert moved.error is not None and "another host" in moved.error
    assert (followed.status, followed.version) == (200, '"v2"')
    assert asked == [f"https://{WWW}/moved", f"https://{WWW}/here", f"https://{WWW}/there"]


def test_verify_hosts_must_be_allow_listed() -> None:
    with pytest.raises(ConfigError, match=r"verify.hosts: 'elsewhere.example.net' is neither"):
        config_from(
            f"""
            providers:
              - name: fastly
                kind: fastly
                service_id: {FASTLY_SERVICE}
                hosts: [www.example.com]
                credentials: {{token: {{env: FASTLY_API_TOKEN}}}}
                verify: {{hosts: [elsewhere.example.net]}}
            """
        )


def test_verification_needs_a_host_to_probe_and_a_plain_probe_endpoint() -> None:
    base = f"""
        providers:
          - name: fastly
            kind: fastly
            service_id: {FASTLY_SERVICE}
            credentials: {{token: {{env: FASTLY_API_TOKEN}}}}
            verify: VERIFY
        """
    with pytest.raises(ConfigError, match=r"providers.fastly.verify: no host to probe"):
        config_from(base.replace("VERIFY", "{}"))
    with pytest.raises(ConfigError, match=r"probe_endpoint .* must be http\(s\)://host\[:port\] with no path"):
        config_from(base.replace("VERIFY", '{hosts: [www.example.com], probe_endpoint: "http://127.0.0.1:9/x"}'))


# -- hostile check messages and hostile answers ---------------------------------------------------------


def _hostile_check(**changes: object) -> str:
    """A check message as the function writes it, with `changes` applied to its JSON fields."""
    check = VerifyCheck(
        provider="fastly",
        accepted_at=START,
        changes=(CheckedChange(f"s3:{BUCKET}/{ARTICLE}@1", Action.CREATED, BUCKET, ARTICLE, START, (ARTICLE_URL,)),),
        expires_at=START + 3600,
    )
    doc = json.loads(encode_check(check))
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("fields", "failure", "reason"),
    [
        ({"attempt": float("nan")}, "permanent", "field attempt: Expected `int`, got `float`"),
        ({"attempt": float("inf")}, "permanent", "field attempt: Expected `int`, got `float`"),
        ({"repurges": -1}, "permanent", "field repurges: Expected `int` >= 0"),
        ({"sends": True}, "permanent", "field sends: Expected `int`, got `bool`"),
        ({"accepted_at": float("nan")}, "permanent", "field accepted_at: Expected `float` >= 1000000000.0"),
        ({"expires_at": float("inf")}, "permanent", "field expires_at: Expected `float` <= 4102444800.0"),
        ({"ready_at": 1e308}, "permanent", "field ready_at: Expected `float` <= "),
        ({"attempt": 1e308}, "permanent", "field attempt: Expected `int`, got `float`"),
        ({"accepted_at": START + 86_400}, "permanent", "field accepted_at is 86400 s in the future"),
        ({"jobs": [f"job-{n}" for n in range(5000)]}, "permanent", "field jobs: Expected `array` of length <= 200"),
        (
            {"changes": [json.loads("[" * 150 + "]" * 150)]},
            "permanent",
            "field changes[0]: Expected `object`, got `array`",
        ),
        ({"expires_at": START - 1}, "expired", "verification message expired 1 s ago"),
    ],
)
def test_a_hostile_check_message_is_dead_lettered_with_its_reason_and_the_batch_goes_on(
    world: World, fields: dict[str, object], failure: str, reason: str
) -> None:
    # Given a batch holding a hostile check message and an upload
    world.origin.put(ARTICLE, b"version 2")
    when = datetime.fromtimestamp(world.clock(), UTC).isoformat()
    upload = s3_notification(s3_record(BUCKET, ARTICLE, event_time=when))
    # When it is handled
    report = world.service.handle(sqs_event(_hostile_check(**fields), upload))
    # Then the upload was purged, and the check dead-lettered with the reason, not run
    assert "m1" not in report.run.failures.sources
    assert world.purge_calls("fastly") >= 1
    (letter,) = [m for m in world.sqs.sent if m.queue == DEAD_LETTERS]
    assert letter.attributes[FAILURE_ATTRIBUTE]["StringValue"] == failure
    assert reason in letter.attributes[ERROR_ATTRIBUTE]["StringValue"]
    assert report.verification.failed_sources == []


def test_a_5000_deep_check_message_is_refused_without_recursion(world: World) -> None:
    body = '{"cdnpurge":"verify","provider":' + "[" * 5000 + "]" * 5000 + "}"
    report = world.service.handle(sqs_event(body))
    (letter,) = [m for m in world.sqs.sent if m.queue == DEAD_LETTERS]
    assert "deeper than 32 levels" in letter.attributes[ERROR_ATTRIBUTE]["StringValue"]
    assert report.verification.errors == []


def test_an_infinite_akamai_estimate_still_schedules_a_bounded_check(world: World) -> None:
    # Given Akamai answers that its purge will take 1e999 seconds (JSON's infinity)
    behaviour = world.cdn.behaviours["akamai"]
    assert isinstance(behaviour, AkamaiBehaviour)
    behaviour.estimated_seconds = float("inf")  # type: ignore[assignment]
    # When version 2 is uploaded and purged
    report = world.upload(ARTICLE, b"version 2")
    # Then the batch ends normally and Akamai's check is scheduled, waiting at most SQS's 15 minutes
    assert report.run.failures.sources == ()
    checks = [decode_check(m.body, now=START) for m in world.checks()]
    (akamai,) = [c for c in checks if c.provider == "akamai"]
    assert akamai.ready_at is not None and akamai.ready_at <= akamai.accepted_at + 86_400
    assert all(m.delay <= 900 for m in world.checks())


def test_a_check_lineage_ends_at_its_send_cap(world: World) -> None:
    # Given a check that was already sent again as often as any lineage may be, whose job is still pending
    check = json.loads(_hostile_check())
    check.update(sends=MAX_SENDS, ready_at=START + 600)
    # When it is run, and the provider's estimate has not passed
    world.service.handle(sqs_event(json.dumps(check)))
    # Then it is not enqueued again: its change is dead-lettered, saying why
    assert world.checks() == []
    (letter,) = [m for m in world.sqs.sent if m.queue == DEAD_LETTERS]
    assert "verification ended" in letter.attributes[ERROR_ATTRIBUTE]["StringValue"]
    assert f"cap is {MAX_SENDS}" in letter.attributes[ERROR_ATTRIBUTE]["StringValue"]
