"""The package-wide base exception, so a caller can tell cdnpurge's own failures from everything else.

Each stage defines its errors beside its code (`providers.errors`, `ledger`, `config`, `credentials`), all
deriving from `CdnpurgeError`, each named for what failed (`Ledger...Error`, `Provider...Error`,
`Config...Error`). Records of a failure that are data, not exceptions, are named `...Failure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

_DESCRIBED_CHARS: Final = 200


class CdnpurgeError(Exception):
    """Base of every exception cdnpurge raises on purpose."""


def describe_error(error: BaseException, redact: Callable[[str], str] = str) -> str:
    """An AWS or store failure for a log line or a batch reason: its type and its message, redacted with
    `redact` (callers that might see a credential pass one) and only then bounded, so a cut can never
    leave part of a secret that redaction would have caught whole."""
    return f"{type(error).__name__}: {bounded(redact(str(error)), _DESCRIBED_CHARS)}"


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was. Redact before calling, never after."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


_SHOWN_CHARS: Final = 120


def show(text: str) -> str:
    """Quote untrusted text for a message, bounded so a huge field cannot flood the logs."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} chars)"
