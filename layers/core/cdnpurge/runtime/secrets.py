"""Secrets Manager, read the way the function and the CLI read it: Powertools Parameters, cached for five
minutes across warm invocations, and read again past the cache after a provider refused the cached value.

Every read goes through the runtime's bounded Secrets Manager client (`cdnpurge.runtime.bounded.parameters`),
so it runs inside a bounded call (`build_purgers` opens one for the reads of a cold start or a reload, the
rotation wrapper one for the re-read after a 401) and ends by its deadline; a read refused for lack of time
is raised as the `OutOfTimeError` it is, so the caller defers instead of taking the secret as unreadable.

A failure becomes `SecretReadError` with one line naming the AWS problem (`aws_errors.aws_problem`), which
`cdnpurge.core.credentials.resolve` reports with the secret's name and its owner.
"""

from __future__ import annotations

from typing import Any

from cdnpurge.core.credentials import SecretReadError
from cdnpurge.core.deadline import OutOfTimeError
from cdnpurge.runtime.aws_errors import aws_problem
from cdnpurge.runtime.bounded.parameters import BoundedParameters


def powertools_secret_reader(name: str) -> Any:
    """Secrets Manager through Powertools Parameters: cached for 5 minutes across warm invocations."""
    return _read(name, force_fetch=False)


def powertools_fresh_secret_reader(name: str) -> Any:
    """Secrets Manager past the cache (`force_fetch`), after a provider refused the cached value: a rotated
    secret is read at once, and the cache then holds the new value."""
    return _read(name, force_fetch=True)


def _read(name: str, *, force_fetch: bool) -> Any:
    try:
        parameters = BoundedParameters()  # the process's one provider and cache
        return parameters.fresh_secret(name) if force_fetch else parameters.secret(name)
    except OutOfTimeError:
        raise
    except Exception as exc:  # boto3's and Powertools' own error types: named in one line
        raise SecretReadError(aws_problem(exc) or type(exc).__name__) from exc
