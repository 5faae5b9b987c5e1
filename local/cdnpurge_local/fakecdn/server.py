"""One fake-CDN HTTP server on 127.0.0.1 serving every provider's routes under `/<provider>/...`.

Each provider's API lives in one `Behaviour` (auth, request shapes, documented limits and errors).
The server adds what every behaviour shares: a record of what was received (credentials redacted), a
token-bucket rate limit that answers with the provider's own 429, and injected faults (status codes,
slow responses, dropped connections) so tests, the demo and the benchmark can show real behaviour.
Request loops are bounded: the server stops answering after `max_requests` and stops on exit.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cdnpurge_local.fakecdn.loopback import LoopbackHTTP

REDACTED = "<redacted>"
# The longest a `Fault.release` holds an answer, so a test that never releases cannot hang the server.
HOLD_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str  # below the provider prefix, percent-encoding kept
    query: Mapping[str, list[str]]
    raw_query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class FakeResponse:
    status: int
    body: Any = None  # JSON-serialised, except `bytes`, sent as they are (XML APIs such as CloudFront's)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class Received:
    """What the fake saw; auth headers are replaced by `<redacted>` so records are safe to print."""

    provider: str
    method: str
    path: str  # with the query string, if any
    headers: Mapping[str, str]
    body: Any
    status: int
    purged: tuple[str, ...]  # what the behaviour purged, e.g. ("key:article-1", "url:https://...")
    at: float = 0.0  # time.monotonic() when it was answered
    throttled: bool = False  # answered by the rate limit (whatever status the provider uses for it)


@dataclass
class Fault:
    status: int | None = None  # answer with this status (and the provider's own error/429 headers)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without answering
    count: int = 1
    # Answer with these bytes as `text/html` and `status` (default 200) instead of the provider's own body:
    # what a proxy or a maintenance page in front of the API sends.
    body: bytes | None = None
    # Hold the answer until this event is set (at most HOLD_LIMIT_SECONDS): a client's own timeout is tested
    # by releasing after it gave up, with no sleep and no duration measured in the test.
    release: threading.Event | None = None
    # Headers added to (or replacing those of) whatever the answer is: hostile rate-limit or retry numbers.
    headers: Mapping[str, str] | None = None


# Told of every accepted purge: (provider, what it purged, seconds until it takes effect at the edges).
PurgeListener = Callable[[str, tuple[str, ...], float], None]


class Behaviour:
    """Base for one provider's API: subclasses implement `route()` and the auth check."""

    name: str = ""
    auth_headers: tuple[str, ...] = ()

    def __init__(self, *, rate_per_second: float | None = None, burst: int = 1) -> None:
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.purged: list[str] = []

    def authorized(self, request: FakeRequest) -> bool:
        raise NotImplementedError

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        """Answer a well-authorised request; also return the targets it purged."""
        raise NotImplementedError

    def settles_after(self, response: FakeResponse) -> float:
        """Seconds from accepting a purge until it takes effect at the edges.

        Near-instant by default (Fastly ~150 ms, Cloudflare < 150 ms p50); providers with jobs override it.
        """
        return 0.0

    def unauthorized(self) -> FakeResponse:
        return FakeResponse(401, {"msg": "Provided credentials are missing or invalid"})

    def throttled(self, retry_after: float) -> FakeResponse:
        return FakeResponse(429, {"msg": "Too many requests"}, {"Retry-After": str(max(1, round(retry_after)))})

    def error(self, status: int) -> FakeResponse:
        return FakeResponse(status, {"msg": f"injected {status}"})

    def take_token(self) -> float:
        """0 if the call may proceed, else the seconds until a token is available."""
        if self.rate_per_second is None:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_second)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate_per_second

    def refill(self) -> None:
        """Start the rate limit afresh (a full burst), e.g. between benchmark runs."""
        with self._lock:
            self._tokens = float(self.burst)
            self._updated = time.monotonic()


class FakeCDN:
    """The server: `with FakeCDN([FastlyBehaviour(...)]) as cdn: cdn.endpoint("fastly")`."""

    def __init__(self, behaviours: list[Behaviour], *, max_requests: int = 200_000) -> None:
        self.behaviours = {behaviour.name: behaviour for behaviour in behaviours}
        self.max_requests = max_requests
        self.received: list[Received] = []
        self.throttled = 0
        self._faults: dict[str, list[Fault]] = {}
        self._purge_listeners: list[PurgeListener] = []
        self._lock = threading.Lock()
        self._http: LoopbackHTTP | None = None

    # -- control ------------------------------------------------------------------------------------

    def endpoint(self, provider: str) -> str:
        assert self._http is not None, "server not started"
        return f"{self._http.endpoint}/{provider}"

    def inject(self, provider: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(provider, []).append(fault)

    def subscribe(self, listener: PurgeListener) -> None:
        """Tell `listener` of every purge accepted from now on (the fake edge learns purges this way)."""
        with self._lock:
            self._purge_listeners.append(listener)

    def received_by(self, provider: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.provider == provider]

    def purged(self, provider: str) -> list[str]:
        return [target for r in self.received_by(provider) for target in r.purged]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._faults.clear()
            self.throttled = 0

    def __enter__(self) -> FakeCDN:
        fake = self

        class Handler(_Handler):
            cdn = fake

        self._http = LoopbackHTTP(Handler, "fake-cdn")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    # -- request handling (called from server threads) -----------------------------------------------

    def _next_fault(self, provider: str) -> Fault | None:
        with self._lock:
            faults = self._faults.get(provider)
            if not faults:
                return None
            fault = faults[0]
            fault.count -= 1
            if fault.count <= 0:
                faults.pop(0)
            return fault

    def dispatch(self, request: FakeRequest, provider: str) -> FakeResponse | None:
        """Return the response, or None to drop the connection."""
        behaviour = self.behaviours.get(provider)
        if behaviour is None:
            return FakeResponse(404, {"msg": f"no fake provider {provider!r}"})
        purged: list[str] = []
        limited = False
        fault = self._next_fault(provider)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.release is not None:
            fault.release.wait(HOLD_LIMIT_SECONDS)
        if fault is not None and fault.drop:
            self._record(provider, request, 0, behaviour, [])
            return None
        if fault is not None and fault.body is not None:
            response = FakeResponse(fault.status or 200, fault.body, content_type="text/html")
        elif fault is not None and fault.status is not None:
            response = behaviour.throttled(1.0) if fault.status == 429 else behaviour.error(fault.status)
            limited = fault.status == 429
        elif not behaviour.authorized(request):
            response = behaviour.unauthorized()
        elif (wait := behaviour.take_token()) > 0:
            response = behaviour.throttled(wait)
            limited = True
        else:
            response, purged = behaviour.route(request)
        if fault is not None and fault.headers:
            response = replace(response, headers={**response.headers, **fault.headers})
        if response.status == 429 or limited:
            with self._lock:
                self.throttled += 1
        self._record(provider, request, response.status, behaviour, purged, throttled=response.status == 429 or limited)
        if purged:
            with self._lock:
                listeners = list(self._purge_listeners)
            for listener in listeners:
                listener(provider, tuple(purged), behaviour.settles_after(response))
        return response

    def _record(
        self,
        provider: str,
        request: FakeRequest,
        status: int,
        behaviour: Behaviour,
        purged: list[str],
        *,
        throttled: bool = False,
    ) -> None:
        headers = {
            name: (REDACTED if name in behaviour.auth_headers else value) for name, value in request.headers.items()
        }
        try:
            body: Any = request.json()
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        with self._lock:
            received = Received(
                provider, request.method, target, headers, body, status, tuple(purged), time.monotonic(), throttled
            )
            self.received.append(received)


class _Handler(BaseHTTPRequestHandler):
    cdn: FakeCDN
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits for the delayed ACK
    # (~40 ms) before the body arrives, capping any client at ~25 calls a second per connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; `FakeCDN.received` is the record."""

    def _handle(self) -> None:
        if len(self.cdn.received) >= self.cdn.max_requests:
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        provider, _, rest = parts.path.lstrip("/").partition("/")
        length = int(self.headers.get("Content-Length") or 0)
        request = FakeRequest(
            method=self.command,
            path="/" + rest,
            query=parse_qs(parts.query),
            raw_query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        response = self.cdn.dispatch(request, provider)
        if response is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test): as a real server, carry on

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@contextmanager
def serving(*behaviours: Behaviour) -> Iterator[FakeCDN]:
    with FakeCDN(list(behaviours)) as cdn:
        yield cdn
