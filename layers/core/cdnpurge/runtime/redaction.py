"""Redaction: resolved credentials never leave the process in a log line, an error, a metric, a batch
reason, a dead-letter attribute or CLI output, whole or in part.

Every provider is wrapped in `RedactingProvider` when the service (or the CLI, through the same factory)
builds it, so the executor only ever sees redacted provider errors *and* results (a CDN may echo the token
as its purge id); the service redacts what it writes itself (batch reasons, SQS send failures) with `redact`.

Two rules make partial leaks impossible: text is redacted *before* it is bounded (`clean`: an error cut at
300 characters once kept 25 of a token's 28), and any run of `FRAGMENT_CHARS` or more characters of a
secret is redacted too, so a CDN quoting part of a key (or an adapter cutting one) leaks no usable piece.
Adapters therefore never truncate a provider's text themselves; the wrapper bounds it once, after.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import msgspec

from cdnpurge.core.errors import bounded
from cdnpurge.core.protocol import Provider, ProviderWrapper, PurgeResult
from cdnpurge.core.provider_errors import ProviderError

if TYPE_CHECKING:
    from cdnpurge.core.deadline import Deadline
    from cdnpurge.core.models import PurgeRequest

REDACTED: Final = "<redacted>"
# Any run this long of a secret is redacted: the "credential fragment" no output may hold.
FRAGMENT_CHARS: Final = 12
# A provider's text (error message, purge id, detail) is bounded to this many characters, after redaction.
MAX_TEXT_CHARS: Final = 300


class RedactingProvider(ProviderWrapper):
    """A provider whose errors and results never carry a credential, even when the CDN echoes a key back.

    Every provider is wrapped once at build time, so the executor, logs, metrics, batch reasons, CLI
    output and dead-letter attributes only ever see redacted, bounded text.
    """

    def __init__(self, inner: Provider, secrets: Sequence[str]) -> None:
        """`secrets` may grow after this (a rotated credential, `cdnpurge.runtime.purgers`): it is read on each call."""
        super().__init__(inner)
        self._secrets = secrets

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        try:
            result = self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)
        except ProviderError as error:
            text = str(error)
            message, clean_text = clean(error.message, self._secrets), clean(text, self._secrets)
            if message == error.message and clean_text == text:
                raise
            # Same class and fields (status, retry_after, ...), message redacted; built without __init__,
            # whose signature differs per error class.
            cleaned = type(error).__new__(type(error))
            cleaned.__dict__.update(error.__dict__)
            cleaned.message, cleaned.args = message, (clean_text,)
            raise cleaned from None
        return msgspec.structs.replace(
            result,
            provider_id=None if result.provider_id is None else clean(result.provider_id, self._secrets),
            detail=clean(result.detail, self._secrets),
            extra=_cleaned(result.extra, self._secrets),
        )


def _cleaned(value: Any, secrets: Sequence[str]) -> Any:
    """`value` (a provider's `extra`: JSON-like) with every string in it cleaned."""
    if isinstance(value, str):
        return clean(value, secrets)
    if isinstance(value, Mapping):
        return {_cleaned(key, secrets): _cleaned(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cleaned(item, secrets) for item in value)
    return value


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret form, and every run of `FRAGMENT_CHARS`+ characters of one, redacted."""
    return _redact_fragments(_redact_whole(text, secrets), secrets)


def clean(text: str, secrets: Sequence[str], limit: int = MAX_TEXT_CHARS) -> str:
    """Redact, then bound: the one way provider text becomes a message.

    Whole secrets are replaced first, over the full text; then the text is bounded, and only what is kept
    is searched for fragments (linear in `limit`, whatever the size of a CDN's answer). A cut cannot expose
    a secret: none is left whole, and a piece of one left by a CDN is caught in what is kept."""
    return _redact_fragments(bounded(_redact_whole(text, secrets), limit), secrets)


def _redact_whole(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_fragments(text: str, secrets: Sequence[str]) -> str:
    """Replace every run of text covered by `FRAGMENT_CHARS`-long pieces of a secret: one pass of
    fixed-width windows looked up in a set, so linear in `text`."""
    pieces = _fragments(tuple(secrets))
    if not pieces or len(text) < FRAGMENT_CHARS:
        return text
    parts: list[str] = []
    kept = 0  # text[:kept] is in `parts` already
    run_start, run_end = -1, -1
    for start in range(len(text) - FRAGMENT_CHARS + 1):
        if text[start : start + FRAGMENT_CHARS] not in pieces:
            continue
        if start > run_end:  # a new run (runs that overlap or touch are one)
            if run_end >= 0:
                parts.extend((text[kept:run_start], REDACTED))
                kept = run_end
            run_start = start
        run_end = start + FRAGMENT_CHARS
    if run_end < 0:
        return text
    parts.extend((text[kept:run_start], REDACTED, text[run_end:]))
    return "".join(parts)


@cache
def _fragments(secrets: tuple[str, ...]) -> frozenset[str]:
    """Every `FRAGMENT_CHARS`-long piece of every secret form (computed once per set of secrets)."""
    return frozenset(
        secret[start : start + FRAGMENT_CHARS]
        for secret in secrets
        for start in range(len(secret) - FRAGMENT_CHARS + 1)
    )


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Each secret as sent and as a URL or JSON would carry it; longest first, trivially short ones skipped."""
    forms = set()
    for value in values:
        if len(value) < 4:
            continue
        forms.update({value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"')})
    return tuple(sorted(forms, key=len, reverse=True))
