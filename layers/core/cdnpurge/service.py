"""Wiring: configuration, providers, ledger, executor and the queues, built once per cold start and reused.

Nothing here runs at import, and nothing here decides a record's fate: `handle` passes the batch to the
pipeline (`cdnpurge.pipeline`), its failed records to dead-lettering (`cdnpurge.deadletter`) and its
purged S3 changes to re-purge scheduling (`cdnpurge.repurge`), then builds the batch report once
(`cdnpurge.report`). `PurgeService.from_environment()` reads the environment the SAM template sets as a
typed model (`LambdaEnvironment`); tests, the bench and the demo build the same object with explicit
arguments, and the CLI builds its providers and executor with the same factory (`cdnpurge.purgers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import boto3
from botocore.config import Config as BotoConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdnpurge.config import Config, ConfigError, load_config
from cdnpurge.cost import DynamoDBPathCounter, PathCounter, month_of
from cdnpurge.credentials import SecretReader, powertools_secret_reader
from cdnpurge.deadletter import DeadLettering, dead_letter
from cdnpurge.execute import AttemptListener, Executor
from cdnpurge.ledger import DynamoDBLedger, Ledger
from cdnpurge.pipeline import run_batch
from cdnpurge.providers.base import Provider
from cdnpurge.providers.spec import ProviderSpec
from cdnpurge.purgers import build_purgers
from cdnpurge.redaction import redact
from cdnpurge.report import BatchReport, BatchRun
from cdnpurge.repurge import RepurgeScheduling, repurge_candidates, schedule_repurge

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
    path_counter: PathCounter | None = None  # the month's billed CloudFront paths (same table as the ledger)
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
        """`concurrency`: how many invocations may run at once (the event source's MaximumConcurrency)."""
        purgers = build_purgers(
            config.providers,
            environ=environ,
            secret_reader=secret_reader,
            on_attempt=on_attempt,
            clock=clock,
            sleep=sleep,
            concurrency=concurrency,
        )
        dynamodb = dynamodb_client or boto3.client("dynamodb", config=DYNAMODB_CLIENT_CONFIG)
        return cls(
            config=config,
            providers=purgers.providers,
            ledger=DynamoDBLedger(dynamodb, table_name, expires_after_seconds=ttl_seconds),
            path_counter=DynamoDBPathCounter(dynamodb, table_name),
            executor=purgers.executor,
            queues=queues or Queues(),
            secrets=purgers.secrets,
            **({} if sqs_client is None else {"sqs_factory": lambda: sqs_client}),
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, on_attempt: AttemptListener | None = None
    ) -> PurgeService:
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
            path_counter=self.path_counter,
            month=month_of(time.time()),
        )
        return BatchReport(run, self._dead_letter(event, run), self._repurge(run))

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
