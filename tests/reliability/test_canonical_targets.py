"""Bounds and canonical forms through the real queue: hundreds of hostile messages
(userinfo, backslashes, ports and `*` in published URLs and paths, encodings nested past any honest path,
over-long keys, bucket names and ids S3/SNS/EventBridge never send) each fail alone and are dead-lettered
with a reason; the good messages beside them are purged exactly once; and nothing non-canonical ever
reaches a fake CDN."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from reliability import tally
from reliability.support import Witness, assert_exactly, reset, send, source, unique

from cdnpurge_local.event_builders import (
    eventbridge_published,
    eventbridge_s3,
    s3_notification,
    s3_record,
    sns_envelope,
)
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-bounds")]
BUCKET = "cdnpurge-rel-bounds"
HOST = "www.example.com"


def hostile_urls(rng: random.Random) -> list[str]:
    """URLs naming the allowed host in forms that must never reach a CDN as they are."""
    userinfo = ["u:p@", "user@", ":@", "www.example.com@", "a%40b@", "@"]
    ports = [":8443", ":99999", ":x", ":0", ":-1", ":443443"]
    paths = ["/*", "/img/*.png", "/a\\b", "/%2e%2e/admin", "/a/%252e%252e/b", "/x?q=*"]
    urls = [f"https://{info}{HOST}/x" for info in userinfo]
    urls += [f"https://{HOST}{port}/x" for port in ports]
    urls += [f"https://{HOST}{path}" for path in paths]
    urls += [f"https://{HOST}\\@evil.test/x", f"https://evil.test\\@{HOST}/x", f"https://[{HOST}/x"]
    for _ in range(120):  # mixtures of the above
        urls.append(f"https://{rng.choice(userinfo)}{HOST}{rng.choice([*ports, ''])}{rng.choice(paths)}")
    return urls


def hostile_paths(rng: random.Random) -> list[str]:
    paths = ["/*", "/img/*", "*", "@evil.test/x", "/a\\b", "\\\\evil.test\\x", "/%2e%2e/x", "/.%2e/x"]
    paths += [f"/a/%{'25' * depth}2e%{'25' * depth}2e/b" for depth in range(3, 40)]
    paths.append("/a/%" + "25" * 31_000 + "2e/x")  # 62 KiB: seconds of decoding before the bound
    for _ in range(60):  # a hazard somewhere among harmless segments
        segments = [rng.choice(["a", "b.html", "%20", "..."]) for _ in range(rng.randrange(1, 6))]
        segments.insert(rng.randrange(len(segments) + 1), rng.choice(["*", "a\\b", "%252e%252e", ".%2e", "%2E"]))
        paths.append("/" + "/".join(segments))
    return paths


def hostile_bodies(rng: random.Random) -> tuple[list[Any], int]:
    """The hostile messages, and how many of them are canonical-form cases (the others are bounds)."""
    bodies: list[Any] = [sns_envelope({"urls": [url]}) for url in hostile_urls(rng)]
    bodies += [eventbridge_published({"paths": [path]}) for path in hostile_paths(rng)]
    canonical = len(bodies)
    bodies += [sns_envelope({"keys": ["k" * size]}) for size in (1025, 4096, 70_000)]
    for bucket in ["a/b", "site@evil", "ab", "with space", "bücket", "two..dots", "x" * 256, "-lead"]:
        bodies += [s3_notification(s3_record(bucket, "a.html")), eventbridge_s3(bucket, "a.html")]
    for identifier in ["x" * 129, "with space", "bidi\u202eid", "ünï", "tab\tid"]:
        bodies += [sns_envelope({"paths": ["/a"]}, message_id=identifier)]
        bodies += [eventbridge_published({"paths": ["/a"]}, event_id=identifier)]
    for sequencer in ["x" * 1025, "with space", "bidi\u202eid", "ünï"]:
        bodies += [s3_notification(s3_record(BUCKET, "a.html", sequencer=sequencer))]
    return bodies, canonical


def test_hostile_bounds_and_urls_fail_alone_and_nothing_non_canonical_reaches_a_cdn(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: the hostile messages, and good ones, shuffled into the same batches
    reset(deployment)
    rng = random.Random(12)
    hostile, canonical = hostile_bodies(rng)
    good = [f"/good-{unique()}.html" for _ in range(20)]
    bodies = [*hostile, *(sns_envelope({"paths": [path]}) for path in good)]
    rng.shuffle(bodies)
    send(deployment, *bodies)
    tally.hostile("canonical", canonical)
    tally.hostile("bounds", len(hostile) - canonical)
    # When
    invocations = source(deployment, batch_size=100).drain()
    # Then: no record came back for redelivery; every good one was purged exactly once
    assert all(invocation.failed == () for invocation in invocations)
    assert_exactly(deployment, good)
    # every hostile one is dead-lettered once, as permanent, with a reason
    # (by message id: listing hundreds of messages on a loaded machine can outlast their visibility timeout)
    dead = list({message["MessageId"]: message for message in deployment.dead_letters()}.values())
    assert len(dead) == len(hostile)
    assert all(message["MessageAttributes"]["cdnpurge-failure"]["StringValue"] == "permanent" for message in dead)
    assert all(message["MessageAttributes"]["cdnpurge-error"]["StringValue"] for message in dead)
    witness.see([message["MessageAttributes"]["cdnpurge-error"]["StringValue"] for message in dead])
    # and what reached the CDNs is canonical: no userinfo, backslash, wildcard, port or dot segment
    for received in deployment.cdn.received:
        target = json.dumps(received.body) + received.path
        assert not any(hazard in target for hazard in ("@", "\\\\", "*", ":8443", "%2e", "%2E", "evil")), target
