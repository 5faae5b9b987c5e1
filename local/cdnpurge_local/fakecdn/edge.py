"""A caching edge in front of a real origin: the fake CDN as viewers see it, stale until a purge lands.

The purge fakes (`FakeCDN`) answer the purge APIs; this edge is what those purges act on. It serves the
public hostnames on a loopback port (requests carry `Host`), caches every object it fetches from its
origin (the S3 bucket on moto, or `MemoryOrigin`), and keeps serving the cached copy, with `ETag`,
`Last-Modified`, `Age` and the provider's tag header, until a purge covering it takes effect:

- it learns purges from the fake it is attached to (`listen(cdn)`), or from a poller (CloudFront on moto,
  see `cloudfront_watch`); each purge takes effect `settles_after` seconds after it was accepted, as the
  provider's behaviour says (near-instant for Fastly and Cloudflare, a job delay for Medianova and
  CloudFront, Akamai's `estimatedSeconds`), measured on the injected clock;
- a hard purge evicts, a soft purge marks the copy stale: the next request revalidates it at the origin;
- two faults, injected for the next N purges (or the next N that cover one cached page, whatever the order
  concurrent purges arrive in): `SILENT` (accepted, never takes effect: the failure no purge API reports)
  and `SHIELD_REFILL` (takes effect, then a shield refills the edge with the copy it still held, so the
  stale object is back, with a fresh `Age`, right after the purge).

Purges are applied lazily, before each request is answered, in the order they take effect; the result
is the same as applying them on time, because nothing is served in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import format_datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from cdnpurge_local.fakecdn.clock import Clock
from cdnpurge_local.fakecdn.loopback import LoopbackHTTP
from cdnpurge_local.fakecdn.origin import Origin, OriginError, OriginObject
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.fakecdn.targets import Scope, scopes

# The response header each provider's edge reports an object's tags in, and the separator it uses.
# CloudFront forwards the header named by the distribution's `CacheTagConfig` (S3: x-amz-meta-cache-tag).
TAG_HEADERS: dict[str, tuple[str, str]] = {
    "fastly": ("Surrogate-Key", " "),
    "cloudflare": ("Cache-Tag", ","),
    "akamai": ("Edge-Cache-Tag", ","),
    "cloudfront": ("x-amz-meta-cache-tag", ","),
}


class EdgeFault(StrEnum):
    SILENT = "silent"  # the purge is accepted and never takes effect
    SHIELD_REFILL = "shield-refill"  # the purge takes effect, then the shield puts the stale copy back


class CacheStatus(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    REVALIDATED = "REVALIDATED"  # a soft-purged copy the origin confirmed unchanged


@dataclass
class CachedCopy:
    host: str
    path: str
    object: OriginObject
    cached_at: float
    stale: bool = False  # soft-purged: revalidate before serving


@dataclass(frozen=True)
class PendingPurge:
    """An accepted purge and when it takes effect; `fault` says how it will misbehave, if it will."""

    provider: str
    scopes: tuple[Scope, ...]
    accepted_at: float
    takes_effect_at: float
    fault: EdgeFault | None = None


@dataclass(frozen=True)
class EdgeResponse:
    status: int
    body: bytes
    headers: dict[str, str]
    cache: CacheStatus | None = None


@dataclass
class _InjectedFault:
    fault: EdgeFault
    count: int
    covering: tuple[str, str] | None  # (host, path): only purges covering that cached page misbehave


@dataclass
class Edge:
    """One provider's edge in front of `origin`. `hosts` limits the public hostnames it answers for
    (any when empty); `cp_code` is the Akamai CP code its objects are under."""

    provider: str
    origin: Origin
    clock: Clock = time.monotonic
    hosts: frozenset[str] = frozenset()
    cp_code: str | None = None
    tag_header: tuple[str, str] | None = None  # defaults to TAG_HEADERS[provider]
    applied: list[PendingPurge] = field(default_factory=list)  # purges that took effect (or were dropped)
    _cache: dict[tuple[str, str], CachedCopy] = field(default_factory=dict)
    _pending: list[PendingPurge] = field(default_factory=list)
    _faults: list[_InjectedFault] = field(default_factory=list)
    _pollers: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.hosts = frozenset(host.lower() for host in self.hosts)
        if self.tag_header is None:
            self.tag_header = TAG_HEADERS.get(self.provider)

    # -- learning purges ---------------------------------------------------------------------------

    def listen(self, cdn: FakeCDN) -> None:
        """Learn every purge `cdn` accepts for this edge's provider."""
        cdn.subscribe(self._on_purge)

    def add_poller(self, poll: Callable[[], None]) -> None:
        """Call `poll` before answering each request (a source of purges that must be asked, e.g. moto)."""
        with self._lock:
            self._pollers.append(poll)

    def _on_purge(self, provider: str, purged: tuple[str, ...], settles_after: float) -> None:
        if provider == self.provider:
            self.accept(scopes(provider, purged), settles_after)

    def accept(self, purged: Iterable[Scope], settles_after: float) -> PendingPurge:
        """Record a purge accepted now that takes effect `settles_after` seconds later."""
        purged_scopes = tuple(purged)
        with self._lock:
            now = self.clock()
            fault = self._take_fault(purged_scopes)
            purge = PendingPurge(self.provider, purged_scopes, now, now + max(0.0, settles_after), fault)
            self._pending.append(purge)
            return purge

    def inject(self, fault: EdgeFault, count: int = 1, *, covering: tuple[str, str] | None = None) -> None:
        """Make the next `count` purges this edge learns misbehave as `fault` says; with `covering`
        (host, path), only the next `count` that cover that cached page, so that which purges fail does not
        depend on the order concurrent purges arrive in."""
        if count < 1:
            raise ValueError(f"inject needs a count of at least 1, got {count}")
        target = None if covering is None else (covering[0].lower(), covering[1])
        with self._lock:
            self._faults.append(_InjectedFault(fault, count, target))

    def _take_fault(self, purged: tuple[Scope, ...]) -> EdgeFault | None:
        """The first injected fault this purge consumes (under the lock), if any."""
        for injected in self._faults:
            if injected.covering is not None:
                copy = self._cache.get(injected.covering)
                if copy is None or not any(
                    scope.covers(copy.host, copy.path, copy.object.tags, self.cp_code) for scope in purged
                ):
                    continue
            injected.count -= 1
            if injected.count <= 0:
                self._faults.remove(injected)
            return injected.fault
        return None

    def pending(self) -> list[PendingPurge]:
        """Purges accepted that have not taken effect yet (as of the clock now)."""
        with self._lock:
            self._poll()
            now = self.clock()
            return [purge for purge in self._pending if purge.takes_effect_at > now]

    # -- serving -----------------------------------------------------------------------------------

    def cached(self, host: str, path: str) -> CachedCopy | None:
        """The copy a request for `host` + `path` would be served from now, without fetching anything."""
        with self._lock:
            self._poll()
            self._apply_due()
            return self._cache.get((host.lower(), path))

    def get(self, host: str, path: str, *, if_none_match: str | None = None) -> EdgeResponse:
        """Answer `GET path` on `host` (path percent-encoded, query included) as the edge does."""
        host = host.lower()
        if self.hosts and host not in self.hosts:
            return EdgeResponse(404, f"no site {host!r} on this edge".encode(), {"Content-Type": "text/plain"})
        with self._lock:
            self._poll()
            self._apply_due()
            now = self.clock()
            copy = self._cache.get((host, path))
            if copy is not None and not copy.stale:
                status = CacheStatus.HIT
            else:
                try:
                    current = self.origin.fetch(host, path)
                except OriginError as exc:
                    return EdgeResponse(502, f"origin error: {exc}".encode(), {"Content-Type": "text/plain"})
                if current is None:
                    self._cache.pop((host, path), None)
                    return EdgeResponse(404, b"Not Found", {"Content-Type": "text/plain", "X-Cache": "MISS"})
                unchanged = copy is not None and copy.object.etag == current.etag
                status = CacheStatus.REVALIDATED if unchanged else CacheStatus.MISS
                copy = CachedCopy(host, path, current, now)
                self._cache[(host, path)] = copy
            return self._answer(copy, status, now, if_none_match)

    def _answer(self, copy: CachedCopy, status: CacheStatus, now: float, if_none_match: str | None) -> EdgeResponse:
        served = copy.object
        headers = {
            "ETag": served.etag,
            "Last-Modified": format_datetime(served.last_modified, usegmt=True),
            "Age": str(int(now - copy.cached_at)),
            "Content-Type": served.content_type,
            "X-Cache": status.value,
        }
        if self.tag_header is not None and served.tags:
            name, separator = self.tag_header
            headers[name] = separator.join(served.tags)
        if if_none_match is not None and served.etag in {tag.strip() for tag in if_none_match.split(",")}:
            return EdgeResponse(304, b"", headers, status)
        return EdgeResponse(200, served.body, headers, status)

    # -- applying purges (under the lock) --------------------------------------------------------------

    def _poll(self) -> None:
        for poll in self._pollers:
            poll()

    def _apply_due(self) -> None:
        now = self.clock()
        due = sorted((p for p in self._pending if p.takes_effect_at <= now), key=lambda p: p.takes_effect_at)
        for purge in due:
            self._pending.remove(purge)
            self.applied.append(purge)
            if purge.fault is EdgeFault.SILENT:
                continue
            for key, copy in list(self._cache.items()):
                covering = [s for s in purge.scopes if s.covers(copy.host, copy.path, copy.object.tags, self.cp_code)]
                if not covering:
                    continue
                if purge.fault is EdgeFault.SHIELD_REFILL:
                    # The shield still held the old object and refilled the edge right after the purge.
                    self._cache[key] = CachedCopy(copy.host, copy.path, copy.object, purge.takes_effect_at)
                elif all(scope.soft for scope in covering):
                    copy.stale = True
                else:
                    del self._cache[key]


# -- HTTP ------------------------------------------------------------------------------------------


class EdgeServer:
    """The edge on `127.0.0.1:<free port>`: `GET`/`HEAD` any public path with the site's `Host` header.

    `with EdgeServer(edge) as server: httpx.get(*server.address("https://www.example.com/a"))`. The
    request loop is bounded: after `max_requests` the server closes connections without answering.
    """

    def __init__(self, edge: Edge, *, max_requests: int = 100_000) -> None:
        self.edge = edge
        self.max_requests = max_requests
        self.requests = 0
        self._count_lock = threading.Lock()
        self._http: LoopbackHTTP | None = None

    def count_request(self) -> bool:
        """Count one request; False once `max_requests` have been answered (then the server stays silent)."""
        with self._count_lock:
            self.requests += 1
            return self.requests <= self.max_requests

    @property
    def endpoint(self) -> str:
        if self._http is None:
            raise RuntimeError("the edge server is not running")
        return self._http.endpoint

    def address(self, public_url: str) -> tuple[str, dict[str, str]]:
        """The loopback URL and headers that ask this edge for `public_url` (its host goes in `Host`)."""
        parts = urlsplit(public_url)
        if not parts.hostname:
            raise ValueError(f"{public_url!r} is not an absolute URL")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return f"{self.endpoint}{path}", {"Host": parts.hostname}

    def __enter__(self) -> EdgeServer:
        server = self

        class Handler(_EdgeHandler):
            edge_server = server

        self._http = LoopbackHTTP(Handler, "fake-edge")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None


class _EdgeHandler(BaseHTTPRequestHandler):
    edge_server: EdgeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the edge's cache and `applied` purges are the record."""

    def _answer(self, *, with_body: bool) -> None:
        server = self.edge_server
        if not server.count_request():
            self.close_connection = True
            return
        host = (self.headers.get("Host") or "").partition(":")[0]
        if not host:
            response = EdgeResponse(400, b"a Host header naming the site is required", {"Content-Type": "text/plain"})
        else:
            response = server.edge.get(host, self.path, if_none_match=self.headers.get("If-None-Match"))
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        try:
            self.end_headers()
            if with_body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)


@contextmanager
def serving_edge(edge: Edge, cdn: FakeCDN | None = None) -> Iterator[EdgeServer]:
    """Serve `edge` on loopback, learning purges from `cdn` when given."""
    if cdn is not None:
        edge.listen(cdn)
    with EdgeServer(edge) as server:
        yield server
