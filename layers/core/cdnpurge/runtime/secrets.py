"""Secrets Manager, read the way the CLI and a service built without explicit readers read it: Powertools
Parameters through the runtime's bounded client (`cdnpurge.runtime.bounded.parameters`), cached for five
minutes across warm invocations, and read again past the cache after a provider refused the cached value.

Each read is one bounded call of its own (`READ_SECONDS` at most, botocore's standard retries included, and
never past an enclosing call's end), so a Secrets Manager endpoint that hangs costs a command seconds, not
botocore's default 60 s per attempt; a read refused for lack of time is raised as the `OutOfTimeError` it
is, so the caller defers (the request after a 401) instead of taking the secret as unreadable.
A failure becomes `SecretReadError` with one line naming the AWS problem (`aws_errors.aws_problem`), which
`cdnpurge.core.credentials.resolve` reports with the secret's name and its owner.
"""

from __future__ import annotations

from typing import Any, Final

from cdnpurge.core.credentials import SecretReadError
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.runtime.aws_errors import aws_problem
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.parameters import BoundedParameters

READ_SECONDS: Final = 10.0


def powertools_secret_reader(name: str) -> Any:
    """Secrets Manager through Powertools Parameters: cached for 5 minutes across warm invocations."""
    return _read(name, fresh=False)


def powertools_fresh_secret_reader(name: str) -> Any:
    """Secrets Manager past the cache (`force_fetch`), after a provider refused the cached value: a rotated
    secret is read at once, and the cache then holds the new value."""
    return _read(name, fresh=True)


def _read(name: str, *, fresh: bool) -> Any:
    # Powertools' shared providers hold the bounded clients and the cache (`BoundedParameters`), so a fresh
    # view per read keeps both, and `parameters.clear_caches()` drops both.
    parameters = BoundedParameters()
    try:
        with bounded_call(Deadline.after(READ_SECONDS), READ_SECONDS, what=f"reading secret {name}"):
            return parameters.fresh_secret(name) if fresh else parameters.secret(name)
    except OutOfTimeError:  # not read for lack of time (the enclosing call's): the caller defers
        raise
    except Exception as exc:  # boto3's, Powertools' and the deadline's own error types: named in one line
        raise SecretReadError(aws_problem(exc) or type(exc).__name__) from exc
