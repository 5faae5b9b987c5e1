"""`make demo`'s webhook step: a CMS signs a "content published" webhook (Standard Webhooks), a client on
loopback posts it to the webhook endpoint (`webhook_gateway`: API Gateway's part, locally), the real
WebhookFunction handler verifies it and puts the publish message on the purge queue, and the purge function
drains it to the CDNs. The same delivery again is answered "duplicate" and enqueues nothing; one signed with
another secret is answered 401 and enqueues nothing.

The client signs as the specification says (HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed by the base64 after
`whsec_`), written here on its own: the verifier under demonstration is not used to sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from cdnpurge_local.event_source import Invocation
from cdnpurge_local.webhook_gateway import load_webhook_handler, webhook_gateway

WEBHOOK_SECRET: Final = "whsec_" + base64.b64encode(b"demo-cms-webhook-key-not-secret!").decode()
FORGED_SECRET: Final = "whsec_" + base64.b64encode(b"a-key-the-cms-has-never-been-given").decode()
# The demo configuration's `webhooks:` entry (YAML, inside CONFIG_TEMPLATE's braces-escaped text).
CONFIG_ENTRY: Final = """webhooks:
  - name: cms
    scheme: standard
    secret: {{secret: cdnpurge/webhooks/cms}}
    map: {{keys: "data.surrogate_keys", when: "type == 'content.published'"}}
"""
SECRETS: Final = {"cdnpurge/webhooks/cms": {"current": WEBHOOK_SECRET}}
PAYLOAD: Final = {"type": "content.published", "data": {"surrogate_keys": ["article-hello-world", "home"]}}


def signed_headers(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


def webhook_round(
    drain: Callable[[], list[Invocation]],
    *,
    announce: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Post a signed webhook, its replay and a forged one; drain the queue; True when each was answered as it
    should be (202, 200 duplicate, 401). `announce` prints the step's heading."""
    announce("a signed CMS webhook: loopback client -> webhook endpoint -> WebhookFunction -> queue -> CDNs")
    body = json.dumps(PAYLOAD).encode()
    message_id = f"msg_demo_{int(clock())}"
    handler = load_webhook_handler()
    # Its JSON log lines would drown the answers printed below, which say the same.
    handler.logger.setLevel(logging.WARNING)
    with webhook_gateway(handler.lambda_handler) as endpoint:
        url = f"{endpoint}/webhooks/cms"
        print(f"  CMS -> POST {url}  webhook-id {message_id}, signed (Standard Webhooks): {json.dumps(PAYLOAD)}")
        answers = []
        for label, secret in (
            ("signed", WEBHOOK_SECRET),
            ("the same delivery again", WEBHOOK_SECRET),
            ("signed with another secret", FORGED_SECRET),
        ):
            headers = signed_headers(secret, message_id, body, int(clock()))
            response = httpx.post(url, content=body, headers=headers, timeout=30)
            answers.append(response.status_code)
            print(f"  {label}: HTTP {response.status_code} {_shown(response.json())}")
    print("  draining the purge queue: the purge function purges what the webhook named")
    drain()
    return answers == [202, 200, 401]


def _shown(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(", ", ": "))
