"""Wiring: configuration, providers, ledger, executor and the queues, built once per cold start and reused.

Nothing here runs at import. `PurgeService.from_environment()` reads the typed environment the SAM
template sets; tests, the CLI and the demo build the same object with explicit arguments.

After the pipeline, `handle` does the SQS side of the reliability policy (README "Reliability"):

- a record that failed *permanently* (malformed, bad key or host, refused by a provider) is sent to the
  dead-letter queue at once with its reasons as message attributes, and acknowledged;
- a record that failed *transiently* is returned in `batchItemFailures`, except on its last allowed
  receive (`ApproximateReceiveCount >= MAX_RECEIVE_COUNT`), when it is dead-lettered the same way rather
  than moved silently by SQS;
- if the dead-letter send fails, the record stays in `batchItemFailures`: SQS's own redrive is the
  fallback, so nothing is ever dropped;
- with `repurge_delay_seconds` set, S3 changes purged by this batch are enqueued once more with that SQS
  delay (best effort: a failed send is logged and counted, the first purge stands).
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import boto3
from botocore.config import Config as BotoConfig
from pydantic import SecretStr

from cdnpurge.config import Config, load_config
from cdnpurge.credentials import SecretReader, powertools_secret_reader, resolve
from cdnpurge.events import repurge_messages
from cdnpurge.execute import AttemptListener, Executor
from cdnpurge.ledger import DynamoDBLedger, Ledger, describe_error
from cdnpurge.pipeline import BatchReport, run_batch
from cdnpurge.providers.base import Provider, ProviderWrapper, PurgeResult
from cdnpurge.providers.errors import ProviderError
from cdnpurge.providers.registry import build_providers
from cdnpurge.providers.spec import ProviderSettings, ProviderSpec

if TYPE_CHECKING:
    from cdnpurge.models import PurgeRequest

# Stop starting new provider calls this long before Lambda's deadline, plus the longest provider timeout
# (a call started just before the cut-off must end, or time out, in time): settling the ledger and
# returning the batch response must still fit.
SAFETY_MARGIN_SECONDS = 5.0
# DynamoDB calls fail fast (a few seconds, not botocore's default minute) so an unreachable table turns
# into redelivered records well within the function's timeout.
DYNAMODB_CLIENT_CONFIG: Final = BotoConfig(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
)
SQS_CLIENT_CONFIG: Final = BotoConfig(connect_timeout=2, read_timeout=10, retries={"mode": "standard"})

# Message attributes a dead-lettered record carries; `cdnpurge redrive` strips every `cdnpurge-` one.
ATTRIBUTE_PREFIX: Final = "cdnpurge-"
ERROR_ATTRIBUTE: Final = "cdnpurge-error"  # the reasons, "; "-separated
FAILURE_ATTRIBUTE: Final = "cdnpurge-failure"  # "permanent" or "retries-exhausted"
SOURCE_ATTRIBUTE: Final = "cdnpurge-source"  # "<queue ARN> <message id>"
RECEIVES_ATTRIBUTE: Final = "cdnpurge-receive-count"
PERMANENT: Final = "permanent"
RETRIES_EXHAUSTED: Final = "retries-exhausted"
_SQS_MAX_ATTRIBUTES: Final = 10
_ATTRIBUTE_CHARS: Final = 1024
# Characters SQS accepts in message attributes (XML 1.0 character ranges).
_NOT_SQS_TEXT: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REDACTED: Final = "<redacted>"


@dataclass(frozen=True)
class Queues:
    """Where failed records and re-purges go; None turns the feature off (direct invocations, tests)."""

    dead_letter_url: str | None = None
    purge_url: str | None = None
    max_receive_count: int | None = None


@dataclass
class PurgeService:
    config: Config
    providers: Mapping[str, Provider]
    ledger: Ledger
    executor: Executor  # kept across warm invocations: pacing state is per provider, not per batch
    queues: Queues = field(default_factory=Queues)
    secrets: tuple[str, ...] = ()  # resolved credential values, only ever used to redact text
    sqs_factory: Callable[[], Any] = field(default=lambda: boto3.client("sqs", config=SQS_CLIENT_CONFIG))

    @property
    def specs(self) -> dict[str, ProviderSpec]:
        return {name: provider.spec for name, provider in self.providers.items()}

    @cached_property
    def sqs(self) -> Any:
        return self.sqs_factory()

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        table_name: str,
        ttl_seconds: int = 3600,
        dynamodb_client: Any = None,
        environ: Mapping[str, str] | None = None,
        secret_reader: SecretReader = powertools_secret_reader,
        on_attempt: AttemptListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        queues: Queues | None = None,
        sqs_client: Any = None,
        concurrency: int = 1,
    ) -> PurgeService:
        """`concurrency`: how many invocations may run at once (the event source's MaximumConcurrency);
        each paces at its share of every provider's rate, so together they never exceed it."""
        secrets: list[str] = []

        def credentials_for(settings: ProviderSettings) -> dict[str, SecretStr]:
            resolved = resolve(
                settings.credentials,
                owner=f"providers.{settings.name}",
                environ=environ,
                secret_reader=secret_reader,
            )
            secrets.extend(value.get_secret_value() for value in resolved.values())
            return resolved

        built = build_providers(config.providers, credentials_for)  # resolves every credential into `secrets`
        redaction = secret_forms(secrets)
        providers: dict[str, Provider] = {
            name: RedactingProvider(provider, redaction) for name, provider in built.items()
        }
        return cls(
            config=config,
            providers=providers,
            ledger=DynamoDBLedger(
                dynamodb_client or boto3.client("dynamodb", config=DYNAMODB_CLIENT_CONFIG),
                table_name,
                expires_after_seconds=ttl_seconds,
            ),
            executor=Executor(providers, clock=clock, sleep=sleep, on_attempt=on_attempt, rate_share=1 / concurrency),
            queues=queues or Queues(),
            secrets=redaction,
            **({} if sqs_client is None else {"sqs_factory": lambda: sqs_client}),
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, on_attempt: AttemptListener | None = None
    ) -> PurgeService:
        env = os.environ if environ is None else environ
        config = load_config(_required(env, "PURGE_CONFIG"))
        if config.allow_inline_secrets and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            raise RuntimeError(
                "allow_inline_secrets is for local use only: in Lambda, reference credentials with "
                "{secret: NAME} (Secrets Manager)"
            )
        queues = Queues(
            dead_letter_url=env.get("DEAD_LETTER_QUEUE_URL") or None,
            purge_url=env.get("PURGE_QUEUE_URL") or None,
            max_receive_count=int(env["MAX_RECEIVE_COUNT"]) if env.get("MAX_RECEIVE_COUNT") else None,
        )
        if config.repurge_delay_seconds and queues.purge_url is None:
            raise RuntimeError("repurge_delay_seconds is set but environment variable PURGE_QUEUE_URL is not")
        return cls.build(
            config,
            table_name=_required(env, "IDEMPOTENCY_TABLE_NAME"),
            ttl_seconds=int(env.get("IDEMPOTENCY_TTL_SECONDS", "3600")),
            environ=env,
            on_attempt=on_attempt,
            queues=queues,
            concurrency=int(env.get("MAXIMUM_CONCURRENCY", "1")),
        )

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def handle(
        self,
        event: Mapping[str, Any],
        *,
        remaining_ms: Callable[[], int] | None = None,
    ) -> BatchReport:
        """Run one batch; without a Lambda context (CLI, demo) the budget is a fixed minute."""
        margin = SAFETY_MARGIN_SECONDS + max((p.timeout_seconds for p in self.config.providers), default=0.0)
        budget = (remaining_ms() / 1000 - margin) if remaining_ms else 60.0
        report = run_batch(
            event,
            config=self.config,
            specs=self.specs,
            ledger=self.ledger,
            executor=self.executor,
            deadline=self.executor.clock() + max(0.0, budget),
            remaining_ms=remaining_ms,
        )
        report = replace(
            report, reasons={source: tuple(map(self.redact, why)) for source, why in report.reasons.items()}
        )
        report = self._dead_letter(event, report)
        return self._schedule_repurge(report)

    # -- dead letters --------------------------------------------------------------------------------

    def _dead_letter(self, event: Mapping[str, Any], report: BatchReport) -> BatchReport:
        dead_letter_url = self.queues.dead_letter_url
        if dead_letter_url is None or not report.failed_sources:
            return report
        records = _sqs_records(event)
        moved: dict[str, str] = {}
        errors: list[str] = []
        for source in report.failed_sources:
            record = records.get(source)
            if record is None:
                continue
            why = self._dead_letter_reason(source, record, report)
            if why is None:
                continue
            try:
                self.sqs.send_message(
                    QueueUrl=dead_letter_url,
                    MessageBody=record.get("body") or "",
                    MessageAttributes=self._attributes(record, why, report.reasons.get(source, ())),
                )
            except Exception as exc:  # SQS unreachable or the message refused: SQS's own redrive remains
                errors.append(self.redact(f"{source}: {describe_error(exc)}"))
                continue
            moved[source] = why
        return replace(report, dead_lettered=moved, dead_letter_errors=tuple(errors))

    def _dead_letter_reason(self, source: str, record: Mapping[str, Any], report: BatchReport) -> str | None:
        if source in report.permanent:
            return PERMANENT
        limit = self.queues.max_receive_count
        if limit is not None and _receive_count(record) >= limit:
            return RETRIES_EXHAUSTED
        return None

    def _attributes(self, record: Mapping[str, Any], why: str, reasons: tuple[str, ...]) -> dict[str, Any]:
        ours = {
            ERROR_ATTRIBUTE: "; ".join(reasons) or "failed",
            FAILURE_ATTRIBUTE: why,
            SOURCE_ATTRIBUTE: f"{record.get('eventSourceARN', '')} {record.get('messageId', '')}".strip(),
            RECEIVES_ATTRIBUTE: str(_receive_count(record)),
        }
        attributes = {
            name: {"DataType": "String", "StringValue": _attribute_text(self.redact(value))}
            for name, value in ours.items()
        }
        for name, value in _original_attributes(record).items():
            if len(attributes) >= _SQS_MAX_ATTRIBUTES:
                break
            attributes.setdefault(name, value)
        return attributes

    # -- delayed second purge ------------------------------------------------------------------------

    def _schedule_repurge(self, report: BatchReport) -> BatchReport:
        delay, purge_url = self.config.repurge_delay_seconds, self.queues.purge_url
        if not delay or purge_url is None:
            return report
        changes = report.repurge_candidates()
        if not changes:
            return report
        scheduled: list[str] = []
        errors: list[str] = []
        for body, change_ids in repurge_messages(changes):
            try:
                self.sqs.send_message(QueueUrl=purge_url, MessageBody=body, DelaySeconds=delay)
            except Exception as exc:  # best effort: the first purge happened
                errors.append(self.redact(f"{len(change_ids)} change(s): {describe_error(exc)}"))
                continue
            scheduled.extend(change_ids)
        return replace(report, repurge_scheduled=tuple(scheduled), repurge_errors=tuple(errors))


class RedactingProvider(ProviderWrapper):
    """A provider whose errors never carry a credential, even when the CDN echoes a bad key back.

    Every provider is wrapped once at build time, so the executor, logs, metrics, batch reasons and
    dead-letter attributes only ever see redacted messages.
    """

    def __init__(self, inner: Provider, secrets: tuple[str, ...]) -> None:
        super().__init__(inner)
        self._secrets = secrets

    def purge(self, request: PurgeRequest, *, idempotency_token: str) -> PurgeResult:
        try:
            return self.inner.purge(request, idempotency_token=idempotency_token)
        except ProviderError as error:
            text = str(error)
            message, clean_text = redact(error.message, self._secrets), redact(text, self._secrets)
            if message == error.message and clean_text == text:
                raise
            # Same class and fields (status, retry_after, ...), message redacted; built without __init__,
            # whose signature differs per error class.
            clean = type(error).__new__(type(error))
            clean.__dict__.update(error.__dict__)
            clean.message, clean.args = message, (clean_text,)
            raise clean from None


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def secret_forms(values: list[str]) -> tuple[str, ...]:
    """Each secret as sent and as a URL or JSON would carry it; longest first, trivially short ones skipped."""
    forms = set()
    for value in values:
        if len(value) < 4:
            continue
        forms.update({value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"')})
    return tuple(sorted(forms, key=len, reverse=True))


def _sqs_records(event: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    records = event.get("Records")
    if not isinstance(records, list):
        return {}
    return {
        record["messageId"]: record
        for record in records
        if isinstance(record, Mapping)
        and record.get("eventSource") == "aws:sqs"
        and isinstance(record.get("messageId"), str)
    }


def _receive_count(record: Mapping[str, Any]) -> int:
    attributes = record.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1


def _attribute_text(value: str) -> str:
    text = _NOT_SQS_TEXT.sub("?", value)[:_ATTRIBUTE_CHARS]
    return text or "-"


def _original_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own message attributes in SendMessage form (Lambda's event uses other field names)."""
    converted: dict[str, Any] = {}
    attributes = record.get("messageAttributes")
    if not isinstance(attributes, Mapping):
        return converted
    for name, value in attributes.items():
        if not isinstance(value, Mapping) or str(name).startswith(ATTRIBUTE_PREFIX):
            continue
        data_type = value.get("dataType") or "String"
        if value.get("stringValue") is not None:
            converted[name] = {"DataType": data_type, "StringValue": value["stringValue"]}
        elif value.get("binaryValue") is not None:
            raw = value["binaryValue"]
            binary = base64.b64decode(raw) if isinstance(raw, str) else raw
            converted[name] = {"DataType": data_type, "BinaryValue": binary}
    return converted


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is required")
    return value
