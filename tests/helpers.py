"""Small builders shared by the test suites (no fixtures with side effects here).

The AWS event documents (S3, EventBridge, SNS, SQS) are built by `cdnpurge_local.event_builders`, shared
with the benchmark.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from cdnpurge.core.config import Config, parse_config
from cdnpurge.runtime.bounded.aws import aws_client
from cdnpurge_local.cfn import Evaluator, parameter_values
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.loopback import LoopbackHTTP
from cdnpurge_local.harness import Deployment, deployed
from cdnpurge_local.memory_ledger import MemoryLedger
from cdnpurge_local.provision import load_template
from cdnpurge_local.stack import TEMPLATE_PATH

__all__ = [
    "FASTLY_PROVIDERS",
    "FASTLY_SERVICE",
    "FASTLY_TOKEN",
    "SLOW_TABLE_SECONDS",
    "MemoryLedger",
    "RecordingSqs",
    "Sent",
    "SimulatedClock",
    "Trail",
    "TrailListener",
    "config_from",
    "fastly_config",
    "fastly_deployment",
    "key_purge_config",
    "slow_dynamodb",
]

FASTLY_TOKEN = "fastly-test-token-not-real-0123456789"
FASTLY_SERVICE = "SU1Z0isxPaozGVKXdv0eY"
# The configuration's Fastly provider at the fake CDN, as the integration deployments name it: a template for
# `cdnpurge_local.harness.deployed` (which fills in `{fastly_endpoint}`), followed by each test's rules.
FASTLY_PROVIDERS = f"""\
providers:
  - name: fastly
    kind: fastly
    service_id: {FASTLY_SERVICE}
    endpoint: {{fastly_endpoint}}
    hosts: [www.example.com]
    credentials:
      token: {{{{secret: cdnpurge/fastly, field: token}}}}
"""


@contextmanager
def fastly_deployment(
    config_template: str,
    *,
    bucket_name: str,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    environment: Mapping[str, str] | None = None,
    template_parameters: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """`deployed` with the fake Fastly the configuration's `FASTLY_PROVIDERS` names, its token in Secrets
    Manager beside `secrets`."""
    fastly = FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)
    with deployed(
        config_template,
        [fastly],
        secrets={"cdnpurge/fastly": {"token": FASTLY_TOKEN}, **(secrets or {})},
        bucket_name=bucket_name,
        environment=environment,
        template_parameters=template_parameters,
    ) as deployment:
        yield deployment


def key_purge_config(directory: Path, endpoint: str) -> Path:
    """A `cdnpurge purge -c` configuration file in `directory`: Fastly at `endpoint` (the fake on loopback),
    its token read from FASTLY_API_TOKEN, every object key purged as a surrogate key."""
    config = directory / "purge.yaml"
    config.write_text(
        f"providers:\n  - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, "
        f"endpoint: '{endpoint}', credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}\n"
        'rules:\n  - {match: "{key*}", keys: ["{key}"]}\n'
    )
    return config


def config_from(yaml_text: str) -> Config:
    return parse_config(textwrap.dedent(yaml_text))


def fastly_config(endpoint: str = "https://api.fastly.com", *, extra_rules: str = "", soft: bool = False) -> Config:
    return config_from(
        f"""
        providers:
          - name: fastly
            kind: fastly
            service_id: {FASTLY_SERVICE}
            endpoint: {endpoint}
            hosts: [www.example.com]
            soft: {str(soft).lower()}
            credentials:
              token: {{env: FASTLY_API_TOKEN}}
        rules:
          - bucket: example-site-content
            match: "articles/{{slug}}.html"
            paths: ["/articles/{{slug}}", "/articles/{{slug}}.html"]
            keys: ["article-{{slug}}"]
          {extra_rules}
          - match: "{{key*}}"
            paths: ["/{{key}}"]
        allowed_hosts: [cdn.example.com]
        """
    )


class SimulatedClock:
    """Monotonic time that only moves when the code under test sleeps: exact, instant timing tests."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Sent:
    queue: str
    body: str
    delay: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)


class RecordingSqs:
    """SQS's SendMessage (and SendMessageBatch) as the service calls it, kept in order."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0, MessageAttributes: Any = None
    ) -> dict[str, str]:
        self.sent.append(Sent(QueueUrl, MessageBody, DelaySeconds, dict(MessageAttributes or {})))
        return {"MessageId": str(len(self.sent))}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """SendMessageBatch: each entry as one SendMessage."""
        for entry in Entries:
            self.send_message(
                QueueUrl=QueueUrl, MessageBody=entry["MessageBody"], DelaySeconds=entry.get("DelaySeconds", 0)
            )
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


@dataclass
class Trail:
    """What verification told a `TrailListener` (the purge trail's part, kept in memory)."""

    fresh: list[tuple[str, str, float, str]] = field(default_factory=list)
    stale: list[tuple[str, str, str, str | None, str | None, int]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


class TrailListener:
    """A `cdnpurge.runtime.verification.verifier.VerificationListener` writing to a `Trail`."""

    def __init__(self, trail: Trail) -> None:
        self.trail = trail

    def fresh(self, provider: str, change_id: str, at: float, url: str) -> None:
        self.trail.fresh.append((provider, change_id, at, url))

    def stale(
        self, provider: str, change_id: str, url: str, *, served: str | None, origin: str | None, attempt: int
    ) -> None:
        self.trail.stale.append((provider, change_id, url, served, origin, attempt))

    def failed(self, provider: str, change_id: str, reason: str) -> None:
        self.trail.failed.append((provider, change_id, reason))


# What `CreateTable` takes of a template table's properties (the rest, TTL and backups, DynamoDB Local lacks).
_CREATE_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
)


def template_table(logical_id: str) -> dict[str, Any]:
    """The `CreateTable` arguments of the template's table `logical_id`, its intrinsic functions evaluated as
    CloudFormation would for the stack deployed with its parameters' defaults (capacity mode included)."""
    template = load_template(TEMPLATE_PATH)
    values = parameter_values(template, {"ContentBucketName": "cdnpurge-test-content"})
    pseudo: dict[str, str | list[str]] = {
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::StackName": "cdnpurge",
    }
    evaluator = Evaluator(parameters={**values, **pseudo}, condition_definitions=template.get("Conditions", {}))
    properties = evaluator.resolve(template["Resources"][logical_id]["Properties"])
    return {key: properties[key] for key in _CREATE_TABLE_PROPERTIES if key in properties}


def create_template_table(client: Any, logical_id: str, name: str) -> None:
    """The template's table `logical_id` (keys, indexes, billing) created as `name` on DynamoDB Local, so
    a test runs against the very layout `sam deploy` creates."""
    client.create_table(TableName=name, **template_table(logical_id))


def fresh_parameter_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget Powertools' cached parameter providers for this test (its own and the runtime's bounded ones,
    with their clients and cached values), so the next read builds clients from this test's environment."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    for provider in list(DEFAULT_PROVIDERS):
        monkeypatch.delitem(DEFAULT_PROVIDERS, provider)


@contextmanager
def dripping_server(
    at_once: bytes, dripped: bytes, *, interval: float, connections: int = 1
) -> Iterator[tuple[int, list[int]]]:
    """A loopback HTTP server for `connections` connections, one at a time: each request is read, `at_once`
    sent, then `dripped` one byte per `interval` seconds; yields the port and how many bytes were dripped
    before the client hung up (bounded: at most `len(dripped)` a connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    sent = [0]

    def serve() -> None:
        for _ in range(connections):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                try:
                    connection.sendall(at_once)
                    for byte in dripped:
                        connection.sendall(bytes([byte]))
                        sent[0] += 1
                        threading.Event().wait(interval)
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], sent
    finally:
        listener.close()
        thread.join(timeout=15)


# What each call to `slow_dynamodb` costs on the test's clock.
SLOW_TABLE_SECONDS = 1.5


@contextmanager
def slow_dynamodb(
    clock: SimulatedClock, answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
) -> Iterator[tuple[Any, dict[str, int]]]:
    """DynamoDB's JSON protocol on 127.0.0.1, every request answered `answer(body)` (HTTP status, document) and
    moving `clock` by `SLOW_TABLE_SECONDS`: a throttled, slow table, counted on the test's clock, never timed.
    Yields the runtime's own bounded client for it (`aws_client`) and the count of calls it answered."""
    calls = {"calls": 0}

    class Table(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            calls["calls"] += 1
            clock.now += SLOW_TABLE_SECONDS
            status, document = answer(body)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = LoopbackHTTP(Table, "slow-dynamodb")
    try:
        yield aws_client("dynamodb", endpoint_url=server.endpoint, region_name="us-east-1"), calls
    finally:
        server.stop()
