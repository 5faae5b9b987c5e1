"""The storms: what each scenario configures, the SQS records a storm delivers, and what it owes the CDN.

A storm of S3 changes arrives as EventBridge "Object Created" events (as the deployed wiring delivers
them), built by `cdnpurge_local.event_builders` like the tests' events; a publish storm as bare publish
messages. Each storm also carries the calls the naive purger makes per event and, per message, the
provider-side targets it owes, from which the theoretical minimum number of calls is computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.cdn_host import DISTRIBUTION_ID, FASTLY_SERVICE, MEDIANOVA_ORG, MEDIANOVA_RESOURCE, Limit
from bench.naive import Call
from cdnpurge_local.event_builders import eventbridge_s3, sqs_record

HOST = "www.example.com"
BUCKET = "example-site-content"
# The fakes' rate limits: scaled up from the real ones (Fastly ~28/s, CloudFront ~1/s) so the naive
# purger's 10,000-call storms end in seconds; bursts are the adapters' declared ones.
LIMITS = {
    "fastly": Limit(rate=400.0, burst=10),
    "cloudfront": Limit(rate=400.0, burst=5),
    "medianova": Limit(rate=400.0, burst=1),
}
PER_CALL = {"fastly-key": 256, "fastly-url": 1, "cloudfront": 3000, "cloudfront-tag": 15, "medianova": 100}
# SQS BatchSize per scenario, as docs/storms.md advises: the template's default (100) where every target is
# its own call (Fastly URLs), 1,000 for key- and path-based setups. `--batch-size` overrides both.
URL_BATCH_SIZE = 100
BATCH_SIZE = 1000
DIRECTORIES = 40


@dataclass(frozen=True)
class Scenario:
    name: str
    provider: str
    storm: str  # "s3" or "publish"
    rule: str  # YAML for the rules list ("" for publish storms)
    settings: str = ""  # extra provider settings (YAML flow-mapping entries)
    escalated: bool = False
    batch_size: int = BATCH_SIZE


SCENARIOS = {
    "fastly-keys": Scenario("fastly-keys", "fastly", "s3", '[{match: "assets/{name*}", keys: ["asset-{name}"]}]'),
    "cloudfront-paths": Scenario(
        "cloudfront-paths", "cloudfront", "s3", '[{match: "assets/{name*}", paths: ["/assets/{name}"]}]'
    ),
    # The same uploads on a distribution with cache tags, purged by one tag per directory (a section).
    "cloudfront-tags": Scenario(
        "cloudfront-tags",
        "cloudfront",
        "s3",
        '[{match: "assets/{dir}/{name}", keys: ["Section-{dir}"]}]',
        settings=", cache_tags: true",
    ),
    "medianova-paths": Scenario(
        "medianova-paths", "medianova", "s3", '[{match: "assets/{name*}", paths: ["/assets/{name}"]}]'
    ),
    "fastly-urls": Scenario(
        "fastly-urls",
        "fastly",
        "s3",
        '[{match: "assets/{name*}", paths: ["/assets/{name}"]}]',
        batch_size=URL_BATCH_SIZE,
    ),
    "publish-mixed": Scenario("publish-mixed", "fastly", "publish", "", batch_size=URL_BATCH_SIZE),
    "medianova-prefixes": Scenario(
        "medianova-prefixes",
        "medianova",
        "s3",
        '[{match: "assets/{name*}", paths: ["/assets/{name}"]}]',
        settings=", prefix_escalation_at: 20",
        escalated=True,
    ),
}


@dataclass
class Storm:
    """One storm: the SQS records cdnpurge receives, the calls the naive purger makes per event, and what
    the CDN must have purged (in the fake's notation) for nothing to be lost."""

    records: list[dict[str, Any]]
    naive_events: list[list[Call]]
    expected: set[str]
    targets: dict[str, set[str]]  # message id -> the provider-side targets it owes (for minima per batch)
    minimum: Callable[[set[str]], int]


def _s3_body(key: str, sequencer: str, event_id: str) -> str:
    """An S3 upload as EventBridge delivers it, serialised compactly as the SQS body is."""
    event = eventbridge_s3(
        BUCKET, key, sequencer=sequencer, event_id=event_id, size=9468, etag="5f9ca96e2ed74b596b3754325c069812"
    )
    return json.dumps(event, separators=(",", ":"))


def _ceil(count: int, per_call: int) -> int:
    return -(-count // per_call)


def make_storm(scenario: Scenario, size: int, run: str) -> Storm:
    records: list[dict[str, Any]] = []
    naive: list[list[Call]] = []
    expected: set[str] = set()
    targets: dict[str, set[str]] = {}
    if scenario.storm == "publish":
        for i in range(size):
            keys = [f"article-{run}-{i}", f"section-{i % 20}"]
            path = f"/articles/{run}-{i}"
            message_id = f"{run}-{i:05d}"
            body = json.dumps({"keys": keys, "paths": [path], "id": f"pub-{run}-{i}"})
            records.append(sqs_record(message_id=message_id, body=body))
            naive.append([("key", key) for key in keys] + [("url", f"{HOST}{path}")])
            owed = {f"key:{key} (hard)" for key in keys} | {f"url:{HOST}{path} (hard)"}
            expected |= owed
            targets[message_id] = owed

        def minimum(owed: set[str]) -> int:
            keys = sum(1 for target in owed if target.startswith("key:"))
            return _ceil(keys, PER_CALL["fastly-key"]) + (len(owed) - keys)

        return Storm(records, naive, expected, targets, minimum)
    for i in range(size):
        name = f"d{i % DIRECTORIES:02d}/{run}-{i:05d}.jpg"
        message_id = f"{run}-{i:05d}"
        records.append(
            sqs_record(message_id=message_id, body=_s3_body(f"assets/{name}", f"{i:018X}", f"evt-{message_id}"))
        )
        if scenario.name == "fastly-keys":
            call: Call = ("key", f"asset-{name}")
            owed = {f"key:asset-{name} (hard)"}
        elif scenario.name == "cloudfront-tags":
            section = name.split("/", 1)[0]
            call = ("key", f"#Section-{section}")  # the naive purger: one tag invalidation per upload
            owed = {f"tag:section-{section}"}
        elif scenario.name == "fastly-urls":
            call = ("url", f"{HOST}/assets/{name}")
            owed = {f"url:{HOST}/assets/{name} (hard)"}
        else:
            call = ("path", f"/assets/{name}")
            owed = {f"path:/assets/{name}"}
        naive.append([call])
        expected |= owed
        targets[message_id] = owed
    per_call = {"fastly-keys": "fastly-key", "fastly-urls": "fastly-url", "cloudfront-tags": "cloudfront-tag"}.get(
        scenario.name, scenario.provider
    )
    return Storm(records, naive, expected, targets, lambda owed: _ceil(len(owed), PER_CALL[per_call]))


def lost_targets(expected: set[str], purged: Sequence[str]) -> int:
    """Targets never purged: neither themselves nor under a purged wildcard (`path:/dir/*`)."""
    done = set(purged)
    wildcards = [target[:-1] for target in done if target.endswith("/*")]
    return sum(1 for target in expected if target not in done and not any(target.startswith(w) for w in wildcards))


# With `verify=True` (bench.verification): the edge is checked after each purge, the checks enqueued only.
VERIFY_SETTINGS = f", verify: {{hosts: [{HOST}], interval_seconds: 10}}"


def config_text(scenario: Scenario, endpoints: dict[str, str], *, verify: bool = False) -> str:
    limit = LIMITS[scenario.provider]
    common = f"name: {scenario.provider}, endpoint: {endpoints[scenario.provider]}, rate_per_second: {limit.rate:g}"
    provider = {
        "fastly": f"{{{common}, kind: fastly, service_id: {FASTLY_SERVICE}, hosts: [{HOST}], "
        "credentials: {token: {env: BENCH_FASTLY_TOKEN}}",
        "cloudfront": f"{{{common}, kind: cloudfront, distribution_id: {DISTRIBUTION_ID}",
        "medianova": f"{{{common}, kind: medianova, organization_uuid: {MEDIANOVA_ORG}, "
        f"resource_uuid: {MEDIANOVA_RESOURCE}, credentials: {{token: {{env: BENCH_MEDIANOVA_TOKEN}}}}",
    }[scenario.provider] + f"{scenario.settings}{VERIFY_SETTINGS if verify else ''}}}"
    rules = f"rules: {scenario.rule}\n" if scenario.rule else ""
    return f"providers: [{provider}]\n{rules}allowed_hosts: [{HOST}]\n"


def plan_of_runs(quick: bool) -> list[tuple[str, int, tuple[str, ...]]]:
    """(scenario, size, ledgers for cdnpurge).

    Every storm runs with the ledger on DynamoDB Local, as deployed. The Fastly URL storms (rate-bound)
    and the largest key storm run again with the in-memory ledger: DynamoDB Local shares this machine's
    cores with the CDN fake and both invocations, so the pair shows the ledger's share of the wall time.
    """
    sizes = (100, 1000) if quick else (100, 1000, 10_000)
    ddb, both = ("dynamodb-local",), ("dynamodb-local", "memory")
    runs: list[tuple[str, int, tuple[str, ...]]] = []
    for name in ("fastly-keys", "cloudfront-paths", "cloudfront-tags", "medianova-paths"):
        runs += [(name, size, both if (name, size) == ("fastly-keys", 10_000) else ddb) for size in sizes]
    runs += [("fastly-urls", size, both) for size in sizes if size >= 1000]
    runs += [("publish-mixed", 1000, ddb)]
    if not quick:
        runs += [("medianova-prefixes", 10_000, ddb)]
    return runs
