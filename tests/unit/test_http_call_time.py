"""A provider call's total time is bounded by its `timeout_seconds`, not each read.

A loopback server answers headers at once, then drips the body one byte at a time, each byte well inside
the per-read timeout. The call must give up after its total timeout: asserted by how many bytes the
server managed to send before the client hung up (far fewer than the drip's length), never by wall time.
"""

from __future__ import annotations

import pytest
from helpers import FASTLY_TOKEN, config_from, dripping_server

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.provider_errors import UnavailableError
from cdnpurge.core.registry import build_providers

DRIP_BYTES = 200
DRIP_INTERVAL = 0.05  # far below the 1 s per-read timeout httpx would otherwise apply to each byte
TIMEOUT = 0.2


def test_a_dripping_body_ends_the_call_at_its_total_timeout() -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {DRIP_BYTES}\r\n\r\n"
    with dripping_server(head.encode(), b" " * DRIP_BYTES, interval=DRIP_INTERVAL) as (port, sent):
        config = config_from(
            f"""
            providers:
              - name: fastly
                kind: fastly
                service_id: S1
                endpoint: http://127.0.0.1:{port}
                hosts: [www.example.com]
                timeout_seconds: {TIMEOUT}
                credentials:
                  token: {{env: FASTLY_API_TOKEN}}
            """
        )
        provider = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})["fastly"]
        request = PurgeRequest("fastly", TargetKind.KEY, ("k1",), False, frozenset({"c1"}))
        # When
        with pytest.raises(UnavailableError, match=r"timed out calling .*: no complete answer within 0.2 s") as caught:
            provider.purge(request, idempotency_token="t")
        gave_up_after = sent[0]
    # Then: the client hung up after a handful of bytes, long before the drip's end (a per-read timeout
    # alone would have read all 200, one every 50 ms)
    assert gave_up_after < DRIP_BYTES // 10
    assert caught.value.retryable
