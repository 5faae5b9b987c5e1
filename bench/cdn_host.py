"""The fake CDN in a process of its own, so its request handling does not share a GIL with the purgers.

`CdnHost` starts `FakeCDN` (Fastly, Medianova and the benchmark's CloudFront, each rate-limited) in a
child process on 127.0.0.1 and talks to it over a pipe: endpoints, per-provider statistics, reset.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

FASTLY_TOKEN = "bench-fastly-token-not-real-0123456789"
FASTLY_SERVICE = "BenchService0123456789"
MEDIANOVA_TOKEN = "bench-medianova-token-not-real-0123456789"
MEDIANOVA_ORG = "bench-org"
MEDIANOVA_RESOURCE = "bench-resource"
DISTRIBUTION_ID = "EBENCHDIST0001"


@dataclass(frozen=True)
class Limit:
    """A fake provider's rate limit: `rate` calls a second, bursts of `burst`."""

    rate: float
    burst: int


@dataclass(frozen=True)
class ProviderStats:
    calls: int  # every request the provider received
    accepted: int  # 2xx
    throttled: int  # answered by the rate limit (429, or CloudFront's Throttling)
    other_errors: int
    purged: tuple[str, ...]  # what the behaviour recorded as purged, e.g. "key:asset-1 (hard)"
    first: float | None  # time.monotonic() of the first and last answer (same clock as the parent's)
    last: float | None
    arrivals: tuple[tuple[float, bool], ...] = ()  # per call: (time.monotonic() answered, throttled)


def _serve(connection: Connection, limits: dict[str, Limit]) -> None:  # runs in the child
    from bench.cloudfront_fake import CloudFrontBehaviour
    from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
    from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
    from cdnpurge_local.fakecdn.server import Behaviour, FakeCDN

    behaviours: list[Behaviour] = [
        FastlyBehaviour(
            token=FASTLY_TOKEN,
            service_id=FASTLY_SERVICE,
            rate_per_second=limits["fastly"].rate,
            burst=limits["fastly"].burst,
        ),
        MedianovaBehaviour(
            token=MEDIANOVA_TOKEN,
            organization_uuid=MEDIANOVA_ORG,
            resource_uuid=MEDIANOVA_RESOURCE,
            rate_per_second=limits["medianova"].rate,
            burst=limits["medianova"].burst,
        ),
        CloudFrontBehaviour(
            distribution_id=DISTRIBUTION_ID,
            rate_per_second=limits["cloudfront"].rate,
            burst=limits["cloudfront"].burst,
        ),
    ]
    with FakeCDN(behaviours, max_requests=10_000_000) as cdn:
        connection.send({name: cdn.endpoint(name) for name in cdn.behaviours})
        while True:
            command, argument = connection.recv()
            if command == "stop":
                break
            if command == "latency":  # (provider, seconds): every answer of `provider` that much later
                name, seconds = argument
                next(b for b in behaviours if b.name == name).latency_seconds = seconds
                connection.send(None)
            elif command == "reset":
                cdn.reset()
                for behaviour in behaviours:
                    behaviour.refill()
                connection.send(None)
            elif command == "stats":
                received = cdn.received_by(argument)
                statuses = Counter(r.status for r in received)
                accepted = sum(count for status, count in statuses.items() if 200 <= status < 300)
                throttled = sum(1 for r in received if r.throttled)
                connection.send(
                    ProviderStats(
                        calls=len(received),
                        accepted=accepted,
                        throttled=throttled,
                        other_errors=len(received) - accepted - throttled,
                        purged=tuple(target for r in received for target in r.purged),
                        first=received[0].at if received else None,
                        last=received[-1].at if received else None,
                        arrivals=tuple((r.at, r.throttled) for r in received),
                    )
                )


class CdnHost:
    """`with CdnHost(limits) as host: host.endpoints["fastly"]; host.stats("fastly"); host.reset()`."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self.limits = limits
        context = multiprocessing.get_context("spawn")
        self._parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, limits), name="bench-fake-cdn", daemon=True)
        self.endpoints: dict[str, str] = {}

    def __enter__(self) -> Self:
        self._process.start()
        self.endpoints = self._parent.recv()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._parent.send(("stop", None))
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)

    def reset(self) -> None:
        self._call("reset")

    def latency(self, provider: str, seconds: float) -> None:
        """Delay every answer of `provider` by `seconds` from now on (0: answer at once)."""
        self._call("latency", (provider, seconds))

    def stats(self, provider: str) -> ProviderStats:
        stats: ProviderStats = self._call("stats", provider)
        return stats

    def _call(self, command: str, argument: Any = None) -> Any:
        self._parent.send((command, argument))
        return self._parent.recv()
