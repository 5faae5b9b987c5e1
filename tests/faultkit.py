"""A pipeline on a scripted Fastly API, for fault-boundary tests: any answer (status, headers, encodings,
bytes) a CDN or a proxy in front of it could send, without a server.

The adapter is the real `FastlyProvider` over a real `httpx.Client`; only the transport is scripted
(`httpx.MockTransport`), so everything httpx does to a request (URL limits, header encoding) and a response
(content decoding) happens as it does in production. `accounted` is the property every fault test asserts:
each SQS record of a batch is acknowledged with its work done, returned for redelivery, or failed with a
reason, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, MemoryLedger, SimulatedClock, config_from

from cdnpurge.core.config import Config
from cdnpurge.core.deadline import Deadline
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.purgers import build_purgers
from cdnpurge.runtime.report import BatchRun

Responder = Callable[[httpx.Request], httpx.Response | None]

FAULT_CONFIG = f"""
providers:
  - name: fastly
    kind: fastly
    service_id: {FASTLY_SERVICE}
    hosts: [www.example.com]
    credentials:
      token: {{env: FASTLY_API_TOKEN}}
rules:
  - match: "{{key*}}"
    paths: ["/{{key}}"]
allowed_hosts: [www.example.com]
"""


def fastly_answer(request: httpx.Request) -> httpx.Response:
    """What Fastly answers to a well-formed purge (URL, one key, bulk keys or purge-all)."""
    if request.url.path == f"/service/{FASTLY_SERVICE}/purge":
        keys = json.loads(request.content)["surrogate_keys"]
        return httpx.Response(200, json={key: f"id-{index}" for index, key in enumerate(keys)})
    return httpx.Response(200, json={"status": "ok", "id": "purge-1"})


@dataclass
class ScriptedCdn:
    """Answers with `respond(request)` when it returns a response, else as Fastly does; records every call."""

    respond: Responder = lambda request: None
    calls: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return self.respond(request) or fastly_answer(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle), follow_redirects=False)

    def purged_paths(self) -> list[str]:
        """The host-and-path of every URL purge call (`/purge/www.example.com/a` -> `www.example.com/a`)."""
        return [c.url.raw_path.decode().removeprefix("/purge/") for c in self.calls if c.url.path.startswith("/purge/")]


def run_scripted(
    event: Mapping[str, Any], cdn: ScriptedCdn, *, config: Config | None = None, token: str = FASTLY_TOKEN
) -> BatchRun:
    """One batch through every stage on the scripted CDN, built by the service's own factory (redaction
    included), with simulated time: retries and back-off cost no wall clock."""
    config = config or config_from(FAULT_CONFIG)
    clock = SimulatedClock()
    purgers = build_purgers(
        config.providers,
        environ={"FASTLY_API_TOKEN": token},
        clients={p.name: cdn.client() for p in config.providers},
        clock=clock,
        sleep=clock.sleep,
    )
    return run_batch(
        event,
        config=config,
        specs={name: p.spec for name, p in purgers.providers.items()},
        ledger=MemoryLedger(),
        executor=purgers.executor,
        deadline=Deadline.after(60, clock),
        redact=purgers.redact,
    )


def accounted(event: Mapping[str, Any], run: BatchRun) -> list[str]:
    """Problems with the batch's accounting (empty when every record is accounted for).

    Each SQS record is either failed (returned or dead-lettered) with at least one reason, or acknowledged
    with every (provider, change) it is owed purged now or before: never acknowledged with work undone.
    """
    problems = []
    failed = set(run.failures.sources)
    done = set(run.completed) | set(run.duplicates)
    for source in failed:
        if not run.failures.reasons.get(source):
            problems.append(f"{source}: failed without a reason")
    for record in event.get("Records", []):
        source = record["messageId"]
        if source in failed:
            continue
        changes = {c.id for c in run.decoded.changes if c.source_id == source}
        undone = [pair for pair in run.owed if pair[1] in changes and pair not in done]
        if undone:
            problems.append(f"{source}: acknowledged with {undone[:3]} not purged")
    return problems
