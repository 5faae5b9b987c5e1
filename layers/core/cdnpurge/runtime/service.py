"""Wiring: configuration, providers, ledger, executor and the queues, built once per cold start and reused.

Nothing here runs at import, and nothing here decides a record's fate: `handle` passes the batch to the
pipeline (`cdnpurge.runtime.pipeline`), writes what it did to the purge trail (`cdnpurge.runtime.trail`,
after the purges were made), passes its failed records to dead-lettering (`cdnpurge.runtime.deadletter`), its
purged S3 changes to re-purge scheduling (`cdnpurge.runtime.repurge`), and its check messages and purges to
verification (`cdnpurge.runtime.verification`, built only when a provider has a `verify:` block), then builds the
batch report once (`cdnpurge.runtime.report`). `PurgeService.from_environment()` reads the environment the SAM
template sets as a typed model (`LambdaEnvironment`); tests, the bench and the demo build the same object with explicit
arguments, and the CLI builds its providers and executor with the same factory (`cdnpurge.runtime.purgers`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final

import boto3
from botocore.config import Config as BotoConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdnpurge.core.config import Config, ConfigError, fresh_ssm_parameter, parse_config, read_config_text
from cdnpurge.core.cost import DynamoDBPathCounter, PathCounter, month_of
from cdnpurge.core.credentials import SecretReader, powertools_secret_reader
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events.reading import MalformedError
from cdnpurge.core.events.verify import VerifyCheck, check_records, decode_check, encode_check, send_batches
from cdnpurge.core.protocol import Provider
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.core.verify_settings import VerifySettings
from cdnpurge.runtime.continuation import Continuations, continue_progressing
from cdnpurge.runtime.deadletter import DeadLettering, DeadLetterReason, dead_letter, dead_letter_body
from cdnpurge.runtime.execute import AttemptListener, Executor
from cdnpurge.runtime.ledger import DynamoDBLedger, Ledger
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.purgers import Purgers, build_purgers
from cdnpurge.runtime.redaction import redact
from cdnpurge.runtime.report import BatchReport, BatchRun, ConfigChange
from cdnpurge.runtime.repurge import RepurgeScheduling, repurge_candidates, schedule_repurge
from cdnpurge.runtime.trail import DEFAULT_RETENTION_SECONDS, DynamoDBTrail, TrailVerificationListener, TrailWriting
from cdnpurge.runtime.verification.jobs import has_jobs
from cdnpurge.runtime.verification.origin import OriginVersions, S3Versions
from cdnpurge.runtime.verification.probe import Prober
from cdnpurge.runtime.verification.report import VerificationReport
from cdnpurge.runtime.verification.verifier import (
    SilentListener,
    VerificationListener,
    Verifier,
    first_delay,
    plan_checks,
    purged_from,
)
from cdnpurge.runtime.visibility import VisibilityChanges, return_when_due

# DynamoDB and SQS calls fail fast (a few seconds, not botocore's default minute) so an unreachable table or
# queue turns into redelivered records well within the function's timeout: two attempts of at most 1 s to
# connect and 2 s to read, with botocore's jittered back-off (at most 1 s) between them.
DYNAMODB_CLIENT_CONFIG: Final = BotoConfig(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2}
)
SQS_CLIENT_CONFIG: Final = DYNAMODB_CLIENT_CONFIG
# Verification reads the object's current version (HeadObject): bounded like the calls above.
S3_CLIENT_CONFIG: Final = DYNAMODB_CLIENT_CONFIG
# How often a warm service reads its configuration document again to notice a change (`ConfigReload`).
CONFIG_CHECK_SECONDS = 60.0
# The longest one such call can take (2 x (1 + 2) s, plus the back-off): no ledger call starts later than
# this before the function must answer (`settle.Settlement`'s `settle_by`).
AWS_CALL_SECONDS = 7.0
# Kept for the reply itself and the SQS calls after settling (dead letters, visibility, re-purges).
REPLY_SECONDS = 1.0
# Stop starting new provider calls this long before Lambda's deadline, plus the longest provider timeout
# (a call started just before the cut-off ends, or is cut off, within its timeout): releasing the claims
# that were not completed (one ledger call, `AWS_CALL_SECONDS`) and replying must still fit.
SAFETY_MARGIN_SECONDS = 10.0


def _default_sqs() -> Any:
    """The function's SQS client (dead letters, re-purges, visibility), built on first use."""
    return boto3.client("sqs", config=SQS_CLIENT_CONFIG)


def _returning(client: Any) -> Callable[[], Any]:
    """A factory for an already built client (tests and the local harness pass their own)."""
    return lambda: client


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
class ConfigReload:
    """How a warm service notices that its configuration document changed, and rebuilds from it.

    The document is read again (past any cache) at most every `interval` seconds of `clock`, on the next
    batch; a changed one is validated as at a cold start (`check`) and the providers and executor are
    rebuilt from it (`make_purgers`, which also reads their credentials), keeping the pacing state of every
    provider whose settings did not change. A document that does not validate is refused: the service
    keeps running the previous one and says so on every check until it is fixed.
    """

    location: str  # file path or ssm:<parameter name>
    text: str  # the document the service runs
    read: Callable[[str], str]  # location -> the document now
    check: Callable[[Config], Config]  # the cold start's checks beyond the document itself
    make_purgers: Callable[[Config], Purgers]
    clock: Callable[[], float] = time.monotonic
    interval: float = CONFIG_CHECK_SECONDS
    checked_at: float = field(init=False)  # when the document was last read (first: when it was loaded)

    def __post_init__(self) -> None:
        self.checked_at = self.clock()


@dataclass(frozen=True)
class VerificationWiring:
    """What verification needs beyond the service: where it reports (the purge trail), the origin it
    compares with (default: the content bucket through S3 HEAD), the epoch clock, and (tests) probers."""

    listener: VerificationListener | None = None
    origin: OriginVersions | None = None
    clock: Callable[[], float] = time.time
    prober_factory: Callable[[VerifySettings, frozenset[str]], Prober] | None = None


@dataclass
class PurgeService:
    config: Config
    providers: Mapping[str, Provider]
    ledger: Ledger
    executor: Executor  # kept across warm invocations: pacing state is per provider, not per batch
    path_counter: PathCounter | None = None  # the month's billed CloudFront paths (same table as the ledger)
    queues: Queues = field(default_factory=Queues)
    secrets: Sequence[str] = ()  # resolved credential values, only ever used to redact text (may grow)
    trail: DynamoDBTrail | None = None  # the purge trail (`cdnpurge status`); None: not kept
    sqs_factory: Callable[[], Any] = field(default=_default_sqs)
    reload: ConfigReload | None = None  # None: the configuration is fixed for the service's life
    verification_wiring: VerificationWiring = field(default_factory=VerificationWiring)
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
        clients: Mapping[str, Any] | None = None,
        trail_table_name: str | None = None,
        trail_retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        verification: VerificationWiring | None = None,
    ) -> PurgeService:
        """`concurrency`: how many invocations may run at once (the event source's MaximumConcurrency);
        `clients`: an HTTP (or boto3) client per provider name (tests, the local stack);
        `trail_table_name`: where the purge trail goes (None: no trail); `verification`: what verification
        reports to and compares with (default: the purge trail, and the content bucket)."""
        dynamodb = dynamodb_client or boto3.client("dynamodb", config=DYNAMODB_CLIENT_CONFIG)
        purgers = build_purgers(
            config.providers,
            environ=environ,
            secret_reader=secret_reader,
            on_attempt=on_attempt,
            clock=clock,
            sleep=sleep,
            concurrency=concurrency,
            clients=clients,
        )
        trail = (
            None
            if trail_table_name is None
            else DynamoDBTrail(dynamodb, trail_table_name, retention_seconds=trail_retention_seconds)
        )
        wiring = verification or VerificationWiring()
        if wiring.listener is None and trail is not None:  # what verification learns goes to the trail
            wiring = replace(wiring, listener=TrailVerificationListener(trail, wiring.clock))
        service = cls(
            config=config,
            providers=purgers.providers,
            ledger=DynamoDBLedger(dynamodb, table_name, expires_after_seconds=ttl_seconds),
            path_counter=DynamoDBPathCounter(dynamodb, table_name),
            executor=purgers.executor,
            queues=queues or Queues(),
            secrets=purgers.secrets,
            trail=trail,
            sqs_factory=_default_sqs if sqs_client is None else _returning(sqs_client),
            verification_wiring=wiring,
        )
        service.wire_verification()
        return service

    def wire_verification(self) -> None:
        """Build verification over the current providers and executor (again after a configuration reload),
        or none when no provider has a `verify:` block."""
        verifies = any(provider.verify is not None for provider in self.config.providers)
        self.verification = Verification(self, self.verification_wiring) if verifies else None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        on_attempt: AttemptListener | None = None,
        config_clock: Callable[[], float] = time.monotonic,
        ssm_reader: Callable[[str], str] = fresh_ssm_parameter,
        verification: VerificationWiring | None = None,
    ) -> PurgeService:
        """The deployed service; its configuration is checked for changes every `CONFIG_CHECK_SECONDS`
        of `config_clock` (`ConfigReload`), reading an SSM parameter with `ssm_reader`; `verification`
        overrides what verification reports to (default: the purge trail)."""
        env = os.environ if environ is None else environ
        settings = LambdaEnvironment.read(env)
        text = read_config_text(settings.purge_config, ssm_reader=ssm_reader)

        def check(config: Config) -> Config:
            if config.allow_inline_secrets and settings.lambda_function_name:
                raise ConfigError(
                    "allow_inline_secrets is for local use only: in Lambda, reference credentials with "
                    "{secret: NAME} (Secrets Manager)"
                )
            if config.repurge_delay_seconds and settings.purge_queue_url is None:
                raise ConfigError("repurge_delay_seconds is set but environment variable PURGE_QUEUE_URL is not")
            if any(p.verify is not None for p in config.providers) and settings.purge_queue_url is None:
                raise ConfigError("a provider has verify: set but environment variable PURGE_QUEUE_URL is not")
            return config

        def make_purgers(config: Config) -> Purgers:
            return build_purgers(
                config.providers, environ=env, on_attempt=on_attempt, concurrency=settings.maximum_concurrency
            )

        config = check(parse_config(text, source=settings.purge_config, require_credentials=True))
        service = cls.build(
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
        service.reload = ConfigReload(
            location=settings.purge_config,
            text=text,
            read=lambda location: read_config_text(location, ssm_reader=ssm_reader),
            check=check,
            make_purgers=make_purgers,
            clock=config_clock,
        )
        return service

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def reload_if_changed(self) -> ConfigChange:
        """Apply a changed configuration document (see `ConfigReload`); a refused one changes nothing."""
        reload = self.reload
        if reload is None or reload.clock() - reload.checked_at < reload.interval:
            return ConfigChange()
        reload.checked_at = reload.clock()
        try:
            text = reload.read(reload.location)
            if text == reload.text:
                return ConfigChange()
            config = reload.check(parse_config(text, source=reload.location, require_credentials=True))
            purgers = reload.make_purgers(config)
        except Exception as exc:  # keep running the previous configuration; say why on every check
            return ConfigChange(problem=self.redact(describe_error(exc)))
        before = {settings.name: settings for settings in self.config.providers}
        unchanged = [settings.name for settings in config.providers if before.get(settings.name) == settings]
        purgers.executor.adopt_pacing(self.executor, unchanged)
        self.config, self.providers, self.executor = config, purgers.providers, purgers.executor
        self.secrets = purgers.secrets
        self.wire_verification()  # it holds the providers and executor it was built with
        reload.text = text
        return ConfigChange(reloaded=True)

    def handle(
        self,
        event: Mapping[str, Any],
        *,
        remaining_ms: Callable[[], int] | None = None,
    ) -> BatchReport:
        """Run one batch; without a Lambda context (CLI, demo) the budget is a fixed minute and settling has no
        deadline. With one, the answer comes before Lambda's deadline: provider calls stop `margin` before
        it, ledger writes `AWS_CALL_SECONDS + REPLY_SECONDS` before it."""
        config_change = self.reload_if_changed()
        margin = SAFETY_MARGIN_SECONDS + max((p.timeout_seconds for p in self.config.providers), default=0.0)
        now = self.executor.clock()
        answer_by = now + remaining_ms() / 1000 if remaining_ms else None
        settle_by = None if answer_by is None else answer_by - AWS_CALL_SECONDS - REPLY_SECONDS
        deadline = now + 60.0 if answer_by is None else max(now, answer_by - margin)
        run = run_batch(
            event,
            config=self.config,
            specs=self.specs,
            ledger=self.ledger,
            executor=self.executor,
            deadline=deadline,
            remaining_ms=remaining_ms,
            redact=self.redact,
            settle_by=settle_by,
            path_counter=self.path_counter,
            month=month_of(time.time()),
        )
        clock = self.executor.clock

        def out_of_time() -> bool:
            """No AWS call may start now: it might not end before the function must answer."""
            return settle_by is not None and clock() >= settle_by

        trail = self.trail.record(run, self.config.rules, self.redact) if self.trail else TrailWriting()
        verified = (
            VerificationReport()
            if self.verification is None
            else self.verification.handle(event, run, deadline=deadline)
        )
        continued = self._continue(event, run, out_of_time)
        if continued.continued:  # acknowledged: neither dead-lettered nor made visible again
            kept = tuple(source for source in run.failures.sources if source not in continued.continued)
            run = replace(run, failures=replace(run.failures, sources=kept))
        dead_letters = self._dead_letter(event, run, out_of_time)
        return BatchReport(
            run,
            dead_letters=dead_letters,
            repurge=self._repurge(run, out_of_time),
            trail=trail,
            verification=verified,
            visibility=self._return_when_due(event, run, dead_letters, out_of_time),
            config_change=config_change,
            continuations=continued,
        )

    def _continue(self, event: Mapping[str, Any], run: BatchRun, out_of_time: Callable[[], bool]) -> Continuations:
        """Send again the records that advanced on their last allowed receive (`cdnpurge.runtime.continuation`)."""
        purge_url, progressing = self.queues.purge_url, run.failures.progressing - run.failures.permanent
        if purge_url is None or not progressing:
            return Continuations()
        change_ids: dict[str, tuple[str, ...]] = {}
        for change in run.decoded.changes:
            change_ids[change.source_id] = (*change_ids.get(change.source_id, ()), change.id)
        return continue_progressing(
            self.sqs,
            purge_url,
            event,
            progressing=progressing,
            change_ids=change_ids,
            max_receive_count=self.queues.max_receive_count,
            redact=self.redact,
            out_of_time=out_of_time,
        )

    def _return_when_due(
        self, event: Mapping[str, Any], run: BatchRun, dead_letters: DeadLettering, out_of_time: Callable[[], bool]
    ) -> VisibilityChanges:
        purge_url = self.queues.purge_url
        if purge_url is None or not run.failures.retry_in:
            return VisibilityChanges()
        returned = [source for source in run.failures.sources if source not in dead_letters.moved]
        return return_when_due(
            self.sqs,
            purge_url,
            event,
            returned=returned,
            retry_in=run.failures.retry_in,
            redact=self.redact,
            out_of_time=out_of_time,
        )

    def _dead_letter(self, event: Mapping[str, Any], run: BatchRun, out_of_time: Callable[[], bool]) -> DeadLettering:
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
            out_of_time=out_of_time,
        )

    def _repurge(self, run: BatchRun, out_of_time: Callable[[], bool]) -> RepurgeScheduling:
        delay, purge_url = self.config.repurge_delay_seconds, self.queues.purge_url
        if not delay or purge_url is None:
            return RepurgeScheduling()
        changes = repurge_candidates(
            run.decoded.changes, owed=run.owed, completed=run.completed, duplicates=run.duplicates
        )
        if not changes:
            return RepurgeScheduling()
        return schedule_repurge(
            self.sqs, purge_url, changes, delay_seconds=delay, redact=self.redact, out_of_time=out_of_time
        )


class Verification:
    """Runs the check messages of a batch and schedules checks for what it purged (docs/verification.md).

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
