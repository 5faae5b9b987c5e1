"""A naive per-event purger, as common S3-trigger scripts do it: one provider call per changed object.

Model (what such a Lambda function does when S3 invokes it once per object):

- every event is handled on its own by one of `concurrency` parallel invocations, as fast as they go,
  with no pacing, no batching and no deduplication: one call per target (a surrogate key, a URL, a path);
- any failed call (a 429 included) fails the invocation; Lambda's asynchronous retry policy runs it
  twice more (about 1 and 2 minutes later in AWS; `retry_delays`, scaled down like the rate limits), which
  calls every target of the event again; after the third failure the event is dropped;
- CloudFront calls go through a default boto3 client (whose legacy retry mode retries `Throttling` a few
  times by itself), the HTTP APIs through a plain `httpx` client, as such scripts do.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import boto3
import httpx

from bench.cdn_host import (
    DISTRIBUTION_ID,
    FASTLY_SERVICE,
    FASTLY_TOKEN,
    MEDIANOVA_ORG,
    MEDIANOVA_RESOURCE,
    MEDIANOVA_TOKEN,
)

Call = tuple[str, str]  # (kind, value): ("key", "asset-1"), ("url", "www.example.com/a"), ("path", "/a")


@dataclass
class NaiveResult:
    events: int
    dropped_events: int  # failed three times
    invocations: int
    wall: float


@dataclass(order=True)
class _Work:
    ready: float
    order: int
    calls: Sequence[Call] = field(compare=False)
    attempt: int = field(compare=False, default=1)


class NaivePurger:
    def __init__(
        self,
        provider: str,
        endpoint: str,
        *,
        concurrency: int = 8,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.retry_delays = retry_delays
        self._local = threading.local()
        self._references = itertools.count()

    def run(self, events: Sequence[Sequence[Call]]) -> NaiveResult:
        """Handle every event (a list of calls); returns when each succeeded or was dropped."""
        order = itertools.count()
        heap = [_Work(0.0, next(order), calls) for calls in events]
        heapq.heapify(heap)
        condition = threading.Condition()
        busy = 0
        dropped = invocations = 0
        started = time.monotonic()

        def worker() -> None:
            nonlocal busy, dropped, invocations
            while True:
                with condition:
                    while True:
                        if heap and heap[0].ready <= time.monotonic():
                            work = heapq.heappop(heap)
                            busy += 1
                            break
                        if not heap and busy == 0:
                            condition.notify_all()
                            return
                        timeout = heap[0].ready - time.monotonic() if heap else None
                        condition.wait(timeout)
                ok = self._invoke(work.calls)
                with condition:
                    busy -= 1
                    invocations += 1
                    if not ok:
                        if work.attempt <= len(self.retry_delays):
                            delay = self.retry_delays[work.attempt - 1]
                            retry = _Work(time.monotonic() + delay, next(order), work.calls, work.attempt + 1)
                            heapq.heappush(heap, retry)
                        else:
                            dropped += 1
                    condition.notify_all()

        threads = [threading.Thread(target=worker, name=f"naive-{i}") for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return NaiveResult(len(events), dropped, invocations, time.monotonic() - started)

    # -- one invocation ------------------------------------------------------------------------------

    def _invoke(self, calls: Sequence[Call]) -> bool:
        try:
            for kind, value in calls:
                self._call(kind, value)
        except Exception:  # the script raises; Lambda records a failed invocation
            return False
        return True

    def _call(self, kind: str, value: str) -> None:
        if self.provider == "cloudfront":
            self._cloudfront().create_invalidation(
                DistributionId=DISTRIBUTION_ID,
                InvalidationBatch={
                    "Paths": {"Quantity": 1, "Items": [value]},
                    "CallerReference": f"naive-{time.time_ns()}-{next(self._references)}",
                },
            )
            return
        send: Callable[[], httpx.Response]
        client = self._http()
        if self.provider == "fastly" and kind == "key":
            url = f"{self.endpoint}/service/{FASTLY_SERVICE}/purge/{quote(value, safe='')}"
            send = lambda: client.post(url, headers={"Fastly-Key": FASTLY_TOKEN})  # noqa: E731
        elif self.provider == "fastly" and kind == "url":
            url = f"{self.endpoint}/purge/{value}"
            send = lambda: client.post(url, headers={"Fastly-Key": FASTLY_TOKEN})  # noqa: E731
        elif self.provider == "medianova":
            url = f"{self.endpoint}/cdn/{MEDIANOVA_ORG}/job/{MEDIANOVA_RESOURCE}/purge"
            body = {"resource_uuid": MEDIANOVA_RESOURCE, "file_path": [value]}
            headers = {"Authorization": f"Bearer {MEDIANOVA_TOKEN}"}
            send = lambda: client.post(url, json=body, headers=headers)  # noqa: E731
        else:
            raise ValueError(f"naive purger: no {kind} purge for {self.provider}")
        send().raise_for_status()

    def _http(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "http", None)
        if client is None:
            client = self._local.http = httpx.Client(timeout=10)
        return client

    def _cloudfront(self) -> Any:
        client = getattr(self._local, "cloudfront", None)
        if client is None:
            client = self._local.cloudfront = boto3.session.Session().client(
                "cloudfront", endpoint_url=self.endpoint, region_name="us-east-1"
            )
        return client
