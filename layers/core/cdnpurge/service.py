"""Wiring: configuration, providers, ledger, executor and the queues, built once per cold start and reused.

Nothing here runs at import, and nothing here decides a record's fate: `handle` passes the batch to the
pipeline (`cdnpurge.pipeline`), writes what it did to the purge trail (`cdnpurge.trail`, after the purges
were made), passes its failed records to dead-lettering (`cdnpurge.deadletter`), its purged S3 changes to
re-purge scheduling (`cdnpurge.repurge`), and its check messages and purges to verification
(`cdnpurge.verification`, built only when a provider has a `verify:` block), then builds the batch report
once (`cdnpurge.report`). `PurgeService.from_environment()` reads the environment the SAM template sets as
a typed model (`LambdaEnvironment`); tests, the bench and the demo build the same object with explicit
arguments, and the CLI builds its providers and executor with the same factory (`cdnpurge.purgers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final

import boto3
from botocore.config import Config as BotoConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdnpurge.config import Config, ConfigError, load_config
from cdnpurge.credentials import SecretReader, powertools_secret_reader
from cdnpurge.deadletter import DeadLettering, DeadLetterReason, dead_letter, dead_letter_body
from cdnpurge.errors import describe_error
from cdnpurge.events.reading import MalformedError
from cdnpurge.events.verify import VerifyCheck, check_records, decode_check, encode_check, send_batches
from cdnpurge.execute import AttemptListener, Executor
from cdnpurge.ledger import DynamoDBLedger, Ledger
from cdnpurge.pipeline import run_batch
from cdnpurge.providers.base import Provider
from cdnpurge.providers.spec import ProviderSpec
from cdnpurge.purgers import build_purgers
from cdnpurge.redaction import redact
from cdnpurge.report import BatchReport, BatchRun
from cdnpurge.repurge import RepurgeScheduling, repurge_candidates, schedule_repurge
from cdnpurge.trail import DEFAULT_RETENTION_SECONDS, DynamoDBTrail, TrailVerificationListener, TrailWriting
from cdnpurge.verification.jobs import has_jobs
from cdnpurge.verification.origin import OriginVersions, S3Versions
from cdnpurge.verification.probe import Prober
from cdnpurge.verification.report import VerificationReport
from cdnpurge.verification.settings import VerifySettings
from cdnpurge.verification.verifier import (
    SilentListener,
    VerificationListener,
    Verifier,
    first_delay,
    plan_checks,
    purged_from,
)

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
S3_CLIENT_CONFIG: Final = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})


class LambdaEnvironment(BaseModel):
    """The function's environment as the SAM template sets it; an empty variable counts as unset."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    purge_config: str = Field(alias="PURGE_CONFIG", min_length=1)  # file path or ssm:<parameter name>
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME", min_length=1)
    idempotency_ttl_seconds: int = Field(3600, alias="IDEMPOTENCY_TTL_SECONDS", gt=0)
    dead_letter_queue_url: str | None = Field(None, alias="DEAD_LETTER_QUEUE_URL")
    purge_queue_url: str | None = Field(None, alias="PURGE_QUEUE_URL")
    max_receive_count: int | None = Field(None, alias="MAX_RECEIVE_COUNT", ge=1)
    maximum_concurrency: int = Field(1, alias="MAXIMUM_CONCURRENCY", ge=1)
    trail_table_name: str | None = Field(None, alias="TRAIL_TABLE_NAME")  # unset: no purge trail
    trail_retention_seconds: int = Field(DEFAULT_RETENTION_SECONDS, alias="TRAIL_RETENTION_SECONDS", gt=0)
    lambda_function_name: str | None = Field(None, alias="AWS_LAMBDA_FUNCTION_NAME")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> LambdaEnvironment:
        """The typed environment, or a `ConfigError` naming every variable that is missing or invalid."""
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as exc:
            problems = "; ".join(
                f"environment variable {'.'.join(map(str, error['loc']))}: "
                + ("required" if error["type"] in ("missing", "string_type") else error["msg"])
                for error in exc.errors()
            )
            raise ConfigError(problems) from None


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
    trail: DynamoDBTrail | None = None  # the purge trail (`cdnpurge status`); None: not kept
    sqs_factory: Callable[[], Any] = field(default=lambda: boto3.client("sqs", config=SQS_CLIENT_CONFIG))
    verification: Verification | None = None  # None: no provider verifies its purges

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
        trail_table_name: str | None = None,
        trail_retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        verification: VerificationWiring | None = None,
    ) -> PurgeService:
        """`concurrency`: how many invocations may run at once (the event source's MaximumConcurrency);
        `trail_table_name`: where the purge trail goes (None: no trail)."""
        dynamodb = dynamodb_client or boto3.client("dynamodb", config=DYNAMODB_CLIENT_CONFIG)
        purgers = build_purgers(
            config.providers,
            environ=environ,
            secret_reader=secret_reader,
            on_attempt=on_attempt,
            clock=clock,
            sleep=sleep,
            concurrency=concurrency,
        )
        service = cls(
            config=config,
            providers=purgers.providers,
            ledger=DynamoDBLedger(dynamodb, table_name, expires_after_seconds=ttl_seconds),
            executor=purgers.executor,
            queues=queues or Queues(),
            secrets=purgers.secrets,
            trail=(
                None
                if trail_table_name is None
                else DynamoDBTrail(dynamodb, trail_table_name, retention_seconds=trail_retention_seconds)
            ),
        )
        if sqs_client is not None:
            service.sqs_factory = lambda: sqs_client
        if any(provider.verify is not None for provider in config.providers):
            wiring = verification or VerificationWiring()
            if wiring.listener is None and service.trail is not None:  # what verification learns goes to the trail
                wiring = replace(wiring, listener=TrailVerificationListener(service.trail, wiring.clock))
            service.verification = Verification(service, wiring)
        return service

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        on_attempt: AttemptListener | None = None,
        verification: VerificationWiring | None = None,
    ) -> PurgeService:
        """The service as the deployed function builds it; `verification` wires the purge trail's listener."""
        env = os.environ if environ is None else environ
        settings = LambdaEnvironment.read(env)
        config = load_config(settings.purge_config)
        if config.allow_inline_secrets and settings.lambda_function_name:
            raise ConfigError(
                "allow_inline_secrets is for local use only: in Lambda, reference credentials with "
                "{secret: NAME} (Secrets Manager)"
            )
        if config.repurge_delay_seconds and settings.purge_queue_url is None:
            raise ConfigError("repurge_delay_seconds is set but environment variable PURGE_QUEUE_URL is not")
        if any(p.verify is not None for p in config.providers) and settings.purge_queue_url is None:
            raise ConfigError("a provider has verify: set but environment variable PURGE_QUEUE_URL is not")
        return cls.build(
            config,
            table_name=settings.idempotency_table_name,
            ttl_seconds=settings.idempotency_ttl_seconds,
            environ=env,
            on_attempt=on_attempt,
            queues=Queues(
                dead_letter_url=settings.dead_letter_queue_url,
                purge_url=settings.purge_queue_url,
                max_receive_count=settings.max_receive_count,
            ),
            concurrency=settings.maximum_concurrency,
            trail_table_name=settings.trail_table_name,
            trail_retention_seconds=settings.trail_retention_seconds,
            verification=verification,
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
        run = run_batch(
            event,
            config=self.config,
            specs=self.specs,
            ledger=self.ledger,
            executor=self.executor,
            deadline=self.executor.clock() + max(0.0, budget),
            remaining_ms=remaining_ms,
            redact=self.redact,
        )
        trail = self.trail.record(run, self.config.rules, self.redact) if self.trail else TrailWriting()
        verified = (
            VerificationReport()
            if self.verification is None
            else self.verification.handle(event, run, deadline=self.executor.clock() + max(0.0, budget))
        )
        return BatchReport(run, self._dead_letter(event, run), self._repurge(run), trail, verified)

    def _dead_letter(self, event: Mapping[str, Any], run: BatchRun) -> DeadLettering:
        if self.queues.dead_letter_url is None:
            return DeadLettering()
        return dead_letter(
            self.sqs,
            self.queues.dead_letter_url,
            event,
            failed_sources=run.failures.sources,
            reasons=run.failures.reasons,
            permanent=run.failures.permanent,
            max_receive_count=self.queues.max_receive_count,
            redact=self.redact,
        )

    def _repurge(self, run: BatchRun) -> RepurgeScheduling:
        delay, purge_url = self.config.repurge_delay_seconds, self.queues.purge_url
        if not delay or purge_url is None:
            return RepurgeScheduling()
        changes = repurge_candidates(
            run.decoded.changes, owed=run.owed, completed=run.completed, duplicates=run.duplicates
        )
        if not changes:
            return RepurgeScheduling()
        return schedule_repurge(self.sqs, purge_url, changes, delay_seconds=delay, redact=self.redact)


@dataclass(frozen=True)
class VerificationWiring:
    """What verification needs beyond the service: where it reports (the purge trail), the origin it
    compares with (default: the content bucket through S3 HEAD), the epoch clock, and (tests) probers."""

    listener: VerificationListener | None = None
    origin: OriginVersions | None = None
    clock: Callable[[], float] = time.time
    prober_factory: Callable[[VerifySettings, frozenset[str]], Prober] | None = None


class Verification:
    """Runs the check messages of a batch and schedules checks for what it purged (README "Verification").

    A check is a delayed message on the purge queue; one that cannot be run or rescheduled is returned in
    `batchItemFailures` (SQS redelivers it), a malformed one is dead-lettered at once.
    """

    def __init__(self, service: PurgeService, wiring: VerificationWiring) -> None:
        self._service = service
        self.clock = wiring.clock
        self.verifier = Verifier(
            settings={provider.name: provider for provider in service.config.providers},
            providers=service.providers,
            specs=service.specs,
            executor=service.executor,
            origin=wiring.origin or S3Versions(boto3.client("s3", config=S3_CLIENT_CONFIG)),
            schedule=self.schedule,
            dead_letter=self._dead_letter,
            clock=wiring.clock,
            listener=wiring.listener or SilentListener(),
            prober_factory=wiring.prober_factory,
        )

    def schedule(self, check: VerifyCheck, delay_seconds: int) -> None:
        """Enqueue `check` on the purge queue, delayed (raises when it cannot)."""
        queue = self._service.queues.purge_url
        if queue is None:
            raise ConfigError("verification needs PURGE_QUEUE_URL to schedule its checks")
        self._service.sqs.send_message(QueueUrl=queue, MessageBody=encode_check(check), DelaySeconds=delay_seconds)

    def _dead_letter(self, check: VerifyCheck, reasons: tuple[str, ...]) -> None:
        queue = self._service.queues.dead_letter_url
        if queue is None:
            raise ConfigError("a failed verification needs DEAD_LETTER_QUEUE_URL")
        problem = dead_letter_body(
            self._service.sqs,
            queue,
            encode_check(check),
            why=DeadLetterReason.VERIFICATION_FAILED,
            reasons=reasons,
            redact=self._service.redact,
        )
        if problem is not None:
            raise RuntimeError(f"dead-letter send failed: {problem}")

    def handle(self, event: Mapping[str, Any], run: BatchRun, *, deadline: float) -> VerificationReport:
        report = VerificationReport()
        executor_clock = self._service.executor.clock
        for message_id, body in check_records(event):
            try:
                check = decode_check(body)
            except MalformedError as exc:
                self._malformed(message_id, body, exc.message, report)
                continue
            try:
                self.verifier.run(check, report, budget_seconds=max(0.0, deadline - executor_clock()))
            except Exception as exc:  # the check stays with SQS: redelivered, run again
                report.failed_sources.append(message_id)
                report.errors.append(self._service.redact(f"{message_id}: {describe_error(exc)}"))
        checks = plan_checks(
            changes=run.decoded.changes,
            routed=run.translation.routed,
            specs=self._service.specs,
            settings=self.verifier.settings,
            purged=purged_from(run.outcomes),
            job_providers=frozenset(name for name, p in self._service.providers.items() if has_jobs(p)),
            now=self.clock(),
            report=report,
        )
        self._schedule_all(checks, report)
        return report

    def _schedule_all(self, checks: list[VerifyCheck], report: VerificationReport) -> None:
        """Enqueue a batch's new checks, ten to a SendMessageBatch call (a storm's checks cost a few calls).
        Best effort, as re-purges: the purges happened; a check not sent is reported and counted."""
        queue = self._service.queues.purge_url
        entries = []
        for number, check in enumerate(checks):
            verify = self.verifier.settings[check.provider].verify
            delay = first_delay(check, verify) if verify else 1
            entries.append({"Id": str(number), "MessageBody": encode_check(check), "DelaySeconds": delay})
        for chunk in send_batches(entries):
            try:
                if queue is None:
                    raise ConfigError("verification needs PURGE_QUEUE_URL to schedule its checks")
                answer = self._service.sqs.send_message_batch(QueueUrl=queue, Entries=chunk)
                problems = [f"{f.get('Code')}: {f.get('Message', '')}" for f in answer.get("Failed", [])]
            except Exception as exc:
                problems = [describe_error(exc)] * len(chunk)
            report.errors.extend(self._service.redact(f"check not scheduled: {problem}") for problem in problems)

    def _malformed(self, message_id: str, body: str, message: str, report: VerificationReport) -> None:
        queue = self._service.queues.dead_letter_url
        problem = (
            "no DEAD_LETTER_QUEUE_URL"
            if queue is None
            else dead_letter_body(
                self._service.sqs,
                queue,
                body,
                why=DeadLetterReason.PERMANENT,
                reasons=(message,),
                redact=self._service.redact,
            )
        )
        if problem is not None:
            report.failed_sources.append(message_id)
            report.errors.append(self._service.redact(f"{message_id}: {message}; {problem}"))
