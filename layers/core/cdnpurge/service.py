"""Wiring: configuration, providers, ledger and executor, built once per cold start and reused.

Nothing here runs at import. `PurgeService.from_environment()` reads the typed environment the SAM
template sets; tests, the CLI and the demo build the same object with explicit arguments.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from cdnpurge.config import Config, load_config
from cdnpurge.credentials import SecretReader, powertools_secret_reader, resolve
from cdnpurge.execute import AttemptListener, Executor
from cdnpurge.ledger import Ledger, PowertoolsLedger
from cdnpurge.pipeline import BatchReport, run_batch
from cdnpurge.providers import build_providers
from cdnpurge.providers.base import Provider, ProviderSettings, ProviderSpec

# Stop starting new provider calls this long before Lambda's deadline: settling the ledger and
# returning the batch response must still fit.
SAFETY_MARGIN_SECONDS = 5.0


@dataclass
class PurgeService:
    config: Config
    providers: Mapping[str, Provider]
    ledger: Ledger
    executor: Executor  # kept across warm invocations: pacing state is per provider, not per batch

    @property
    def specs(self) -> dict[str, ProviderSpec]:
        return {name: provider.spec for name, provider in self.providers.items()}

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
    ) -> PurgeService:
        def credentials_for(settings: ProviderSettings) -> Any:
            return resolve(
                settings.credentials,
                owner=f"providers.{settings.name}",
                environ=environ,
                secret_reader=secret_reader,
            )

        persistence = DynamoDBPersistenceLayer(
            table_name=table_name, boto3_client=dynamodb_client or boto3.client("dynamodb")
        )
        providers = build_providers(config, credentials_for)
        return cls(
            config=config,
            providers=providers,
            ledger=PowertoolsLedger(persistence, expires_after_seconds=ttl_seconds),
            executor=Executor(providers, clock=clock, sleep=sleep, on_attempt=on_attempt),
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PurgeService:
        env = os.environ if environ is None else environ
        config = load_config(_required(env, "PURGE_CONFIG"))
        return cls.build(
            config,
            table_name=_required(env, "IDEMPOTENCY_TABLE_NAME"),
            ttl_seconds=int(env.get("IDEMPOTENCY_TTL_SECONDS", "3600")),
            environ=env,
        )

    def handle(
        self,
        event: Mapping[str, Any],
        *,
        remaining_ms: Callable[[], int] | None = None,
    ) -> BatchReport:
        """Run one batch; without a Lambda context (CLI, demo) the budget is a fixed minute."""
        budget = (remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS) if remaining_ms else 60.0
        return run_batch(
            event,
            config=self.config,
            specs=self.specs,
            ledger=self.ledger,
            executor=self.executor,
            deadline=self.executor.clock() + max(0.0, budget),
            remaining_ms=remaining_ms,
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is required")
    return value
