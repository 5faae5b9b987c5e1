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
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec.structs import replace

from cdnpurge.core.config import Config, ConfigError, parse_config, read_config_text
from cdnpurge.core.cost import DynamoDBPathCounter, PathCounter, month_of
from cdnpurge.core.credentials import SecretReader
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events.own import ExpiredMessageError, refuse_times
from cdnpurge.core.events.reading import MalformedError
from cdnpurge.core.events.verify import VerifyCheck, encode_check, send_batches
from cdnpurge.core.protocol import Provider
from cdnpurge.core.schema import DocumentError, convert_every, worded
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.core.verify_settings import VerifySettings
from cdnpurge.runtime.after_batch import AfterBatch, AfterBatchStep
from cdnpurge.runtime.bounded import bounded_call, current_call, nested_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS, aws_client
from cdnpurge.runtime.bounded.parameters import BoundedParameters
from cdnpurge.runtime.coalesce import Coalescer, DynamoDBWindows, flush_sender, verified_purges
from cdnpurge.runtime.continuation import Continuations, continue_progressing
from cdnpurge.runtime.deadletter import DeadLettering, DeadLetterReason, dead_letter, dead_letter_body
from cdnpurge.runtime.execute import AttemptListener, Executor
from cdnpurge.runtime.ledger import DynamoDBLedger, Ledger
from cdnpurge.runtime.meter import Meter
from cdnpurge.runtime.meter_dynamodb import DynamoDBMeter
from cdnpurge.runtime.pipeline import run_batch
from cdnpurge.runtime.purgers import Purgers, build_purgers
from cdnpurge.runtime.redaction import redact
from cdnpurge.runtime.report import BatchReport, ConfigChange
from cdnpurge.runtime.repurge import RepurgeScheduling, repurge_candidates, schedule_repurge
from cdnpurge.runtime.secrets import powertools_secret_reader
from cdnpurge.runtime.trail import DEFAULT_RETENTION_SECONDS, DynamoDBTrail, TrailVerificationListener, TrailWriting
from cdnpurge.runtime.verification.jobs import has_jobs
from cdnpurge.runtime.verification.origin import OriginVersions, S3Versions
from cdnpurge.runtime.verification.report import VerificationReport
from cdnpurge.runtime.verification.verifier import (
    SilentListener,
    VerificationListener,
    Verifier,
    first_delay,
    plan_checks,
)
from cdnpurge.runtime.visibility import VisibilityChanges, return_when_due

if TYPE_CHECKING:
    from cdnpurge.runtime.verification.probe import Prober

# Every AWS client comes from `cdnpurge.runtime.bounded.aws.aws_client` (a few seconds per call, standard
# retries, every attempt within the current bounded call), so an unreachable table or queue turns into
# redelivered records well within the function's timeout.
# How often a warm service reads its configuration document again to notice a change (`ConfigReload`).
CONFIG_CHECK_SECONDS = 60.0
# Time kept for settling the ledger after the provider calls stop: every ledger call ends this long before
# the function must answer, leaving it to the steps after the batch (`settle.Settlement`'s `settle_by`).
AWS_CALL_SECONDS = CALL_SECONDS
# Reading the configuration (SSM) and the providers' secrets at a cold start, or again on a reload.
CONFIGURATION_READ_SECONDS = 10.0
# Without a Lambda context (the CLI, the demo), provider calls stop this long after the batch starts.
NO_CONTEXT_SECONDS = 60.0
# Kept for the reply itself and the SQS calls after settling (dead letters, visibility, re-purges).
REPLY_SECONDS = 1.0
# Provider calls end this long before Lambda's deadline (a purge starts only if its whole timeout fits
# before then): releasing the claims that were not completed (`AWS_CALL_SECONDS`), the steps after the
# batch and the reply must still fit.
SAFETY_MARGIN_SECONDS = 10.0


def _default_sqs() -> Any:
    """The function's SQS client (dead letters, re-purges, visibility), built on first use."""
    return aws_client("sqs")


def _returning(client: Any) -> Callable[[], Any]:
    """A factory for an already built client (tests and the local harness pass their own)."""
    return lambda: client


class LambdaEnvironment(msgspec.Struct, frozen=True, rename="upper"):
    """The function's environment as the SAM template sets it (each field is the upper-cased variable);
    an empty variable counts as unset."""

    purge_config: Annotated[str, msgspec.Meta(min_length=1)]  # file path or ssm:<parameter name>
    idempotency_table_name: Annotated[str, msgspec.Meta(min_length=1)]
    idempotency_ttl_seconds: Annotated[int, msgspec.Meta(gt=0)] = 3600
    dead_letter_queue_url: str | None = None
    purge_queue_url: str | None = None
    max_receive_count: Annotated[int, msgspec.Meta(ge=1)] | None = None
    maximum_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 1
    # Where the shared rate meter's items live (unset: the idempotency table); RATE_METER=off: no meter.
    rate_meter_table_name: str | None = None
    rate_meter: Literal["on", "off"] = "on"
    batching_window_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 0
    trail_table_name: str | None = None  # unset: no purge trail
    trail_retention_seconds: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_RETENTION_SECONDS
    lambda_function_name: str | None = msgspec.field(default=None, name="AWS_LAMBDA_FUNCTION_NAME")
    home_account_id: (
        Annotated[str, msgspec.Meta(pattern=worded(r"\A[0-9]{12}\Z", "must be a 12-digit AWS account id"))] | None
    ) = None

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> LambdaEnvironment:
        """The typed environment, or a `ConfigError` naming every variable that is missing or invalid."""
        given = {name: value for name, value in environ.items() if value != ""}
        try:
            return convert_every(given, cls, strict=False)  # strict=False: numbers from their text
        except DocumentError as exc:
            raise ConfigError(
                "; ".join(
                    f"environment variable {problem.where}: "
                    + ("required" if problem.what == "field required" else problem.what)
                    for problem in exc.problems
                )
            ) from None


class Queues(msgspec.Struct, frozen=True):
    """Where failed records and re-purges go; None turns the feature off (direct invocations, tests)."""

    dead_letter_url: str | None = None
    purge_url: str | None = None
    max_receive_count: int | None = None
    batching_window_seconds: int = 0  # the event source's MaximumBatchingWindowInSeconds on the purge queue


class ConfigReload(msgspec.Struct):
    """How a warm service notices that its configuration document changed, and rebuilds from it.

    The document is read again (past any cache) at most every `interval` seconds of `clock`, on the next
    batch; a changed one is validated as at a cold start (`check`) and the providers and executor are
    rebuilt from it (`make_purgers`, which also reads their credentials), keeping the pacing state of every
    provider whose settings did not change. A document that does not validate is refused: the service
    keeps running the previous one and says so on every check until it is fixed.
    """

    location: str  # file path or ssm:<parameter name>
    text: str  # the document the service runs
    read: Callable[[str], str]  # location -> the document now (called inside a bounded call)
    check: Callable[[Config], Config]  # the cold start's checks beyond the document itself
    make_purgers: Callable[[Config], Purgers]
    checked_at: float  # when the document was last read on `clock` (first: when it was loaded)
    clock: Callable[[], float] = time.monotonic
    interval: float = CONFIG_CHECK_SECONDS


class VerificationWiring(msgspec.Struct, frozen=True):
    """What verification needs beyond the service: where it reports (the purge trail), the origin it
    compares with (default: the content bucket through S3 HEAD), the epoch clock, and (tests) probers."""

    listener: VerificationListener | None = None
    origin: OriginVersions | None = None
    clock: Callable[[], float] = time.time
    prober_factory: Callable[[VerifySettings, frozenset[str]], Prober] | None = None


class Runtime(msgspec.Struct, frozen=True):
    """What one configuration document runs, frozen: its configuration, providers, executor, the secrets to
    redact and verification. A configuration reload builds a new one and swaps it in whole (one assignment,
    `PurgeService.runtime`); nothing in a running one is ever changed, and a batch takes one snapshot at its
    start and runs on it to its last call."""

    config: Config
    providers: Mapping[str, Provider]
    executor: Executor  # kept across reloads for unchanged providers: pacing state is per provider
    secrets: Sequence[str] = ()  # resolved credential values, only ever used to redact text (may grow)
    verification: Verification | None = None  # None: no provider verifies its purges

    @property
    def specs(self) -> dict[str, ProviderSpec]:
        return {name: provider.spec for name, provider in self.providers.items()}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


class PurgeService:
    """The function's wiring, built once per cold start: the running `Runtime` snapshot (replaced whole on a
    configuration reload), the ledger and trail, the queues and where verification reports."""

    def __init__(
        self,
        *,
        config: Config,
        providers: Mapping[str, Provider],
        ledger: Ledger,
        executor: Executor,
        path_counter: PathCounter | None = None,
        windows: DynamoDBWindows | None = None,
        queues: Queues | None = None,
        secrets: Sequence[str] = (),
        trail: DynamoDBTrail | None = None,
        sqs_factory: Callable[[], Any] = _default_sqs,
        reload: ConfigReload | None = None,
        verification_wiring: VerificationWiring | None = None,
        verification: Verification | None = None,
    ) -> None:
        """`path_counter`: the month's billed CloudFront paths (same table as the ledger); `windows`: coalescing
        windows (same table; None: not read); `trail`: the purge trail (`cdnpurge status`, None: not kept);
        `reload`: None when the configuration is fixed for the service's life."""
        self.runtime = Runtime(config, providers, executor, secrets, verification)
        self.ledger = ledger
        self.path_counter = path_counter
        self.windows = windows
        self.queues = queues or Queues()
        self.trail = trail
        self.sqs_factory = sqs_factory
        self.reload = reload
        self.verification_wiring = verification_wiring or VerificationWiring()
        # The stack's account (HOME_ACCOUNT_ID): other accounts' changes carry theirs in their ids.
        self.home_account: str | None = None

    # The running snapshot's parts, read-only: change them by swapping the whole `runtime`.
    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self.runtime.providers

    @property
    def executor(self) -> Executor:
        return self.runtime.executor

    @property
    def secrets(self) -> Sequence[str]:
        return self.runtime.secrets

    @property
    def specs(self) -> dict[str, ProviderSpec]:
        return self.runtime.specs

    @property
    def verification(self) -> Verification | None:
        return self.runtime.verification

    @verification.setter
    def verification(self, verification: Verification | None) -> None:
        """Tests and the bench wire their own verification: the snapshot is replaced, not changed."""
        self.runtime = replace(self.runtime, verification=verification)

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
        meter: Meter | None = None,
    ) -> PurgeService:
        """`meter`: the account-wide rate meter (None: each invocation paces at its static share);
        `concurrency`: how many invocations may run at once (the event source's MaximumConcurrency);
        `clients`: an HTTP (or boto3) client per provider name (tests, the local stack);
        `trail_table_name`: where the purge trail goes (None: no trail); `verification`: what verification
        reports to and compares with (default: the purge trail, and the content bucket)."""
        dynamodb = dynamodb_client or aws_client("dynamodb")
        purgers = build_purgers(
            config.providers,
            environ=environ,
            secret_reader=secret_reader,
            on_attempt=on_attempt,
            clock=clock,
            sleep=sleep,
            concurrency=concurrency,
            clients=clients,
            meter=meter,
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
            windows=DynamoDBWindows(dynamodb, table_name),
        )
        service.wire_verification()
        return service

    def wire_verification(self) -> None:
        """Build verification over the running snapshot's providers and executor, or none when no provider
        has a `verify:` block."""
        self.runtime = self._with_verification(self.runtime)

    def _with_verification(self, runtime: Runtime) -> Runtime:
        """`runtime` with verification built over its own providers and executor (or none)."""
        verifies = any(provider.verify is not None for provider in runtime.config.providers)
        return replace(
            runtime, verification=Verification(self, self.verification_wiring, runtime) if verifies else None
        )

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        on_attempt: AttemptListener | None = None,
        config_clock: Callable[[], float] = time.monotonic,
        ssm_reader: Callable[[str], str] | None = None,
        verification: VerificationWiring | None = None,
    ) -> PurgeService:
        """The deployed service; its configuration is checked for changes every `CONFIG_CHECK_SECONDS`
        of `config_clock` (`ConfigReload`), reading an SSM parameter with `ssm_reader` (default: through the
        runtime's bounded SSM client); `verification` overrides what verification reports to (default: the
        purge trail). Every read at the cold start ends within `CONFIGURATION_READ_SECONDS`."""
        env = os.environ if environ is None else environ
        settings = LambdaEnvironment.read(env)
        ssm_reader = ssm_reader or BoundedParameters().parameter
        with bounded_call(Deadline.after(CONFIGURATION_READ_SECONDS), 0, what="reading the configuration"):
            text = read_config_text(settings.purge_config, ssm_reader=ssm_reader)
        # One DynamoDB client for the ledger, trail, windows and the rate meter: each client costs a cold start
        # its own session and service model (tens of milliseconds), and boto3 clients are safe across threads.
        dynamodb = aws_client("dynamodb")
        meter = (
            DynamoDBMeter(dynamodb, settings.rate_meter_table_name or settings.idempotency_table_name)
            if settings.rate_meter == "on"
            else None
        )

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
            if any(p.coalesce_seconds for p in config.providers) and settings.purge_queue_url is None:
                raise ConfigError("a provider has coalesce_seconds set but environment variable PURGE_QUEUE_URL is not")
            return config

        def make_purgers(config: Config) -> Purgers:
            return build_purgers(
                config.providers,
                environ=env,
                on_attempt=on_attempt,
                concurrency=settings.maximum_concurrency,
                meter=meter,
            )

        config = check(parse_config(text, source=settings.purge_config, require_credentials=True))
        service = cls.build(
            config,
            table_name=settings.idempotency_table_name,
            ttl_seconds=settings.idempotency_ttl_seconds,
            dynamodb_client=dynamodb,
            environ=env,
            on_attempt=on_attempt,
            queues=Queues(
                dead_letter_url=settings.dead_letter_queue_url,
                purge_url=settings.purge_queue_url,
                max_receive_count=settings.max_receive_count,
                batching_window_seconds=settings.batching_window_seconds,
            ),
            concurrency=settings.maximum_concurrency,
            trail_table_name=settings.trail_table_name,
            trail_retention_seconds=settings.trail_retention_seconds,
            verification=verification,
            meter=meter,
        )
        service.home_account = settings.home_account_id
        service.reload = ConfigReload(
            location=settings.purge_config,
            text=text,
            read=lambda location: read_config_text(location, ssm_reader=ssm_reader),
            check=check,
            make_purgers=make_purgers,
            checked_at=config_clock(),
            clock=config_clock,
        )
        return service

    def redact(self, text: str) -> str:
        return self.runtime.redact(text)

    def coalescer(self) -> Coalescer | None:
        """Coalescing over this service's table and purge queue (`cdnpurge.runtime.coalesce`)."""
        if self.windows is None:
            return None
        send = flush_sender(lambda: self.sqs, self.queues.purge_url)
        return Coalescer(self.windows, send, self.redact, self.queues.batching_window_seconds)

    def reload_if_changed(self, deadline: Deadline) -> ConfigChange:
        """Apply a changed configuration document (see `ConfigReload`); a refused one changes nothing. The
        reads (the document, the new providers' secrets) end within `CONFIGURATION_READ_SECONDS` and before
        `deadline`; one that cannot is reported like a refused document, and the previous configuration keeps
        running until the next check."""
        reload = self.reload
        if reload is None or reload.clock() - reload.checked_at < reload.interval:
            return ConfigChange()
        reload.checked_at = reload.clock()
        try:
            with bounded_call(deadline, CONFIGURATION_READ_SECONDS, what="re-checking the configuration"):
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
        # One new snapshot, swapped in whole: nothing of the running one is changed.
        self.runtime = self._with_verification(Runtime(config, purgers.providers, purgers.executor, purgers.secrets))
        reload.text = text
        return ConfigChange(reloaded=True)

    def handle(
        self,
        event: Mapping[str, Any],
        *,
        remaining_ms: Callable[[], int] | None = None,
    ) -> BatchReport:
        """Run one batch before one deadline. With a Lambda context, the answer comes before Lambda's
        deadline: provider calls end `SAFETY_MARGIN_SECONDS` before it, ledger calls `AWS_CALL_SECONDS + REPLY_SECONDS`
        before it, the steps after the batch `REPLY_SECONDS` before it. Without one (CLI, demo), provider
        calls have `NO_CONTEXT_SECONDS`."""
        clock = self.executor.clock
        given = Deadline(clock() + remaining_ms() / 1000, clock) if remaining_ms else None
        config_change = self.reload_if_changed(
            (given or Deadline.after(NO_CONTEXT_SECONDS, clock)).earlier(REPLY_SECONDS)
        )
        runtime = self.runtime  # this batch's snapshot, from its first call to its last
        answer_by = given or Deadline.after(NO_CONTEXT_SECONDS + SAFETY_MARGIN_SECONDS, clock)
        run = run_batch(
            event,
            config=runtime.config,
            specs=runtime.specs,
            ledger=self.ledger,
            executor=runtime.executor,
            deadline=answer_by.earlier(SAFETY_MARGIN_SECONDS),
            remaining_ms=remaining_ms,
            redact=runtime.redact,
            settle_by=answer_by.earlier(AWS_CALL_SECONDS + REPLY_SECONDS),
            path_counter=self.path_counter,
            month=month_of(time.time()),
            home_account=self.home_account,
            coalescer=self.coalescer(),
        )
        batch = AfterBatch.of(event, run)
        after_by = answer_by.earlier(REPLY_SECONDS)
        trail = self._trail_step(runtime).run(batch, after_by, runtime.redact)
        verified = self._verification_step(runtime).run(batch, after_by, runtime.redact)
        continued = self._continuation_step(runtime).run(batch, after_by, runtime.redact)
        if continued.continued:  # acknowledged: neither dead-lettered nor made visible again
            kept = tuple(source for source in run.failures.sources if source not in continued.continued)
            batch = AfterBatch.of(event, run := replace(run, failures=replace(run.failures, sources=kept)))
        dead_letters = self._dead_letter_step(runtime).run(batch, after_by, runtime.redact)
        return BatchReport(
            run,
            dead_letters=dead_letters,
            repurge=self._repurge_step(runtime).run(batch, after_by, runtime.redact),
            trail=trail,
            verification=verified,
            visibility=self._visibility_step(runtime, dead_letters).run(batch, after_by, runtime.redact),
            config_change=config_change,
            continuations=continued,
        )

    def _continuation_step(self, runtime: Runtime) -> AfterBatchStep[Continuations]:
        def send(batch: AfterBatch, deadline: Deadline) -> Continuations:
            """Send again the records that advanced, on their last allowed receive (`runtime.continuation`)."""
            failures = batch.run.failures
            purge_url, progressing = self.queues.purge_url, failures.progressing - failures.permanent
            if purge_url is None or not progressing:
                return Continuations()
            change_ids: dict[str, tuple[str, ...]] = {}
            for change in batch.run.decoded.changes:
                change_ids[change.source_id] = (*change_ids.get(change.source_id, ()), change.id)
            return continue_progressing(
                self.sqs,
                purge_url,
                batch.records,
                progressing=progressing,
                change_ids=change_ids,
                max_receive_count=self.queues.max_receive_count,
                redact=runtime.redact,
                deadline=deadline,
            )

        # Nothing continued: the records stay failed, and dead-lettering applies as before.
        return AfterBatchStep("continuations", send, lambda _batch, why: Continuations(errors=(why,)))

    def _trail_step(self, runtime: Runtime) -> AfterBatchStep[TrailWriting]:
        def write(batch: AfterBatch, deadline: Deadline) -> TrailWriting:
            if self.trail is None:
                return TrailWriting()
            return self.trail.record(batch.run, runtime.config.rules, runtime.redact, deadline=deadline)

        return AfterBatchStep("purge trail", write, lambda _batch, why: TrailWriting(failed=1, cause=why))

    def _verification_step(self, runtime: Runtime) -> AfterBatchStep[VerificationReport]:
        def verify(batch: AfterBatch, deadline: Deadline) -> VerificationReport:
            if runtime.verification is None:
                return VerificationReport()
            return runtime.verification.handle(batch, deadline=deadline)

        def failed(batch: AfterBatch, why: str) -> VerificationReport:
            # Every check message goes back to SQS: run again on redelivery, never acknowledged unrun.
            return VerificationReport(failed_sources=[message_id for message_id, _ in batch.checks], errors=[why])

        return AfterBatchStep("verification", verify, failed)

    def _dead_letter_step(self, runtime: Runtime) -> AfterBatchStep[DeadLettering]:
        def send(batch: AfterBatch, deadline: Deadline) -> DeadLettering:
            if self.queues.dead_letter_url is None:
                return DeadLettering()
            failures = batch.run.failures
            return dead_letter(
                self.sqs,
                self.queues.dead_letter_url,
                batch.records,
                failed_sources=failures.sources,
                reasons=failures.reasons,
                permanent=failures.permanent,
                max_receive_count=self.queues.max_receive_count,
                redact=runtime.redact,
                deadline=deadline,
            )

        # Nothing moved: every failed record stays in batchItemFailures (SQS's redrive is the fallback).
        return AfterBatchStep("dead letters", send, lambda _batch, why: DeadLettering(errors=(why,)))

    def _visibility_step(self, runtime: Runtime, dead_letters: DeadLettering) -> AfterBatchStep[VisibilityChanges]:
        def change(batch: AfterBatch, deadline: Deadline) -> VisibilityChanges:
            purge_url, failures = self.queues.purge_url, batch.run.failures
            if purge_url is None or not failures.retry_in:
                return VisibilityChanges()
            return return_when_due(
                self.sqs,
                purge_url,
                batch.records,
                returned=[source for source in failures.sources if source not in dead_letters.moved],
                retry_in=failures.retry_in,
                redact=runtime.redact,
                deadline=deadline,
            )

        # Unchanged records come back after the queue's own visibility timeout.
        return AfterBatchStep("visibility", change, lambda _batch, why: VisibilityChanges(errors=(why,)))

    def _repurge_step(self, runtime: Runtime) -> AfterBatchStep[RepurgeScheduling]:
        def schedule(batch: AfterBatch, deadline: Deadline) -> RepurgeScheduling:
            delay, purge_url, run = runtime.config.repurge_delay_seconds, self.queues.purge_url, batch.run
            if not delay or purge_url is None:
                return RepurgeScheduling()
            changes = repurge_candidates(
                run.decoded.changes, owed=run.owed, completed=run.completed, duplicates=run.duplicates
            )
            if not changes:
                return RepurgeScheduling()
            return schedule_repurge(
                self.sqs, purge_url, changes, delay_seconds=delay, redact=runtime.redact, deadline=deadline
            )

        return AfterBatchStep("re-purges", schedule, lambda _batch, why: RepurgeScheduling(errors=(why,)))


class Verification:
    """Runs the check messages of a batch and schedules checks for what it purged (docs/verification.md).

    A check is a delayed message on the purge queue; one that cannot be run or rescheduled is returned in
    `batchItemFailures` (SQS redelivers it), a malformed one is dead-lettered at once.
    """

    def __init__(self, service: PurgeService, wiring: VerificationWiring, runtime: Runtime | None = None) -> None:
        """Over `runtime`'s providers and executor (default: the service's running snapshot)."""
        self._service = service
        self._runtime = runtime or service.runtime
        self._batching_window = service.queues.batching_window_seconds
        self.clock = wiring.clock
        self.verifier = Verifier(
            settings={provider.name: provider for provider in self._runtime.config.providers},
            providers=self._runtime.providers,
            specs=self._runtime.specs,
            executor=self._runtime.executor,
            origin=wiring.origin or S3Versions(aws_client("s3")),
            schedule=self.schedule,
            dead_letter=self._dead_letter,
            clock=wiring.clock,
            listener=wiring.listener or SilentListener(),
            prober_factory=wiring.prober_factory,
        )

    def schedule(self, check: VerifyCheck, delay_seconds: int) -> None:
        """Enqueue `check` on the purge queue, delayed, within the check's bounded call (raises when it
        cannot: the check message is then returned to SQS)."""
        queue = self._service.queues.purge_url
        if queue is None:
            raise ConfigError("verification needs PURGE_QUEUE_URL to schedule its checks")
        with nested_call(CALL_SECONDS, what="scheduling a check", need=MIN_CALL_SECONDS):
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
            redact=self._runtime.redact,
            deadline=current_call("dead-lettering a check"),
        )
        if problem is not None:
            raise RuntimeError(f"dead-letter send failed: {problem}")

    def handle(self, batch: AfterBatch, *, deadline: Deadline) -> VerificationReport:
        """Run the batch's check messages, then schedule checks for what it purged; every call ends before
        `deadline` (each check runs as one bounded call, its scheduling and dead-lettering inside it)."""
        report = VerificationReport()
        run = batch.run
        for message_id, check in batch.checks:  # validated by the decode stage (`core.events.own`)
            try:
                refuse_times(check, what="verification message", now=self.clock())
            except MalformedError as exc:
                expired = isinstance(exc, ExpiredMessageError)
                why = DeadLetterReason.EXPIRED if expired else DeadLetterReason.PERMANENT
                record = batch.records.get(message_id)
                body = str(record.get("body") or "") if record is not None else encode_check(check)
                self._malformed(message_id, body, exc.message, report, why=why, deadline=deadline)
                continue
            try:
                with bounded_call(deadline, 0, what=f"verification check {message_id}"):
                    self.verifier.run(check, report, deadline=current_call("verification check"))
            except Exception as exc:  # the check stays with SQS: redelivered, run again
                report.failed_sources.append(message_id)
                report.errors.append(self._runtime.redact(f"{message_id}: {describe_error(exc)}"))
        checks = plan_checks(
            changes=run.decoded.changes,
            routed=run.translation.routed,
            specs=self._runtime.specs,
            settings=self.verifier.settings,
            purged=verified_purges(run.outcomes, run.coalescing, self.clock(), self._batching_window),
            job_providers=frozenset(name for name, p in self._runtime.providers.items() if has_jobs(p)),
            now=self.clock(),
            report=report,
        )
        self._schedule_all(checks, report, deadline)
        return report

    def _schedule_all(self, checks: list[VerifyCheck], report: VerificationReport, deadline: Deadline) -> None:
        """Enqueue a batch's new checks, ten to a SendMessageBatch call (a storm's checks cost a few calls).
        Best effort, as re-purges: the purges happened; a check not sent is reported and counted."""
        queue = self._service.queues.purge_url
        entries = []
        for number, check in enumerate(checks):
            verify = self.verifier.settings[check.provider].verify
            delay = first_delay(check, verify) if verify else 1
            try:  # validated on write: one check its reader would refuse is reported, the others still sent
                body = encode_check(check)
            except Exception as exc:
                report.errors.append(self._runtime.redact(f"check not scheduled: {describe_error(exc)}"))
                continue
            entries.append({"Id": str(number), "MessageBody": body, "DelaySeconds": delay})
        for chunk in send_batches(entries):
            try:
                if queue is None:
                    raise ConfigError("verification needs PURGE_QUEUE_URL to schedule its checks")
                with bounded_call(deadline, CALL_SECONDS, what="scheduling checks", need=MIN_CALL_SECONDS):
                    answer = self._service.sqs.send_message_batch(QueueUrl=queue, Entries=chunk)
                problems = [f"{f.get('Code')}: {f.get('Message', '')}" for f in answer.get("Failed", [])]
            except Exception as exc:
                problems = [describe_error(exc)] * len(chunk)
            report.errors.extend(self._runtime.redact(f"check not scheduled: {problem}") for problem in problems)

    def _malformed(
        self,
        message_id: str,
        body: str,
        message: str,
        report: VerificationReport,
        *,
        why: DeadLetterReason,
        deadline: Deadline,
    ) -> None:
        queue = self._service.queues.dead_letter_url
        problem = (
            "no DEAD_LETTER_QUEUE_URL"
            if queue is None
            else dead_letter_body(
                self._service.sqs,
                queue,
                body,
                why=why,
                reasons=(message,),
                redact=self._runtime.redact,
                deadline=deadline,
            )
        )
        if problem is not None:
            report.failed_sources.append(message_id)
            report.errors.append(self._runtime.redact(f"{message_id}: {message}; {problem}"))
