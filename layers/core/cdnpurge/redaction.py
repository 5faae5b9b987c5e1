"""Redaction: resolved credentials never leave the process in a log line, an error, a metric, a batch
reason or a dead-letter attribute.

Every provider is wrapped in `RedactingProvider` when the service (or the CLI, through the same factory)
builds it, so the executor only ever sees redacted provider errors; the service redacts what it writes
itself (batch reasons, SQS send failures) with `redact`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from cdnpurge.providers.base import Provider, ProviderWrapper, PurgeResult
from cdnpurge.providers.errors import ProviderError

if TYPE_CHECKING:
    from cdnpurge.models import PurgeRequest

REDACTED: Final = "<redacted>"


class RedactingProvider(ProviderWrapper):
    """A provider whose errors never carry a credential, even when the CDN echoes a bad key back.

    Every provider is wrapped once at build time, so the executor, logs, metrics, batch reasons and
    dead-letter attributes only ever see redacted messages.
    """

    def __init__(self, inner: Provider, secrets: Sequence[str]) -> None:
        """`secrets` may grow after this (a rotated credential, `cdnpurge.purgers`): it is read on each error."""
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


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Each secret as sent and as a URL or JSON would carry it; longest first, trivially short ones skipped."""
    forms = set()
    for value in values:
        if len(value) < 4:
            continue
        forms.update({value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"')})
    return tuple(sorted(forms, key=len, reverse=True))
