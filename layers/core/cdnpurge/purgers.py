"""Providers and the executor, built from configuration: the one factory the service and the CLI share.

Every credential is resolved here, every provider wrapped in `RedactingProvider` with the forms of every
resolved secret, and the executor built over the wrapped providers, so no caller can end up with a
provider whose errors might carry a credential, or an executor pacing an unwrapped one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from cdnpurge.credentials import SecretReader, powertools_secret_reader, resolve
from cdnpurge.execute import AttemptListener, Executor
from cdnpurge.providers.base import Provider
from cdnpurge.providers.registry import build_providers
from cdnpurge.providers.spec import ProviderSettings
from cdnpurge.redaction import RedactingProvider, redact, secret_forms


@dataclass(frozen=True)
class Purgers:
    """Redacting providers by name, the executor that paces them, and the secrets to redact elsewhere."""

    providers: Mapping[str, Provider]
    executor: Executor
    secrets: tuple[str, ...]  # resolved credential values in every form they travel in; only for redaction

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def build_purgers(
    provider_settings: Iterable[ProviderSettings],
    *,
    environ: Mapping[str, str] | None = None,
    secret_reader: SecretReader = powertools_secret_reader,
    on_attempt: AttemptListener | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    concurrency: int = 1,
    clients: Mapping[str, Any] | None = None,
) -> Purgers:
    """`concurrency`: how many invocations may run at once (the event source's MaximumConcurrency);
    each paces at its share of every provider's rate, so together they never exceed it. `clients`: an
    HTTP (or boto3) client per provider name, for tests that script what a CDN answers."""
    secrets: list[str] = []

    def credentials_for(settings: ProviderSettings) -> dict[str, SecretStr]:
        resolved = resolve(
            settings.credentials, owner=f"providers.{settings.name}", environ=environ, secret_reader=secret_reader
        )
        secrets.extend(value.get_secret_value() for value in resolved.values())
        return resolved

    built = build_providers(provider_settings, credentials_for, clients)  # resolves every credential into `secrets`
    redaction = secret_forms(secrets)
    providers: dict[str, Provider] = {name: RedactingProvider(provider, redaction) for name, provider in built.items()}
    executor = Executor(
        providers,
        clock=clock,
        sleep=sleep,
        on_attempt=on_attempt,
        rate_share=1 / concurrency,
        redact=lambda text: redact(text, redaction),
    )
    return Purgers(providers, executor, redaction)
