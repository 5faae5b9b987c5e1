"""What the reliability tests share: the two-provider deployment, message builders, the audit that counts
lost changes and duplicate calls, EMF metric parsing, and the witness that captures every line a run
prints so no credential can slip through unseen.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN
from reliability import tally

from cdnpurge_local.event_source import Invocation, SqsEventSource
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.server import Behaviour
from cdnpurge_local.harness import Deployment, deployed

MEDIANOVA_TOKEN: Final = "medianova-test-token-not-real-9876543210"
MEDIANOVA_ORG: Final = "org-reliability-1"
MEDIANOVA_RESOURCE: Final = "res-reliability-1"
SECRETS: Final = (FASTLY_TOKEN, MEDIANOVA_TOKEN)
HOST: Final = "www.example.com"
PROVIDERS: Final = ("fastly", "medianova")

CONFIG: Final = """
providers:
  - name: fastly
    kind: fastly
    service_id: {fastly_service}
    endpoint: {{fastly_endpoint}}
    hosts: [www.example.com]
    timeout_seconds: 1
    credentials:
      token: {{{{secret: cdnpurge/fastly, field: token}}}}
  - name: medianova
    kind: medianova
    organization_uuid: {medianova_org}
    resource_uuid: {medianova_resource}
    endpoint: {{medianova_endpoint}}
    hosts: [www.example.com]
    timeout_seconds: 1
    credentials:
      token: {{{{secret: cdnpurge/medianova, field: token}}}}
rules:
  - bucket: {{bucket}}
    match: "{{{{key*}}}}"
    paths: ["/{{{{key}}}}"]
allowed_hosts: [www.example.com]
"""


def config_template(extra: str = "") -> str:
    """The deployment's configuration, still holding the harness's `{fastly_endpoint}`-style fields."""
    return (
        CONFIG.format(fastly_service=FASTLY_SERVICE, medianova_org=MEDIANOVA_ORG, medianova_resource=MEDIANOVA_RESOURCE)
        + extra
    )


def behaviours() -> list[Behaviour]:
    return [
        FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE),
        MedianovaBehaviour(token=MEDIANOVA_TOKEN, organization_uuid=MEDIANOVA_ORG, resource_uuid=MEDIANOVA_RESOURCE),
    ]


@contextmanager
def reliability_deployment(
    bucket: str, *, extra_config: str = "", fakes: list[Behaviour] | None = None
) -> Iterator[Deployment]:
    """The real handler on DynamoDB Local + moto with two fake CDNs; metrics on (EMF to stdout)."""
    with deployed(
        config_template(extra_config),
        fakes or behaviours(),
        secrets={"cdnpurge/fastly": {"token": FASTLY_TOKEN}, "cdnpurge/medianova": {"token": MEDIANOVA_TOKEN}},
        bucket_name=bucket,
    ) as running:
        yield running


def reset(deployment: Deployment) -> None:
    """Between tests: an empty queue and DLQ, a fresh fake-CDN record, no pending faults."""
    source(deployment).drain()
    deployment.dead_letters()
    deployment.cdn.reset()


def source(deployment: Deployment, **options: Any) -> SqsEventSource:
    """Lambda's SQS poller with a short batching window (messages are sent before it polls).

    Each invocation's remaining time is its whole timeout when the handler asks (the context's clock
    stands still): a cold start that is slow on a loaded machine must not eat a test's purge budget. The
    budget itself is then spent on the executor's own clock, as in Lambda."""
    return deployment.event_source(
        **{"batching_window_seconds": 0.1, "lambda_clock": _still, "on_invocation": _tally_run, **options}
    )


def _still() -> float:
    return 0.0


def _tally_run(invocation: Invocation) -> None:
    tally.add(handler_runs=1, past_deadline=int(invocation.past_deadline))


# --- messages --------------------------------------------------------------------------------------


def unique(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def send(deployment: Deployment, *bodies: Mapping[str, Any] | str, delay: int = 0) -> list[str]:
    """Send each body as its own SQS message; returns the message ids."""
    sqs, url = deployment.stack.client("sqs"), deployment.stack.resources.queue_url
    ids = []
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        ids.append(sqs.send_message(QueueUrl=url, MessageBody=text, DelaySeconds=delay)["MessageId"])
    return ids


# --- the audit -------------------------------------------------------------------------------------


def purged_entries(path: str) -> dict[str, str]:
    """What each fake CDN records for a purge of `path` on www.example.com."""
    return {"fastly": f"url:{HOST}{path} (hard)", "medianova": f"path:{path}"}


@dataclass
class AuditResult:
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def audit(
    deployment: Deployment,
    expected: Mapping[str, int] | Iterable[str],
    *,
    providers: Iterable[str] = PROVIDERS,
    resent: int = 0,
) -> AuditResult:
    """Compare what the fake CDNs purged with `expected` (path -> times, or paths purged once each).

    `lost`: an expected purge that no provider call made; `duplicates`: calls beyond the expected number
    (less `resent`: calls re-sent after an attempt that got no answer, which the CDN may have executed;
    the test that injects them says how many); `unexpected`: purges nobody asked for. The measured
    figures go to the run's summary before the caller asserts them.
    """
    wanted = dict(expected) if isinstance(expected, Mapping) else dict.fromkeys(expected, 1)
    result = AuditResult()
    extra_allowed = resent
    for provider in providers:
        got = Counter(deployment.cdn.purged(provider))
        want = Counter({purged_entries(path)[provider]: times for path, times in wanted.items()})
        for entry, times in want.items():
            result.lost.extend([f"{provider} {entry}"] * max(0, times - got[entry]))
            surplus = max(0, got[entry] - times)
            absorbed = min(surplus, extra_allowed)
            extra_allowed -= absorbed
            result.duplicates.extend([f"{provider} {entry}"] * (surplus - absorbed))
        result.unexpected.extend(f"{provider} {entry}" for entry in got if entry not in want)
    tally.add(changes=len(wanted), lost=len(result.lost), duplicates=len(result.duplicates))
    return result


def assert_exactly(
    deployment: Deployment, expected: Mapping[str, int] | Iterable[str], *, resent: int = 0, **options: Any
) -> None:
    result = audit(deployment, expected, resent=resent, **options)
    assert result.lost == [], f"lost purges: {result.lost}"
    assert result.duplicates == [], f"duplicate calls: {result.duplicates}"
    assert result.unexpected == [], f"unexpected purges: {result.unexpected}"


def dead_letter_reasons(messages: list[dict[str, Any]]) -> dict[str, str]:
    """body -> the `cdnpurge-error` attribute of each dead-lettered message ("" if none)."""
    return {
        message["Body"]: message.get("MessageAttributes", {}).get("cdnpurge-error", {}).get("StringValue", "")
        for message in messages
    }


# --- metrics and logs ------------------------------------------------------------------------------


def emitted_metrics(stdout: str) -> defaultdict[tuple[str, str | None], float]:
    """EMF documents in captured stdout -> (metric name, provider dimension or None) -> summed value."""
    totals: defaultdict[tuple[str, str | None], float] = defaultdict(float)
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[(metric["Name"], document.get("provider"))] += sum(values)
    return totals


class LogCapture(logging.Handler):
    """Every record the handler's logger (and the root logger) emits, kept and formatted."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def messages(self, text: str) -> list[logging.LogRecord]:
        return [record for record in self.records if text in record.getMessage()]


@dataclass
class Witness:
    capsys: pytest.CaptureFixture[str]
    logs: LogCapture
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def see(self, *things: Any) -> None:
        """Add artifacts to the scan: strings as they are, anything else as JSON (or repr)."""
        for thing in things:
            if isinstance(thing, str):
                self.seen.append(thing)
            else:
                try:
                    self.seen.append(json.dumps(thing, default=repr))
                except (TypeError, ValueError):
                    self.seen.append(repr(thing))

    def output(self) -> str:
        captured = self.capsys.readouterr()
        self.stdout.append(captured.out)
        self.stderr.append(captured.err)
        return "".join(self.stdout)

    def metrics(self) -> Any:
        return emitted_metrics(self.output())

    def scan(self) -> tuple[int, list[str]]:
        """Every captured line searched for any `tally.FRAGMENT_CHARS`-character piece of a test token
        (a token cut short is still a leak); the leaks name only a token's first characters."""
        self.output()
        texts = [*self.logs.lines, *self.stdout, *self.stderr, *self.seen]
        lines = [line for text in texts for line in text.splitlines()]
        leaks = [
            f"{secret[:6]}... in: {line[:160]}"
            for line in lines
            for secret, pieces in _FRAGMENTS.items()
            if any(piece in line for piece in pieces)
        ]
        return len(lines), leaks


def fragments(secret: str, size: int = tally.FRAGMENT_CHARS) -> tuple[str, ...]:
    """Every `size`-character piece of `secret` (the secret itself when shorter)."""
    return tuple({secret[start : start + size] for start in range(max(1, len(secret) - size + 1))})


_FRAGMENTS: Final = {secret: fragments(secret) for secret in SECRETS}
