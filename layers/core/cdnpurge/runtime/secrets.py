"""Secrets Manager, read the way the function and the CLI read it: Powertools Parameters, cached for five
minutes across warm invocations, and read again past the cache after a provider refused the cached value.

A failure becomes `SecretReadError` with one line naming the AWS problem (`aws_errors.aws_problem`), which
`cdnpurge.core.credentials.resolve` reports with the secret's name and its owner.
"""

from __future__ import annotations

from typing import Any

from cdnpurge.core.credentials import SecretReadError
from cdnpurge.runtime.aws_errors import aws_problem

CACHE_SECONDS = 300


def powertools_secret_reader(name: str) -> Any:
    """Secrets Manager through Powertools Parameters: cached for 5 minutes across warm invocations."""
    return _read(name, force_fetch=False)


def powertools_fresh_secret_reader(name: str) -> Any:
    """Secrets Manager past the cache (`force_fetch`), after a provider refused the cached value: a rotated
    secret is read at once, and the cache then holds the new value."""
    return _read(name, force_fetch=True)


def _read(name: str, *, force_fetch: bool) -> Any:
    # Imported on first read: Powertools Parameters loads boto3, which a run with only environment credentials
    # (the CLI, tests) never needs.
    from aws_lambda_powertools.utilities import parameters

    try:
        return parameters.get_secret(name, max_age=CACHE_SECONDS, force_fetch=force_fetch)
    except Exception as exc:  # boto3's and Powertools' own error types: named in one line
        raise SecretReadError(aws_problem(exc) or type(exc).__name__) from exc
