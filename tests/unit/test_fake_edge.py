"""The fake edge: stale until a purge takes effect, per provider, on an injected clock (never a sleep).

Purges go over HTTP to the real purge fakes (`FakeCDN`), the edge learns them through the server's purge
hook, and viewers ask the edge over loopback with the site's `Host` header.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN

from cdnpurge.runtime.providers.edgegrid import EdgeGridAuth
from cdnpurge_local.fakecdn.akamai import AkamaiBehaviour
from cdnpurge_local.fakecdn.clock import ManualClock
from cdnpurge_local.fakecdn.cloudflare import CloudflareBehaviour
from cdnpurge_local.fakecdn.edge import CacheStatus, Edge, EdgeFault, EdgeServer, serving_edge
from cdnpurge_local.fakecdn.f5xc import F5xcBehaviour
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.gotipath import GotipathBehaviour
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.origin import MemoryOrigin, OriginError, OriginObject
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.fakecdn.targets import Scope, ScopeKind, UnknownTargetError, scopes

WWW, STATIC = "www.example.com", "static.example.com"
CF_TOKEN, CF_ZONE = "cf-test-token-not-real", "023e105f4ecef8ad9ca31a8372d0c353"
MN_TOKEN, MN_ORG, MN_RESOURCE = "mn-test-token-not-real", "org-0001", "res-0001"
AK_CLIENT, AK_SECRET, AK_ACCESS = "akab-client-not-real", "ak-secret-not-real-AAAA=", "akab-access-not-real"
F5_TOKEN, GP_KEY = "f5-test-token-not-real", "gp-key-not-real"
CF_PURGE, F5_PURGE = f"/zones/{CF_ZONE}/purge_cache", "/api/cdn/namespaces/ns/cdn_loadbalancer/lb/cache-purge"
MN_PURGE = f"/cdn/{MN_ORG}/job/{MN_RESOURCE}/purge"
# Objects every purge-kind test starts with cached: (host, path, tags). Both hosts share one origin (one
# bucket), so the same path on either host is the same object.
OBJECTS = [
    (WWW, "/articles/a.html", ("article-a", "articles")),
    (WWW, "/articles/b.html", ("article-b", "articles")),
    (WWW, "/images/logo.png", ("images",)),
    (STATIC, "/articles/a.html", ("article-a", "articles")),
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cdn(clock: ManualClock) -> Iterator[FakeCDN]:
    behaviours = [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE),
        CloudflareBehaviour(token=CF_TOKEN, zone_id=CF_ZONE),
        AkamaiBehaviour(client_token=AK_CLIENT, client_secret=AK_SECRET, access_token=AK_ACCESS, estimated_seconds=5),
        MedianovaBehaviour(
            token=MN_TOKEN, organization_uuid=MN_ORG, resource_uuid=MN_RESOURCE, completion_delay=30, clock=clock
        ),
        F5xcBehaviour(token=F5_TOKEN, namespace="ns", load_balancer="lb"),
        GotipathBehaviour(client_id="c", library_id="l", api_key=GP_KEY, distribution_id="dist-1"),
    ]
    with FakeCDN(behaviours) as fake:
        yield fake


@pytest.fixture
def origin(clock: ManualClock) -> MemoryOrigin:
    origin = MemoryOrigin(clock)
    for _, path, tags in OBJECTS:
        origin.put(path.lstrip("/"), b"v1 " + path.encode(), tags=tags)
    return origin


def edge_for(provider: str, origin: MemoryOrigin, clock: ManualClock, cdn: FakeCDN) -> Edge:
    edge = Edge(provider, origin, clock, cp_code="12345")
    edge.listen(cdn)
    return edge


def view(server: EdgeServer, url: str, **headers: str) -> httpx.Response:
    address, host = server.address(url)
    return httpx.get(address, headers=host | headers)


def purge(cdn: FakeCDN, call: PurgeCall) -> httpx.Response:
    """One purge call on the fake API, authorised as its provider wants."""
    provider = call.provider
    auth: httpx.Auth | None = None
    credentials = {
        "fastly": {"Fastly-Key": FASTLY_TOKEN},
        "cloudflare": {"Authorization": f"Bearer {CF_TOKEN}"},
        "medianova": {"Authorization": f"Bearer {MN_TOKEN}"},
        "f5xc": {"Authorization": f"APIToken {F5_TOKEN}"},
        "gotipath": {"X-Auth-ClientId": "c", "X-Auth-LibraryId": "l", "X-Auth-ApiKey": GP_KEY},
    }
    if provider == "akamai":
        auth = EdgeGridAuth(AK_CLIENT, AK_SECRET, AK_ACCESS)
    content = None if call.body is None else json.dumps(call.body).encode()
    answer = httpx.post(
        cdn.endpoint(provider) + call.path,
        content=content,
        headers=credentials.get(provider, {}) | {"Content-Type": "application/json"} | call.headers,
        auth=auth,
    )
    assert answer.is_success, answer.text
    return answer


def fill(edge: Edge) -> None:
    for host, path, _ in OBJECTS:
        assert edge.get(host, path).status == 200


def republish(origin: MemoryOrigin) -> None:
    for _, path, tags in OBJECTS:
        origin.put(path.lstrip("/"), b"v2 " + path.encode(), tags=tags)


def still_stale(edge: Edge) -> set[tuple[str, str]]:
    return {(host, path) for host, path, _ in OBJECTS if edge.get(host, path).body.startswith(b"v1")}


def test_a_cached_copy_is_served_stale_with_its_validators_until_the_purge_takes_effect(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given a Fastly edge that served an article once
    edge = edge_for("fastly", origin, clock, cdn)
    with serving_edge(edge) as server:
        first = view(server, f"https://{WWW}/articles/a.html")
        old_etag = first.headers["ETag"]
        # When the origin gets a new version and time passes
        republish(origin)
        clock.advance(42)
        stale = view(server, f"https://{WWW}/articles/a.html")
        # Then the edge still serves the old copy, aged, with its validators and surrogate keys
        assert (first.headers["X-Cache"], stale.headers["X-Cache"]) == ("MISS", "HIT")
        assert stale.content == b"v1 /articles/a.html"
        assert stale.headers["ETag"] == old_etag != origin.fetch(WWW, "/articles/a.html").etag  # type: ignore[union-attr]
        assert stale.headers["Age"] == "42"
        assert stale.headers["Surrogate-Key"] == "article-a articles"
        assert stale.headers["Last-Modified"] == first.headers["Last-Modified"]
        assert view(server, f"https://{WWW}/articles/a.html", **{"If-None-Match": old_etag}).status_code == 304
        # When the key is purged (Fastly: near-instant)
        purge(cdn, PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge/article-a"))
        fresh = view(server, f"https://{WWW}/articles/a.html")
    # Then the next request fetches the new version
    assert (fresh.content, fresh.headers["X-Cache"], fresh.headers["Age"]) == (b"v2 /articles/a.html", "MISS", "0")


def test_the_edge_answers_only_for_its_sites(origin: MemoryOrigin, clock: ManualClock) -> None:
    edge = Edge("cloudflare", origin, clock, hosts=frozenset({WWW}))
    with EdgeServer(edge) as server:
        assert view(server, f"https://{STATIC}/articles/a.html").status_code == 404
        assert view(server, f"https://{WWW}/missing.html").status_code == 404
        assert view(server, f"https://{WWW}/articles/a.html").headers["Cache-Tag"] == "article-a,articles"


ALL_OBJECTS = {(host, path) for host, path, _ in OBJECTS}


@dataclass(frozen=True)
class PurgeCall:
    provider: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


PURGE_KINDS = {
    "fastly-url": (PurgeCall("fastly", f"/purge/{WWW}/articles/a.html"), ALL_OBJECTS - {(WWW, "/articles/a.html")}),
    "fastly-keys": (
        PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge", {"surrogate_keys": ["article-b", "images"]}),
        {(WWW, "/articles/a.html"), (STATIC, "/articles/a.html")},
    ),
    "fastly-all": (PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge_all"), set()),
    "cloudflare-files": (
        PurgeCall("cloudflare", CF_PURGE, {"files": [f"https://{STATIC}/articles/a.html"]}),
        ALL_OBJECTS - {(STATIC, "/articles/a.html")},
    ),
    "cloudflare-tags": (
        PurgeCall("cloudflare", CF_PURGE, {"tags": ["article-a"]}),
        {(WWW, "/articles/b.html"), (WWW, "/images/logo.png")},
    ),
    "cloudflare-prefix": (
        PurgeCall("cloudflare", CF_PURGE, {"prefixes": [f"{WWW}/articles/"]}),
        {(WWW, "/images/logo.png"), (STATIC, "/articles/a.html")},
    ),
    "cloudflare-host": (
        PurgeCall("cloudflare", CF_PURGE, {"hosts": [STATIC]}),
        ALL_OBJECTS - {(STATIC, "/articles/a.html")},
    ),
    "cloudflare-everything": (PurgeCall("cloudflare", CF_PURGE, {"purge_everything": True}), set()),
    "f5xc-pattern": (
        PurgeCall("f5xc", F5_PURGE, {"pattern": r"^/articles/[ab]\.html$", "hard_purge": {}}),
        {(WWW, "/images/logo.png")},
    ),
    "f5xc-hostname": (
        PurgeCall("f5xc", F5_PURGE, {"hostname": WWW, "hard_purge": {}}),
        {(STATIC, "/articles/a.html")},
    ),
    "gotipath-path-on-every-host": (
        PurgeCall("gotipath", "/distributions/dist-1/purges", {"type": "url", "paths": ["/images/logo.png"]}),
        ALL_OBJECTS - {(WWW, "/images/logo.png")},
    ),
    "akamai-cpcode": (PurgeCall("akamai", "/ccu/v3/delete/cpcode/production", {"objects": [12345]}), set()),
    "akamai-staging-leaves-production-stale": (
        PurgeCall("akamai", "/ccu/v3/delete/tag/staging", {"objects": ["articles"]}),
        ALL_OBJECTS,
    ),
}


@pytest.mark.parametrize(("call", "stale_after"), list(PURGE_KINDS.values()), ids=list(PURGE_KINDS))
def test_each_purge_kind_invalidates_exactly_what_it_covers(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock, call: PurgeCall, stale_after: set[tuple[str, str]]
) -> None:
    # Given every object cached, then republished at the origin
    edge = edge_for(call.provider, origin, clock, cdn)
    fill(edge)
    republish(origin)
    # When one purge is accepted and its completion time has passed
    purge(cdn, call)
    clock.advance(5)
    # Then exactly what it covers is fresh; the rest is still the stale copy
    assert still_stale(edge) == stale_after


def test_a_medianova_wildcard_job_is_pending_then_completed_and_the_edge_follows(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given a Medianova edge with everything cached and republished (jobs complete after 30 s)
    edge = edge_for("medianova", origin, clock, cdn)
    fill(edge)
    republish(origin)
    listing = cdn.endpoint("medianova") + MN_PURGE
    headers = {"Authorization": f"Bearer {MN_TOKEN}"}
    # When a job purges /articles/*
    created = purge(cdn, PurgeCall("medianova", MN_PURGE, {"resource_uuid": MN_RESOURCE, "file_path": ["/articles/*"]}))
    job = created.json()["data"]
    clock.advance(29)
    # Then until the delay has passed the job is pending and the articles are stale
    pending = httpx.get(listing, params={"page": 1, "limit": 10, "opID": job["opID"]}, headers=headers).json()
    assert [job["status"] for job in pending["data"]] == ["pending"]
    assert still_stale(edge) == ALL_OBJECTS
    assert len(edge.pending()) == 1
    # And once it has, the job is completed and the articles of every host are fresh
    clock.advance(1)
    done = httpx.get(listing, params={"page": 1, "limit": 10, "opID": job["opID"]}, headers=headers).json()
    assert [job["status"] for job in done["data"]] == ["completed"]
    assert still_stale(edge) == {(WWW, "/images/logo.png")}
    assert edge.pending() == []


def test_an_akamai_purge_takes_effect_after_its_estimated_seconds(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given an Akamai edge with everything cached and republished
    edge = edge_for("akamai", origin, clock, cdn)
    fill(edge)
    republish(origin)
    # When a URL is deleted on production
    accepted = purge(
        cdn, PurgeCall("akamai", "/ccu/v3/delete/url/production", {"objects": [f"https://{WWW}/articles/b.html"]})
    )
    estimated = accepted.json()["estimatedSeconds"]
    # Then it is stale until estimatedSeconds have passed, fresh from then on
    assert estimated == 5
    clock.advance(estimated - 0.5)
    assert (WWW, "/articles/b.html") in still_stale(edge)
    clock.advance(0.5)
    assert still_stale(edge) == ALL_OBJECTS - {(WWW, "/articles/b.html")}


@pytest.mark.parametrize(
    "call",
    [
        PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge/articles", headers={"Fastly-Soft-Purge": "1"}),
        PurgeCall("akamai", "/ccu/v3/invalidate/tag/production", {"objects": ["articles"]}),
    ],
    ids=["fastly-soft-key", "akamai-invalidate"],
)
def test_a_soft_purge_marks_stale_and_the_next_request_revalidates(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock, call: PurgeCall
) -> None:
    # Given two articles cached; only b changes at the origin
    edge = edge_for(call.provider, origin, clock, cdn)
    fill(edge)
    clock.advance(60)
    origin.put("articles/b.html", b"v2 b", tags=("article-b", "articles"))
    # When both are soft-purged by their shared tag
    purge(cdn, call)
    clock.advance(5)
    # Then both copies are kept but marked stale
    kept = [edge.cached(WWW, p) for p in ("/articles/a.html", "/articles/b.html")]
    assert all(copy is not None and copy.stale for copy in kept)
    # And the next request revalidates: the unchanged one is confirmed, the changed one replaced
    unchanged, changed = edge.get(WWW, "/articles/a.html"), edge.get(WWW, "/articles/b.html")
    assert (unchanged.cache, unchanged.headers["Age"], unchanged.body) == (
        CacheStatus.REVALIDATED,
        "0",
        b"v1 /articles/a.html",
    )
    assert (changed.cache, changed.body) == (CacheStatus.MISS, b"v2 b")
    assert edge.get(WWW, "/articles/a.html").cache is CacheStatus.HIT


def test_a_silently_failed_purge_is_accepted_and_never_takes_effect(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given a Cloudflare edge whose next purge will silently do nothing
    edge = edge_for("cloudflare", origin, clock, cdn)
    fill(edge)
    republish(origin)
    edge.inject(EdgeFault.SILENT)
    # When the purge is accepted (200, success) and any amount of time passes
    answer = purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"purge_everything": True}))
    clock.advance(86_400)
    # Then everything is still stale
    assert answer.json()["success"] is True
    assert still_stale(edge) == ALL_OBJECTS
    assert [purge.fault for purge in edge.applied] == [EdgeFault.SILENT]
    # And purging again, now without a fault, fixes it
    purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"purge_everything": True}))
    assert still_stale(edge) == set()


def test_a_fault_aimed_at_one_page_spares_purges_of_other_pages_whatever_their_order(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given a Cloudflare edge whose next purge covering www's /articles/a.html will silently do nothing
    edge = edge_for("cloudflare", origin, clock, cdn)
    fill(edge)
    republish(origin)
    edge.inject(EdgeFault.SILENT, covering=(WWW, "/articles/a.html"))
    # When purges of other pages arrive first, then the one covering it (by tag), then another covering it
    purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"files": [f"https://{WWW}/images/logo.png"]}))
    purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"tags": ["article-b"]}))
    purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"tags": ["article-a"]}))
    # Then only the purge covering the page failed: the other pages are fresh, the page (and its twin on
    # static, which the same tag purge covered) still stale
    assert still_stale(edge) == {(WWW, "/articles/a.html"), (STATIC, "/articles/a.html")}
    assert [purge.fault for purge in edge.applied] == [None, None, EdgeFault.SILENT]
    # And the next purge covering it takes effect: the fault was used up
    purge(cdn, PurgeCall("cloudflare", CF_PURGE, {"files": [f"https://{WWW}/articles/a.html"]}))
    assert still_stale(edge) == {(STATIC, "/articles/a.html")}


def test_a_shield_refill_puts_the_stale_copy_back_right_after_the_purge(
    cdn: FakeCDN, origin: MemoryOrigin, clock: ManualClock
) -> None:
    # Given a Fastly edge whose next purge races a shield still holding the old copy
    edge = edge_for("fastly", origin, clock, cdn)
    with serving_edge(edge) as server:
        before = view(server, f"https://{WWW}/articles/a.html")
        republish(origin)
        clock.advance(300)
        edge.inject(EdgeFault.SHIELD_REFILL)
        # When the key is purged
        purge(cdn, PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge/article-a"))
        after = view(server, f"https://{WWW}/articles/a.html")
        # Then the old copy is served again, looking freshly cached (Age 0), the same ETag as before the purge
        assert (after.content, after.headers["ETag"], after.headers["Age"]) == (
            before.content,
            before.headers["ETag"],
            "0",
        )
        # And purging again (Fastly's advice: ~2 s later) finally evicts it
        clock.advance(2)
        purge(cdn, PurgeCall("fastly", f"/service/{FASTLY_SERVICE}/purge/article-a"))
        again = view(server, f"https://{WWW}/articles/a.html")
    assert again.content == b"v2 /articles/a.html"


def test_cloudfront_items_read_as_paths_prefixes_and_case_insensitive_tags() -> None:
    read = scopes("cloudfront", ["path:/a.html", "path:/images/*", "path:#Article-A"])
    assert [scope.kind for scope in read] == [ScopeKind.PATH, ScopeKind.PREFIX, ScopeKind.KEY]
    assert read[1].covers(WWW, "/images/x/y.png", ())
    assert read[2].covers(WWW, "/a.html", ("article-a",))
    assert not Scope(ScopeKind.KEY, "Article-A").covers(WWW, "/a.html", ("article-a",))


@pytest.mark.parametrize(
    ("provider", "described"), [("fastly", "cpcode:1 (hard)"), ("bunny-unknown", "all"), ("fastly", "url:/nohost")]
)
def test_a_purged_target_the_edge_cannot_read_is_an_error_not_a_guess(provider: str, described: str) -> None:
    with pytest.raises(UnknownTargetError, match=r"provider|purged"):
        scopes(provider, [described])


class UnreachableOrigin:
    def fetch(self, host: str, path: str) -> OriginObject | None:
        raise OriginError("s3://bucket/a.html: connection refused")


def test_an_origin_failure_is_a_502_and_nothing_is_cached(clock: ManualClock) -> None:
    edge = Edge("fastly", UnreachableOrigin(), clock)
    answer = edge.get(WWW, "/a.html")
    assert (answer.status, answer.body) == (502, b"origin error: s3://bucket/a.html: connection refused")
    assert edge.cached(WWW, "/a.html") is None


def test_the_edge_server_stops_answering_after_max_requests(origin: MemoryOrigin, clock: ManualClock) -> None:
    with EdgeServer(Edge("fastly", origin, clock), max_requests=1) as server:
        assert view(server, f"https://{WWW}/articles/a.html").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            view(server, f"https://{WWW}/articles/a.html")
