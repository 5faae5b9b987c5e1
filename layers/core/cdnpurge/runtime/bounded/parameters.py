"""SSM parameters and Secrets Manager secrets, read through the runtime's bounded clients.

Powertools Parameters builds its own default clients (botocore's 60 s read timeout, legacy retries), so the
configuration re-check every minute and the secret re-read after a 401 could each hold an invocation past
its deadline against an endpoint that hangs. Here Powertools keeps its cache, but every read goes through
`cdnpurge.runtime.bounded.aws.aws_client`, so it must be made inside `bounded_call` and ends by its
deadline. The clients are built on first use (no I/O at import or construction).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Final, TypeVar

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from cdnpurge.core.deadline import OutOfTimeError
from cdnpurge.runtime.bounded.aws import aws_client

T = TypeVar("T")

CACHE_SECONDS: Final = 300  # as Powertools' `get_secret(..., max_age=300)` of the cold start


class BoundedParameters:
    """Cached and fresh reads of SSM parameters and secrets; `ssm` / `secrets`: clients (tests), else the
    runtime's bounded ones."""

    def __init__(self, *, ssm: Any = None, secrets: Any = None) -> None:
        self._ssm_client = ssm
        self._secrets_client = secrets

    @cached_property
    def _ssm(self) -> SSMProvider:
        return SSMProvider(boto3_client=self._ssm_client or aws_client("ssm"))

    @cached_property
    def _secrets(self) -> SecretsProvider:
        return SecretsProvider(boto3_client=self._secrets_client or aws_client("secretsmanager"))

    def secret(self, name: str) -> Any:
        """A secret's value, from the cache when it is younger than `CACHE_SECONDS`."""
        return _read(lambda: self._secrets.get(name, max_age=CACHE_SECONDS))

    def fresh_secret(self, name: str) -> Any:
        """A secret's value read now (a provider refused the cached one); the cache then holds it."""
        return _read(lambda: self._secrets.get(name, max_age=CACHE_SECONDS, force_fetch=True))

    def parameter(self, name: str) -> str:
        """An SSM parameter's value read now, past the cache: the configuration a service checks for changes."""
        return str(_read(lambda: self._ssm.get(name, max_age=CACHE_SECONDS, force_fetch=True)))


def _read(read: Callable[[], T]) -> T:
    """`read()`, with a read refused for lack of time raised as the `OutOfTimeError` it is (Powertools wraps
    every failure in `GetParameterError`): the caller defers the work rather than taking it as a failure."""
    try:
        return read()
    except GetParameterError as exc:
        if isinstance(exc.__context__, OutOfTimeError):
            raise exc.__context__ from None
        raise
