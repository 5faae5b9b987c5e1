"""Probing the edge: ask a public URL what version it serves, never anything else.

Bounded on every side: only hosts on the provider's `verify.hosts` list, one timeout per probe for the whole
exchange (redirects included, however slowly the edge answers: `cdnpurge.runtime.bounded.http`) and never
past the check's deadline, redirects followed only within the same host (at most `MAX_REDIRECTS`), HEAD
only (no body is read), and the caller bounds how many probes a check makes. With `probe_endpoint` set (the
local fake edge) the request goes to that address with the public host in `Host`; otherwise to
`https://<host>`.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from cdnpurge.core.deadline import Deadline
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.http import bounded_http_client

MAX_REDIRECTS: Final = 3


class ProbeRefused(ValueError):
    """A URL outside the allow-list (or not absolute): never requested."""


class Probe(msgspec.Struct, frozen=True):
    """What the edge answered for one public URL."""

    url: str
    status: int | None = None
    version: str | None = None  # the version header's value as served
    age: str | None = None
    error: str | None = None  # no usable answer (timeout, reset, redirect to another host)


class Prober:
    """HEAD requests to allow-listed public URLs over one pooled client."""

    def __init__(
        self,
        *,
        hosts: frozenset[str],
        version_header: str,
        timeout_seconds: float,
        probe_endpoint: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.hosts = hosts
        self.version_header = version_header
        self.probe_endpoint = probe_endpoint
        self.timeout_seconds = timeout_seconds
        self._client = bounded_http_client(
            timeout=timeout_seconds,
            transport=transport,
            headers={"User-Agent": "cdnpurge-verify/1", "Cache-Control": "no-transform"},
        )
        self.probes = 0

    def close(self) -> None:
        self._client.close()

    def probe(self, url: str, deadline: Deadline) -> Probe:
        """Ask the edge for `url`, redirects within its host followed (any other is an error), all of it
        within `timeout_seconds` and before `deadline`; `OutOfTimeError` when it cannot start in time."""
        host = self._allowed_host(url)
        with bounded_call(deadline, self.timeout_seconds, what=f"probing {host}"):
            return self._follow(url, host)

    def _follow(self, url: str, host: str) -> Probe:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._request(current, host)
            except httpx.HTTPError as exc:
                return Probe(url, error=f"{type(exc).__name__}: {exc}"[:200])
            if not response.is_redirect:
                return Probe(
                    url,
                    status=response.status_code,
                    version=response.headers.get(self.version_header),
                    age=response.headers.get("Age"),
                )
            target = urljoin(current, response.headers.get("Location", ""))
            if (urlsplit(target).hostname or "").lower() != host:
                return Probe(url, status=response.status_code, error=f"redirects to another host: {target[:200]}")
            current = target
        return Probe(url, error=f"more than {MAX_REDIRECTS} redirects")

    def _allowed_host(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in self.hosts:
            raise ProbeRefused(f"{url!r} is not on an allow-listed host {sorted(self.hosts)}")
        return host

    def _request(self, url: str, host: str) -> httpx.Response:
        self.probes += 1
        if self.probe_endpoint is None:
            return self._client.head(url)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._client.head(self.probe_endpoint + path, headers={"Host": host})
