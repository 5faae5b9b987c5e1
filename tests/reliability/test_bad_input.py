"""Bad input from producers, through the real queue: each bad message fails alone, is dead-lettered at
once with a reason that names the problem, and never causes a call anywhere (no SSRF: a canary server
named by hostile messages must see nothing). Good messages in the same batch, including keys with
unicode, `+` and `%`, are purged exactly once.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from reliability import tally
from reliability.support import (
    Witness,
    assert_exactly,
    dead_letter_reasons,
    send,
    source,
)

from cdnpurge_local.event_builders import (
    eventbridge_published,
    eventbridge_s3,
    s3_notification,
    s3_record,
    sns_envelope,
)
from cdnpurge_local.harness import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability-bad-input")]
BUCKET = "cdnpurge-rel-bad"


class Canary:
    """A loopback HTTP server that records every request: hostile messages point at it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.requests.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def bad_messages(canary: int) -> dict[str, tuple[Any, str]]:
    """label -> (SQS body, a fragment the dead-letter reason must contain)."""
    s3_missing_key = s3_notification(s3_record(BUCKET, "x"))
    del s3_missing_key["Records"][0]["s3"]["object"]["key"]
    s3_no_name = s3_notification(s3_record(BUCKET, "x"))
    del s3_no_name["Records"][0]["eventName"]
    eventbridge_no_detail = eventbridge_s3(BUCKET, "x")
    del eventbridge_no_detail["detail"]
    ssrf = f"http://127.0.0.1:{canary}/latest/meta-data/"
    return {
        "malformed JSON": ("{not json", "body is not JSON"),
        "whitespace body": ("   ", "body is not JSON"),
        "JSON array": ("[1, 2]", "unknown envelope: JSON array"),
        "JSON string": ('"purge everything"', "unknown envelope: JSON string"),
        "unknown envelope": ({"hello": "world"}, "unknown envelope: JSON object with keys ['hello']"),
        "S3 record without key": (s3_missing_key, "S3 record missing s3.object.key"),
        "S3 record without eventName": (s3_no_name, "S3 record missing eventName"),
        "S3 unknown event": (
            s3_notification(s3_record(BUCKET, "x", event_name="ObjectVanished:Poof")),
            "unsupported eventName",
        ),
        "key with '..'": (s3_notification(s3_record(BUCKET, "docs/../../etc/passwd")), "'..' path segment"),
        "key with NUL": (s3_notification(s3_record(BUCKET, "docs/a%00b.html")), "control character U+0000"),
        "key with newline": (s3_notification(s3_record(BUCKET, "docs/a%0Ab.html")), "control character U+000A"),
        "key not UTF-8": (s3_notification(s3_record(BUCKET, "docs/%FF%FE.html")), "does not percent-decode to UTF-8"),
        "key over 1024 bytes": (s3_notification(s3_record(BUCKET, "k" * 1025)), "over S3's 1024-byte limit"),
        "SNS Message not JSON": (dict(sns_envelope({}), Message="{oops"), "SNS Message is not JSON"),
        "SNS without MessageId": ({"Type": "Notification", "Message": "{}"}, "unknown envelope"),
        "EventBridge without detail": (eventbridge_no_detail, "EventBridge event missing detail"),
        "EventBridge unknown source": (
            dict(eventbridge_s3(BUCKET, "x"), source="evil.source", **{"detail-type": "Do Things"}),
            "unsupported EventBridge event",
        ),
        "URL host not allowed": (
            sns_envelope({"urls": ["https://evil.example/steal"]}),
            "host 'evil.example' is not in allowed_hosts",
        ),
        # refused for its port before the allow-list sees its host (canonical form first)
        "SSRF to a loopback service": (sns_envelope({"urls": [ssrf]}), f"names port {canary}"),
        "SSRF to loopback, default port": (
            sns_envelope({"urls": ["http://127.0.0.1/latest/meta-data/"]}),
            "host '127.0.0.1' is not in allowed_hosts",
        ),
        "SSRF to instance metadata": (
            eventbridge_published({"hosts": ["169.254.169.254"]}),
            "'169.254.169.254' is not in allowed_hosts",
        ),
        "relative path": (sns_envelope({"paths": ["etc/passwd"]}), "must start with '/'"),
        "no targets": (sns_envelope({"keys": []}), "names no targets"),
        "soft not a boolean": (sns_envelope({"keys": ["a"], "soft": "yes"}), "soft must be true or false"),
        "key not a string": (sns_envelope({"keys": [1]}), "keys[0] must be a non-empty string, got number"),
        "absurd number of targets": (
            sns_envelope({"paths": [f"/{n}" for n in range(10_001)]}),
            "has 10001 entries, over the limit of 10000",
        ),
        "huge unknown document": ({"blob": "x" * 200_000}, "unknown envelope: JSON object with keys ['blob']"),
    }


GOOD_KEYS = {
    "café ñ/日本.html": "/caf%C3%A9%20%C3%B1/%E6%97%A5%E6%9C%AC.html",  # S3 sends it URL-encoded, + for space
    "a b+c%d.html": "/a%20b%2Bc%25d.html",
}


def test_every_bad_message_fails_alone_with_a_reason_and_calls_nothing(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: every kind of bad message, and good ones with awkward keys, all in one batch
    with Canary() as canary:
        bad = bad_messages(canary.port)
        bodies = {label: body if isinstance(body, str) else json.dumps(body) for label, (body, _) in bad.items()}
        send(deployment, *bodies.values())
        for key in GOOD_KEYS:
            deployment.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x")
        tally.add(bad_inputs=len(bad))
        # When
        invocations = source(deployment, batch_size=100).drain()
        # Then: nothing was left for redelivery; the good records were purged exactly once
        assert len(invocations) == 1, [i.failed for i in invocations]
        assert invocations[0].failed == ()
        assert_exactly(deployment, GOOD_KEYS.values())
        # every bad one is in the DLQ, once, with a reason naming its problem
        dead = deployment.dead_letters()
        witness.see(dead)
        reasons = dead_letter_reasons(dead)
        assert len(dead) == len(bad)
        for label, (_, fragment) in bad.items():
            assert fragment in reasons[bodies[label]], f"{label}: {reasons[bodies[label]]!r}"
        # and nothing was called on their behalf: not the canary, not any other host at the fake CDNs
        assert canary.requests == []
    for received in deployment.cdn.received:
        assert "evil" not in received.path and "169.254" not in received.path and str(canary.port) not in received.path
    emitted = witness.metrics()
    assert emitted[("DeadLettered", None)] == len(bad)


def test_huge_messages_fail_alone_with_their_size_or_never_reach_the_queue(
    deployment: Deployment, witness: Witness
) -> None:
    # Given: a 300 KB message (SQS takes up to 1 MiB; the decoder's limit is 256 KiB, SNS's and
    # EventBridge's size) next to a good one; and one over SQS's own limit
    sqs, url = deployment.stack.client("sqs"), deployment.stack.resources.queue_url
    huge = json.dumps({"keys": ["k" * 300_000]})
    send(deployment, huge, sns_envelope({"paths": ["/fine.html"]}))
    tally.add(bad_inputs=2)
    with pytest.raises(sqs.exceptions.ClientError, match=r"Message must be shorter than"):
        sqs.send_message(QueueUrl=url, MessageBody="x" * (1024 * 1024 + 1))
    # When
    source(deployment).drain()
    # Then
    assert_exactly(deployment, ["/fine.html"])
    (dead,) = deployment.dead_letters()
    reason = dead["MessageAttributes"]["cdnpurge-error"]["StringValue"]
    assert f"body is {len(huge.encode())} bytes, over the 262144-byte (256 KiB) SQS message limit" in reason
    witness.see(reason)
