"""Small builders shared by the test suites (no fixtures with side effects here)."""

from __future__ import annotations

import textwrap
import uuid
from typing import Any

from cdnpurge.config import Config, parse_config
from cdnpurge_local.memory_ledger import MemoryLedger

__all__ = [
    "FASTLY_SERVICE",
    "FASTLY_TOKEN",
    "MemoryLedger",
    "SimulatedClock",
    "config_from",
    "fastly_config",
    "s3_notification",
    "sequencer",
]

FASTLY_TOKEN = "fastly-test-token-not-real-0123456789"
FASTLY_SERVICE = "SU1Z0isxPaozGVKXdv0eY"


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

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sequencer() -> str:
    return uuid.uuid4().hex[:18].upper()


def s3_notification(
    bucket: str, key: str, seq: str | None = None, event_name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    """An S3 event notification document (`key` as S3 sends it: URL-encoded, `+` for spaces)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T10:00:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 1, "eTag": "e", "sequencer": seq or sequencer()},
                },
            }
        ]
    }
