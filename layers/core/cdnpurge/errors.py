"""The package-wide base exception, so a caller can tell cdnpurge's own failures from everything else.

Each stage defines its errors beside its code (`providers.errors`, `ledger`, `config`, `credentials`), all
deriving from `CdnpurgeError`, each named for what failed (`Ledger...Error`, `Provider...Error`,
`Config...Error`). Records of a failure that are data, not exceptions, are named `...Failure`.
"""

from __future__ import annotations


class CdnpurgeError(Exception):
    """Base of every exception cdnpurge raises on purpose."""
