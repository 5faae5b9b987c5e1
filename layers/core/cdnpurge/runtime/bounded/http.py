"""The one httpx client factory of the runtime: a call ends by its deadline, in total, not per read.

httpx bounds each network operation (connect, each read, each write) by its timeout, so an edge that drips
its response head one byte just inside the read timeout held a probe with `timeout_seconds: 1` for 19 s.
Here the bound is structural: the connection pool's network backend (`_BoundedBackend`) gives connect, TLS
and every read and write at most the time left to the call's end (`cdnpurge.runtime.bounded.current_call`)
and raises httpcore's own timeout past it, which httpx reports as `httpx.TimeoutException`. However the
answer arrives, the call ends by then. `BoundedTransport` refuses a request made outside `bounded_call`
and cuts the pool wait too; it also wraps a transport a test passes in (a `MockTransport`, say), so the
same refusal holds there.

Known limit: the host name is resolved by the system resolver inside `connect`, which has no timeout of
its own (Lambda's resolver answers locally).
"""

from __future__ import annotations

import typing

import httpcore
import httpx

from cdnpurge.runtime.bounded import current_call

_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


def bounded_http_client(
    *,
    timeout: float,
    retries: int = 0,
    transport: httpx.BaseTransport | None = None,
    follow_redirects: bool = False,
    headers: typing.Mapping[str, str] | None = None,
) -> httpx.Client:
    """An httpx client every call of which must run inside `bounded_call`, and ends by its deadline.

    `timeout` bounds each operation as usual (and is cut further to the call's time left); `retries`
    are connection retries; `transport` (tests) replaces the network, keeping the refusal and the cut
    timeouts. Environment proxies are ignored (`trust_env=False`): a proxy transport would bypass the bound.
    """
    inner = transport if transport is not None else _NetworkTransport(retries=retries)
    return httpx.Client(
        timeout=timeout,
        transport=BoundedTransport(inner),
        follow_redirects=follow_redirects,
        headers=headers,
        trust_env=False,
    )


class BoundedTransport(httpx.BaseTransport):
    """Refuses a request made outside `bounded_call`, and cuts its pool/connect/read/write timeouts to the
    time left (the network backend below cuts every later read and write again, as time passes)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = current_call(f"{request.method} {request.url.host}")
        left = call.remaining()
        if left <= 0:
            raise httpx.ConnectTimeout("not started: past the call's deadline", request=request)
        asked = request.extensions.get("timeout", {})
        request.extensions["timeout"] = {key: _cut(asked.get(key), left) for key in _TIMEOUT_KEYS}
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _NetworkTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool whose sockets are bounded by the call's deadline."""

    def __init__(self, *, retries: int) -> None:
        super().__init__(retries=retries)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), retries=retries, network_backend=_BoundedBackend()
        )


def _cut(timeout: float | None, left: float) -> float:
    return left if timeout is None else min(timeout, left)


def _left(error: type[Exception], what: str) -> float:
    """The time left to the current call's end, or `error` (an httpcore timeout) when none is."""
    left = current_call(what).remaining()
    if left <= 0:
        raise error(f"{what}: past the call's deadline")
    return left


class _BoundedStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, _left(httpcore.ReadTimeout, "read")))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cut(timeout, _left(httpcore.WriteTimeout, "write")))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: typing.Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _left(httpcore.ConnectTimeout, "TLS handshake")
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, _cut(timeout, left)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every connect, read, write and retry pause bounded by the call's end."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(httpcore.ConnectTimeout, "connect")
        return _BoundedStream(self._inner.connect_tcp(host, port, _cut(timeout, left), local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _left(httpcore.ConnectTimeout, "connect")
        return _BoundedStream(self._inner.connect_unix_socket(path, _cut(timeout, left), socket_options))

    def sleep(self, seconds: float) -> None:
        if seconds >= _left(httpcore.ConnectTimeout, "connection retry"):
            raise httpcore.ConnectTimeout("connection retry: past the call's deadline")
        self._inner.sleep(seconds)
