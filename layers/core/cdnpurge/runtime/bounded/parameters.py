"""SSM parameters and Secrets Manager secrets, read through the runtime's bounded clients.

Powertools Parameters builds its own default clients (botocore's 60 s read timeout, legacy retries), so the
configuration re-check every minute and the secret re-read after a 401 could each hold an invocation past
its deadline against an endpoint that hangs. Here Powertools keeps its cache, but every read goes through
`cdnpurge.runtime.bounded.aws.aws_client`, so it must be made inside `bounded_call` and ends by its
deadline. The clients are built on first use (no I/O at import or construction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from cdnpurge.core.deadline import OutOfTimeError
from cdnpurge.runtime.bounded.aws import aws_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

T = TypeVar("T")
P = TypeVar("P")

CACHE_SECONDS: Final = 300  # as Powertools' `get_secret(..., max_age=300)` of the cold start


class BoundedParameters:
    """Cached and fresh reads of SSM parameters and secrets; `ssm` / `secrets`: clients (tests), else the
    runtime's bounded ones.

    Without clients, the Powertools providers (their clients and cached values) live in Powertools' own
    registry of default providers, under keys of ours: one per process, shared by every instance, and
    dropped with the rest by `parameters.clear_caches()` (what a fresh container starts from)."""

    def __init__(self, *, ssm: Any = None, secrets: Any = None) -> None:
        self._ssm_client = ssm
        self._secrets_client = secrets

    # Powertools Parameters is imported on first use: it loads boto3, which a run with only environment
    # credentials (the CLI, tests) never needs. Looked up on every read, so a cleared registry takes effect.
    @property
    def _ssm(self) -> SSMProvider:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        return _shared("ssm", self._ssm_client, lambda client: SSMProvider(boto3_client=client))

    @property
    def _secrets(self) -> SecretsProvider:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return _shared("secretsmanager", self._secrets_client, lambda client: SecretsProvider(boto3_client=client))

    def secret(self, name: str) -> Any:
        """A secret's value, from the cache when it is younger than `CACHE_SECONDS`."""
        return _read(lambda: self._secrets.get(name, max_age=CACHE_SECONDS))

    def fresh_secret(self, name: str) -> Any:
        """A secret's value read now (a provider refused the cached one); the cache then holds it."""
        return _read(lambda: self._secrets.get(name, max_age=CACHE_SECONDS, force_fetch=True))

    def parameter(self, name: str) -> str:
        """An SSM parameter's value read now, past the cache: the configuration a service checks for changes."""
        return str(_read(lambda: self._ssm.get(name, max_age=CACHE_SECONDS, force_fetch=True)))


def _shared(service: str, client: Any, build: Callable[[Any], P]) -> P:
    """The provider for `service` over `client` (None: the runtime's bounded one) in Powertools' registry,
    built on first use."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    key = f"cdnpurge-bounded-{service}" if client is None else f"cdnpurge-bounded-{service}-{id(client)}"
    if key not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS[key] = build(client if client is not None else aws_client(service))
    provider: P = DEFAULT_PROVIDERS[key]
    return provider


def _read(read: Callable[[], T]) -> T:
    """`read()`, with a read refused for lack of time raised as the `OutOfTimeError` it is (Powertools wraps
    every failure in `GetParameterError`): the caller defers the work rather than taking it as a failure."""
    try:
        return read()
    except Exception as exc:  # Powertools' GetParameterError, around what went wrong
        if isinstance(exc.__context__, OutOfTimeError):
            raise exc.__context__ from None
        raise
