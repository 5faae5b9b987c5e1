"""Small builders shared by the test suites (no fixtures with side effects here).

The AWS event documents (S3, EventBridge, SNS, SQS) are built by `cdnpurge_local.event_builders`, shared
with the benchmark.
"""

from __future__ import annotations

import textwrap

from cdnpurge.config import Config, parse_config
from cdnpurge_local.memory_ledger import MemoryLedger

__all__ = [
    "FASTLY_SERVICE",
    "FASTLY_TOKEN",
    "MemoryLedger",
    "SimulatedClock",
    "config_from",
    "fastly_config",
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

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
