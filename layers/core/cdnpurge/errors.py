"""The package-wide base exception, so a caller can tell cdnpurge's own failures from everything else.

Each stage defines its errors beside its code (`providers.errors`, `ledger`, `config`, `credentials`), all
deriving from `CdnpurgeError`, each named for what failed (`Ledger...Error`, `Provider...Error`,
`Config...Error`). Records of a failure that are data, not exceptions, are named `...Failure`.
"""

from __future__ import annotations


class CdnpurgeError(Exception):
    """Base of every exception cdnpurge raises on purpose."""


def describe_error(error: BaseException) -> str:
    """An AWS or store failure for a log line or a batch reason: its type and a bounded message (callers
    that might see a provider's text redact it)."""
    return f"{type(error).__name__}: {str(error)[:200]}"


_SHOWN_CHARS = 120


def show(text: str) -> str:
    """Quote untrusted text for a message, bounded so a huge field cannot flood the logs."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} chars)"
