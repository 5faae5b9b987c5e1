"""Small builders shared by the test suites (no fixtures with side effects here)."""

from __future__ import annotations

import textwrap

from cdnpurge.config import Config, parse_config

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


class MemoryLedger:
    """An in-memory `Ledger` for unit tests; production code is tested on DynamoDB Local."""

    def __init__(self) -> None:
        self.done: set[tuple[str, str]] = set()
        self.busy: set[tuple[str, str]] = set()
        self.released: list[tuple[str, str]] = []

    def claim(self, pairs, remaining_ms):  # type: ignore[no-untyped-def]
        from cdnpurge.ledger import Claim

        claims = {}
        for pair in pairs:
            if pair in self.done:
                claims[pair] = Claim.DONE
            elif pair in self.busy:
                claims[pair] = Claim.BUSY
            else:
                self.busy.add(pair)
                claims[pair] = Claim.CLAIMED
        return claims

    def complete(self, pairs, result):  # type: ignore[no-untyped-def]
        for pair in pairs:
            self.busy.discard(pair)
            self.done.add(pair)

    def release(self, pairs, error):  # type: ignore[no-untyped-def]
        for pair in pairs:
            self.busy.discard(pair)
            self.released.append(pair)
