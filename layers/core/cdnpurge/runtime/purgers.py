"""Providers and the executor, built from configuration: the one factory the service and the CLI share.

Every credential is resolved here, every provider wrapped in `RedactingProvider` with the forms of every
resolved secret, and the executor built over the wrapped providers, so no caller can end up with a
provider whose errors might carry a credential, or an executor pacing an unwrapped one.

Rotated credentials: a provider answering 401/403 (`AuthError`) has its credentials read again, past any
cache (`RotatingProvider`); when a value changed, the provider is rebuilt with the new one, the new value
joins the redaction list, and the call is made once more. When nothing changed, the refusal stands (a
wrong token stays wrong: no retry). Before this, a token rotation dead-lettered every purge of every warm
container until it was recycled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from cdnpurge.core.credentials import Secret, SecretReader, resolve
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, ProviderWrapper, PurgeResult
from cdnpurge.core.provider_errors import AuthError
from cdnpurge.core.registry import REGISTRY
from cdnpurge.core.spec import ProviderSettings
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.execute import AttemptListener, Executor
from cdnpurge.runtime.meter import Meter
from cdnpurge.runtime.redaction import RedactingProvider, redact, secret_forms
from cdnpurge.runtime.secrets import powertools_fresh_secret_reader, powertools_secret_reader

# The longest one re-read of a provider's secrets may take after a refusal (a Secrets Manager call or two).
FRESH_SECRET_SECONDS: Final = 5.0
# The longest reading every provider's secrets may take at a cold start or a reload.
SECRETS_READ_SECONDS: Final = 10.0


class Purgers(msgspec.Struct, frozen=True):
    """Redacting providers by name, the executor that paces them, and the secrets to redact elsewhere."""

    providers: Mapping[str, Provider]
    executor: Executor
    # resolved credential values in every form they travel in; only for redaction. A list shared with every
    # provider's redaction, extended in place when a rotated credential is read.
    secrets: list[str]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


class RotatingProvider(ProviderWrapper):
    """On an `AuthError`, read the provider's credentials again (no cache) and, if one changed, rebuild the
    provider with them and retry the call once; otherwise the refusal stands."""

    def __init__(
        self,
        settings: ProviderSettings,
        build: Callable[[Mapping[str, Secret]], Provider],
        credentials: Mapping[str, Secret],
        read_fresh: Callable[[ProviderSettings], Mapping[str, Secret]],
    ) -> None:
        super().__init__(build(credentials))
        self._settings = settings
        self._build = build
        self._credentials = dict(credentials)
        self._read_fresh = read_fresh
        self._lock = threading.Lock()

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        refused_by = self.inner
        try:
            return refused_by.purge(request, idempotency_token=idempotency_token, deadline=deadline)
        except AuthError:
            if not self._rotated(refused_by, deadline or Deadline.after(FRESH_SECRET_SECONDS)):
                raise
        return self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)

    def _rotated(self, refused_by: Provider, deadline: Deadline) -> bool:
        """Whether the credentials are new since `refused_by` was built (rebuilding it if they are just read).

        The read is one bounded call (`FRESH_SECRET_SECONDS`, before `deadline`); when it cannot start in
        time, `OutOfTimeError` defers the request rather than letting the refusal stand."""
        with self._lock:
            if self.inner is not refused_by:  # another caller already rebuilt it with newer credentials
                return True
            try:
                with bounded_call(deadline, FRESH_SECRET_SECONDS, what=f"re-reading {self._settings.name}'s secret"):
                    fresh = dict(self._read_fresh(self._settings))
            except OutOfTimeError:
                raise
            except Exception:  # unreadable now: the original refusal is the truer answer
                return False
            if {name: value.get_secret_value() for name, value in fresh.items()} == {
                name: value.get_secret_value() for name, value in self._credentials.items()
            }:
                return False
            self.inner = self._build(fresh)
            self._credentials = fresh
            return True


def build_purgers(
    provider_settings: Iterable[ProviderSettings],
    *,
    environ: Mapping[str, str] | None = None,
    secret_reader: SecretReader = powertools_secret_reader,
    fresh_secret_reader: SecretReader | None = None,
    on_attempt: AttemptListener | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    concurrency: int = 1,
    clients: Mapping[str, Any] | None = None,
    meter: Meter | None = None,
) -> Purgers:
    """`meter`: the account-wide rate meter every call reserves its slot in (None, or unreachable: each
    invocation paces at its static share, 1/`concurrency` of every provider's rate, `concurrency` being the
    event source's MaximumConcurrency, so together they never exceed it). `clients`: an
    HTTP (or boto3) client per provider name, for tests that script what a CDN answers.

    `fresh_secret_reader` reads a secret past any cache after an auth error; by default Powertools'
    `force_fetch` for the Powertools reader, else `secret_reader` itself (test readers have no cache)."""
    if fresh_secret_reader is None:
        fresh_secret_reader = (
            powertools_fresh_secret_reader if secret_reader is powertools_secret_reader else secret_reader
        )
    values: dict[str, None] = {}  # every value read, in order (a dict: re-reading one adds nothing)

    def resolved_with(reader: SecretReader) -> Callable[[ProviderSettings], dict[str, Secret]]:
        def credentials_for(settings: ProviderSettings) -> dict[str, Secret]:
            resolved = resolve(
                settings.credentials, owner=f"providers.{settings.name}", environ=environ, secret_reader=reader
            )
            values.update(dict.fromkeys(value.get_secret_value() for value in resolved.values()))
            return resolved

        return credentials_for

    fresh = resolved_with(fresh_secret_reader)
    settings_list = list(provider_settings)
    # One bounded call for every read (within the enclosing one, if any: a reload's).
    with bounded_call(
        Deadline.after(SECRETS_READ_SECONDS), SECRETS_READ_SECONDS, what="reading the providers' secrets"
    ):
        credentials = {settings.name: resolved_with(secret_reader)(settings) for settings in settings_list}
    redaction = list(secret_forms(values))  # every credential is resolved before any provider is built

    def read_fresh(settings: ProviderSettings) -> dict[str, Secret]:
        rotated = fresh(settings)
        redaction[:] = secret_forms(values)  # the new value is redacted from here on
        return rotated

    def builder(settings: ProviderSettings) -> Callable[[Mapping[str, Secret]], Provider]:
        factory = REGISTRY[settings.kind]
        client = (clients or {}).get(settings.name)
        return lambda resolved: RedactingProvider(factory(settings, resolved, client), redaction)

    providers: dict[str, Provider] = {
        settings.name: RotatingProvider(settings, builder(settings), credentials[settings.name], read_fresh)
        for settings in settings_list
    }
    executor = Executor(
        providers,
        clock=clock,
        sleep=sleep,
        on_attempt=on_attempt,
        rate_share=1 / concurrency,
        redact=lambda text: redact(text, redaction),
        meter=meter,
    )
    return Purgers(providers, executor, redaction)
