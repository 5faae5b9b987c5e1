"""`make demo`: content changes flow through queue, handler, idempotency table and fake CDNs, locally.

Starts DynamoDB Local, moto server and the fake CDN on 127.0.0.1, provisions what `template.yaml`
defines, stores the configuration in SSM and the CDN token in Secrets Manager (as in AWS), then:
round 0 publishes the site's first version and viewers fill each CDN's edge (the fake caching edge, on
loopback, in front of the moto bucket); round 1 uploads new versions (the edges serve the stale copy),
deletes an object and publishes two "content published" events (SNS, EventBridge), and drains the queue
through the real Lambda handler, whose verification checks (delayed messages on the same queue) probe
each edge until it serves the new version: Fastly's first purge is made to fail silently, so it is seen
"still stale: purged again"; round 2 delivers the same messages again, as SQS may, and shows every purge
skipped by the idempotency table; then a CMS's signed webhook goes from a loopback client through the webhook
endpoint's handler to the queue and the CDNs (`demo_webhook`). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from cdnpurge.cli.main import main as cdnpurge_cli
from cdnpurge.core.config import parse_config
from cdnpurge.core.registry import specs
from cdnpurge.runtime.pipeline import preview
from cdnpurge_local.demo_run import DemoRound, save_demo_run
from cdnpurge_local.demo_webhook import CONFIG_ENTRY as WEBHOOK_CONFIG
from cdnpurge_local.demo_webhook import SECRETS as WEBHOOK_SECRETS
from cdnpurge_local.demo_webhook import webhook_round
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.event_source import Invocation, LocalLambdaContext, SqsEventSource
from cdnpurge_local.fakecdn.cloudfront_watch import CloudFrontWatcher
from cdnpurge_local.fakecdn.edge import Edge, EdgeFault, EdgeServer
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.origin import S3Origin
from cdnpurge_local.fakecdn.server import Received
from cdnpurge_local.harness import deployed
from cdnpurge_local.stack import LocalStack

DEMO_TOKEN = "demo-fastly-token-not-a-real-secret"  # noqa: S105 - the fake CDN's token
SERVICE_ID = "DemoService0123"
BUCKET = "example-site-content"

MEDIANOVA_TOKEN = "demo-medianova-token-not-a-real-secret"  # noqa: S105 - the fake CDN's token
MEDIANOVA_ORG = "550e8400-e29b-41d4-a716-446655440000"
MEDIANOVA_RESOURCE = "660f9511-f30c-52e5-b827-557766551111"
# Medianova jobs stay pending this long (real seconds: the handler reads the fake's job listing).
MEDIANOVA_JOB_SECONDS = 2.0
SITE = "www.example.com"
EDGES = ("fastly", "cloudfront", "medianova")
# The site's first version (round 0), replaced by round 1's uploads: what viewers have cached.
FIRST_VERSION = {
    "index.html": b"<h1>home (old)</h1>",
    "articles/hello-world.html": b"<h1>hello (old)</h1>",
    "docs/annual report+2026.pdf": b"%PDF-1.6 (old)",
}
# What viewers ask each edge for: (public path, its S3 key, the providers its rule purges it at).
VIEWED = (
    ("/", "index.html", ("fastly", "cloudfront")),
    ("/articles/hello-world.html", "articles/hello-world.html", ("fastly", "cloudfront")),
    ("/docs/annual%20report%2B2026.pdf", "docs/annual report+2026.pdf", EDGES),
)
# A delayed check becomes visible within this long polling: the drain waits for it instead of stopping.
CHECK_WAIT_SECONDS = 5

# Multi-CDN: Fastly serves the site (surrogate keys + URLs), CloudFront fronts the same bucket during a
# migration (paths and wildcards, through moto's CloudFront API), Medianova serves /docs, /img and what
# publish events name. Surrogate keys go only to Fastly, the one of the three that tags objects.
CONFIG_TEMPLATE = (
    """\
# The demo's configuration, stored in SSM Parameter Store as the deployed function reads it.
providers:
  - name: fastly
    kind: fastly
    service_id: {service_id}
    endpoint: {fastly_endpoint}      # the fake Fastly API on loopback (omit in production)
    hosts: [www.example.com]
    credentials:
      token: {{secret: cdnpurge/fastly, field: token}}
    # check the edge after each purge; probe_endpoint: the fake edge (omit in production: https://<host>)
    verify: {{probe_endpoint: "{fastly_edge}", interval_seconds: 1, deadline_seconds: 30}}
  - name: cloudfront
    kind: cloudfront
    distribution_id: {distribution_id}   # invalidations through moto's CloudFront API
    hosts: [www.example.com]
    verify: {{probe_endpoint: "{cloudfront_edge}", interval_seconds: 1, deadline_seconds: 30}}
  - name: medianova
    kind: medianova
    organization_uuid: {medianova_org}
    resource_uuid: {medianova_resource}
    endpoint: {medianova_endpoint}
    credentials:
      token: {{secret: cdnpurge/medianova, field: token}}
    verify: {{hosts: [www.example.com], probe_endpoint: "{medianova_edge}", interval_seconds: 1, deadline_seconds: 30}}
rules:
  - bucket: {bucket}
    match: "articles/{{slug}}.html"
    paths: ["/articles/{{slug}}", "/articles/{{slug}}.html"]
    keys: ["article-{{slug}}", "articles"]
    providers: [fastly, cloudfront]
  - bucket: {bucket}
    match: "{{section}}/{{rest*}}"
    paths: ["/{{key}}"]
  - bucket: {bucket}
    match: "{{key*}}"
    paths: ["/{{key}}"]
    providers: [fastly, cloudfront]
allowed_hosts: [www.example.com]
"""
    + WEBHOOK_CONFIG
)


def banner(text: str) -> None:
    print(f"\n\033[1m== {text} ==\033[0m" if sys.stdout.isatty() else f"\n== {text} ==")


class HandlerLogPrinter(logging.Handler):
    """Shows the handler's structured log lines (what CloudWatch would hold) as readable lines."""

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        message = record.getMessage()
        if message == "purge accepted":
            print(
                f"    handler: {fields['provider']} {fields['kind']} x{fields['targets']} "
                f"{'soft' if fields['soft'] else 'hard'} -> accepted (id {fields['provider_id']}, "
                f"attempts {fields['attempts']})"
            )
        elif message == "purge failed":
            print(
                f"    handler: {fields['provider']} {fields['kind']} -> "
                f"FAILED {fields['error']}: {fields['provider_message']}"
            )
        elif message == "record dead-lettered":
            print(
                f"    handler: record {fields['source_id']} sent to the dead-letter queue "
                f"({fields['failure']}): {'; '.join(fields['reasons'])}"
            )
        elif message == "record not completed":
            print(f"    handler: record {fields['source_id']} returned to the queue: {'; '.join(fields['reasons'])}")
        elif message == "edge fresh":
            urls = ", ".join(fields["urls"])
            print(f"    verify: {fields['provider']} fresh after {fields['time_to_fresh']:.1f} s: {urls}")
        elif message == "edge still stale after the purge":
            print(
                f"    verify: {fields['provider']} still stale at {fields['url']}: served {fields['served']}, "
                f"origin {fields['origin']}"
            )
        elif message == "verification":
            if fields["repurged"]:
                print(f"    verify: {fields['provider']} still stale: purged again ({fields['repurged']} URL(s))")
            if fields["waiting_for_job"]:
                print(f"    verify: {fields['provider']} job still in progress: checking again later")
        elif message == "verification failed: dead-lettered":
            print(f"    verify: FAILED {fields['reason']}")
        elif message == "batch done":
            print(
                f"    summary: {fields['changes']} change(s), {fields['requests']} request(s), "
                f"{fields['targets']} target(s), {fields['duplicates_skipped']} duplicate(s) skipped, "
                f"{fields['failed_records']} record(s) failed"
            )


@contextmanager
def handler_logs_printed() -> Iterator[None]:
    """Show the handler's log lines readably while the demo runs; leave the logger as it was after."""
    service_logger = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "cdnpurge"))
    saved = service_logger.handlers[:], service_logger.propagate
    service_logger.handlers, service_logger.propagate = [HandlerLogPrinter()], False
    try:
        yield
    finally:
        service_logger.handlers, service_logger.propagate = saved


def create_distribution(stack: LocalStack) -> dict[str, str]:
    """A CloudFront distribution in moto for the demo bucket (what the user already has in AWS)."""
    return {"distribution_id": s3_distribution(stack.client("cloudfront"), BUCKET, comment="cdnpurge demo")}


def invalidations(stack: LocalStack, created: Mapping[str, Mapping[str, str]]) -> int:
    distribution = created["cloudfront"]["distribution_id"]
    listing = stack.client("cloudfront").list_invalidations(DistributionId=distribution)
    return int(listing["InvalidationList"]["Quantity"])


def show_preview(event: Mapping[str, Any], config_text: str) -> None:
    config = parse_config(config_text)
    decoded, _translation, plan, _bill = preview(event, config, specs(config.providers))
    print(f"  batch of {len(event['Records'])} SQS message(s) -> {len(decoded.changes)} change(s) decoded:")
    for change in decoded.changes:
        print(f"    {change.describe():<60} id={change.id[:70]}")
    for error in decoded.errors:
        print(f"    ERROR {error.source_id}: {error.message}")
    print(f"  purge plan ({len(plan.requests)} request(s), before the idempotency table skips what is done):")
    for request in plan.requests:
        print(f"    {request.describe()}: {', '.join(request.targets)}")


def show_received(received: list[Received]) -> None:
    for call in received:
        purged = ", ".join(call.purged) or "-"
        print(f"    fake {call.provider}: {call.method} {call.path} -> HTTP {call.status}; purged {purged}")


def produce_changes(stack: LocalStack) -> None:
    s3, resources = stack.client("s3"), stack.resources
    uploads = {
        "index.html": b"<h1>home</h1>",
        "articles/hello-world.html": b"<h1>hello</h1>",
        "docs/annual report+2026.pdf": b"%PDF-1.7",
        "img/old-banner.png": b"\x89PNG",
    }
    for key, body in uploads.items():
        s3.put_object(Bucket=resources.bucket_name, Key=key, Body=body)
        print(f"  s3 put    s3://{resources.bucket_name}/{key}")
    s3.delete_object(Bucket=resources.bucket_name, Key="img/old-banner.png")
    print(f"  s3 delete s3://{resources.bucket_name}/img/old-banner.png")
    message = {"keys": ["home", "news"], "paths": ["/news/"]}
    stack.client("sns").publish(TopicArn=resources.topic_arn, Message=json.dumps(message))
    print(f"  sns publish to ContentPublishedTopic: {json.dumps(message)}")
    detail = {"urls": ["https://www.example.com/feed.xml"], "keys": ["feed"]}
    stack.client("events").put_events(
        Entries=[
            {
                "Source": resources.published_event_source,
                "DetailType": "Content Published",
                "Detail": json.dumps(detail),
            }
        ]
    )
    print(f"  eventbridge put_events 'Content Published': {json.dumps(detail)}")


def start_edges(stack: LocalStack, distribution_id: str, running: ExitStack) -> dict[str, EdgeServer]:
    """Each CDN's edge in front of the moto bucket, on loopback: Fastly and Medianova learn purges from the
    fake CDN (`listen`, once it runs), CloudFront's by polling moto's invalidations."""
    servers: dict[str, EdgeServer] = {}
    for name in EDGES:
        edge = Edge(name, S3Origin(stack.client("s3"), BUCKET), hosts=frozenset({SITE}))
        if name == "cloudfront":
            CloudFrontWatcher(stack.client("cloudfront"), distribution_id).watch(edge)
        servers[name] = running.enter_context(EdgeServer(edge))
    return servers


def view_edges(servers: Mapping[str, EdgeServer], stack: LocalStack, label: str) -> int:
    """What viewers get from each edge for the viewed pages, against what the bucket holds; the stale count."""
    stale = 0
    for path, key, providers in VIEWED:
        origin = stack.client("s3").head_object(Bucket=BUCKET, Key=key)["ETag"]
        for name in providers:
            address, headers = servers[name].address(f"https://{SITE}{path}")
            answer = httpx.get(address, headers=headers)
            served = answer.headers.get("ETag")
            state = "fresh" if served == origin else "STALE"
            stale += state == "STALE"
            print(
                f"  {label}: {name:<10} https://{SITE}{path:<34} {answer.headers.get('X-Cache', '-'):<5} "
                f"ETag {served} ({state}; origin {origin})"
            )
    return stale


def publish_first_version(stack: LocalStack, source: SqsEventSource, edges: Mapping[str, EdgeServer]) -> None:
    """Round 0: the site's first version through the handler, viewers filling every edge with it; then
    Fastly's next purge of the article page is made to fail silently (whichever of the concurrent calls
    in flight reaches the edge first)."""
    banner("round 0: the site's first version goes live, and viewers fill every edge")
    for key, first_body in FIRST_VERSION.items():
        stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=first_body)
        print(f"  s3 put    s3://{BUCKET}/{key} (first version)")
    source.drain()
    view_edges(edges, stack, "viewer")
    edges["fastly"].edge.inject(EdgeFault.SILENT, covering=(SITE, "/articles/hello-world.html"))


def snapshot_bodies(stack: LocalStack) -> list[str]:
    """Read every queued message body without consuming it (visibility reset to 0 right away)."""
    sqs, url = stack.client("sqs"), stack.resources.queue_url
    bodies: list[str] = []
    receipts: list[str] = []
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        bodies.extend(m["Body"] for m in messages)
        receipts.extend(m["ReceiptHandle"] for m in messages)
    for receipt in receipts:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return bodies


def demo_behaviours() -> tuple[FastlyBehaviour, MedianovaBehaviour]:
    """The two fake CDNs the demo's providers call (CloudFront is moto), at rates a demo never hits."""
    fastly = FastlyBehaviour(token=DEMO_TOKEN, service_id=SERVICE_ID, rate_per_second=50, burst=20)
    medianova = MedianovaBehaviour(
        token=MEDIANOVA_TOKEN,
        organization_uuid=MEDIANOVA_ORG,
        resource_uuid=MEDIANOVA_RESOURCE,
        rate_per_second=20,
        burst=5,
        completion_delay=MEDIANOVA_JOB_SECONDS,
    )
    return fastly, medianova


def describe_stack(stack: LocalStack, fake_cdn: str, config_text: str) -> None:
    """What was started and provisioned, so a reader can follow where each message goes."""
    resources = stack.resources
    print(
        f"  DynamoDB Local {stack.dynamodb.endpoint}, moto {stack.moto.endpoint} (S3, SQS, SNS, EventBridge, "
        f"SSM, Secrets Manager, CloudFront), fake CDN {fake_cdn}"
    )
    print(
        f"  provisioned from template.yaml: queue {resources.queue_url.rsplit('/', 1)[-1]} (+DLQ), "
        f"table {resources.table_name}, topic, 2 EventBridge rules, bucket {resources.bucket_name}"
    )
    print(f"  configuration in SSM {os.environ['PURGE_CONFIG']}; CDN tokens in Secrets Manager cdnpurge/*")
    print(textwrap.indent(config_text, "    | "), end="")


def show_status(key: str) -> None:
    """`cdnpurge status` for one object, as an operator would ask it (the stack's environment names the table)."""
    banner(f"cdnpurge status --bucket {BUCKET} --key '{key}'   (the purge trail)")
    cdnpurge_cli(["status", "--bucket", BUCKET, "--key", key], out=sys.stdout)


def redeliver(stack: LocalStack, source: SqsEventSource, bodies: list[str]) -> tuple[list[Invocation], float]:
    """Round 2: every message of round 1 delivered again; returns the invocations and their wall time."""
    banner("round 2: the same messages delivered again (SQS is at-least-once)")
    for body in bodies:
        stack.client("sqs").send_message(QueueUrl=stack.resources.queue_url, MessageBody=body)
    started = time.monotonic()
    invocations = source.drain()
    return invocations, time.monotonic() - started


def run(save: Path | None = None) -> int:
    started = time.monotonic()
    banner("starting the local stack (DynamoDB Local, moto server, fake CDNs) on 127.0.0.1")
    fastly, medianova = demo_behaviours()
    config = (
        CONFIG_TEMPLATE.replace("{service_id}", SERVICE_ID)
        .replace("{medianova_org}", MEDIANOVA_ORG)
        .replace("{medianova_resource}", MEDIANOVA_RESOURCE)
    )
    created: dict[str, dict[str, str]] = {}
    edges: dict[str, EdgeServer] = {}

    def stack_values(stack: LocalStack) -> dict[str, str]:
        distribution = created.setdefault("cloudfront", create_distribution(stack))
        edges.update(start_edges(stack, distribution["distribution_id"], running))
        return {**distribution, **{f"{name}_edge": server.endpoint for name, server in edges.items()}}

    with (
        ExitStack() as running,
        deployed(
            config,
            [fastly, medianova],
            secrets={
                "cdnpurge/fastly": {"token": DEMO_TOKEN},
                "cdnpurge/medianova": {"token": MEDIANOVA_TOKEN},
                **WEBHOOK_SECRETS,
            },
            bucket_name=BUCKET,
            environment={"POWERTOOLS_METRICS_DISABLED": "true"},  # EMF blobs would drown the demo's output
            template_values=stack_values,
        ) as deployment,
    ):
        stack, cdn, config_text = deployment.stack, deployment.cdn, deployment.config_text
        for name in ("fastly", "medianova"):
            edges[name].edge.listen(cdn)
        describe_stack(stack, cdn.endpoint("fastly").rsplit("/", 1)[0], config_text)

        with handler_logs_printed():

            def traced(event: dict[str, Any], context: LocalLambdaContext) -> Mapping[str, Any]:
                show_preview(event, config_text)
                before = len(cdn.received)
                response: Mapping[str, Any] = deployment.app.lambda_handler(event, context)
                print("  provider calls received by the fake CDN:")
                show_received(cdn.received[before:])
                print(f"  response to SQS: {json.dumps(response)}")
                return response

            source = deployment.event_source(
                traced, batch_size=100, batching_window_seconds=1.0, receive_wait_seconds=CHECK_WAIT_SECONDS
            )

            publish_first_version(stack, source, edges)

            banner("round 1: uploads, a delete and two publish events")
            produce_changes(stack)
            bodies = snapshot_bodies(stack)
            stale_before = view_edges(edges, stack, "before the purge")
            banner(
                f"draining the queue through the Lambda handler ({len(bodies)} message(s) waiting), "
                "then its verification checks"
            )
            purges_before = len(cdn.received) + invalidations(stack, created)
            round_started = time.monotonic()
            first = source.drain()
            first_wall = time.monotonic() - round_started
            calls_after_first = len(cdn.received) + invalidations(stack, created)
            stale_after = view_edges(edges, stack, "after verification")
            show_status("docs/annual report+2026.pdf")

            second, second_wall = redeliver(stack, source, bodies)
            duplicate_calls = len(cdn.received) + invalidations(stack, created) - calls_after_first

            webhook_ok = webhook_round(source.drain, announce=banner)

            banner("summary")
            dlq = deployment.queue_depth(dead_letter=True)
            purged = {name: len(cdn.purged(name)) for name in cdn.behaviours}
            print(
                f"  round 1: {len(first)} invocation(s), {calls_after_first} CDN call(s) "
                f"(incl. {invalidations(stack, created)} CloudFront invalidation(s)); fake CDN targets purged: {purged}"
            )
            print(
                f"  round 2: {len(second)} invocation(s), {duplicate_calls} CDN call(s): "
                "duplicates skipped by the table"
            )
            print(f"  dead-letter queue: {dlq} message(s); fake CDN 429s: {cdn.throttled}")
            print(
                f"  edges: {stale_before} stale cop(ies) served before the purge, {stale_after} after verification "
                f"({calls_after_first - purges_before} CDN call(s) in round 1, job listings and purges again included)"
            )
            print(f"  done in {time.monotonic() - started:.1f}s; stopping every process started")
            ok = (
                calls_after_first > 0
                and duplicate_calls == 0
                and dlq == 0
                and all(purged.values())
                and stale_before > 0
                and stale_after == 0
                and webhook_ok
            )
            if save is not None:
                rounds = [
                    DemoRound("round 1: new changes", len(bodies), calls_after_first, first_wall),
                    DemoRound("round 2: delivered again", len(bodies), duplicate_calls, second_wall),
                ]
                print(f"  run saved to {save_demo_run(save, rounds)}; draw it: cdnpurge report {save}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--save", type=Path, metavar="RUN", help="save the run as JSON for `cdnpurge report`")
    raise SystemExit(run(parser.parse_args(argv).save))


if __name__ == "__main__":
    main()
