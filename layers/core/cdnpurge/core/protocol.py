"""The one small provider protocol the executor sees, what one accepted purge call returns, and the
capability protocols a provider may implement besides.

The executor only calls `purge()` and reacts to the error classes of `core.provider_errors`; the planner only
reads the `ProviderSpec` of `core.spec`. The shared HTTP flow is `runtime.providers.http.HttpProvider`.
A capability (asking a job's progress: `JobStatus`; asking whether credentials are accepted:
`CredentialsCheck`) is found through the wrappers by what the adapter
declares and implements (`job_status(provider)`), never by testing for an adapter class, so no caller
imports an adapter module to use one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.spec import ProviderSpec


class PurgeResult(msgspec.Struct, frozen=True):
    """What a provider said about one accepted purge call."""

    provider_id: str | None
    detail: str = "ok"
    extra: Mapping[str, Any] = msgspec.field(default_factory=dict)
    # Seconds the provider's rate-limit headers ask before the next call (see `HttpProvider.rate_signal`):
    # the executor slows down on it *before* a 429. None: the response said nothing.
    rate_wait: float | None = None


class Provider(Protocol):
    """The one interface the executor sees."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> ProviderSpec: ...

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        """Send one planned request, ending before `deadline` (None: within the provider's own timeout, as
        in the CLI; the runtime always passes one); raise a `ProviderError` subclass on failure, or
        `OutOfTimeError` when the call cannot start in time."""
        ...


@runtime_checkable
class JobStatus(Protocol):
    """A provider whose purges are jobs (`Capabilities.asynchronous`) and that reports their progress.

    CloudFront (`GetInvalidation`) and Medianova (its job listing) implement it; Akamai has no status API
    (its `estimatedSeconds` is the only word), F5 XC's request id has no documented status call."""

    def job_pending(self, job_id: str, deadline: Deadline) -> bool:
        """True while the provider says the job is still in progress; a `ProviderError` if it cannot say.

        The call ends before `deadline`; one that cannot start raises `OutOfTimeError` (the caller stops
        asking)."""
        ...


def job_status(provider: Provider) -> JobStatus | None:
    """The adapter inside `provider`'s wrappers, if it declares `asynchronous` and implements `JobStatus`.

    Wrappers add behaviour to `purge` only (redaction, rotation; faults in tests), so the adapter answers."""
    while isinstance(provider, ProviderWrapper):
        provider = provider.inner
    if provider.spec.capabilities.asynchronous and isinstance(provider, JobStatus):
        return provider
    return None


@runtime_checkable
class CredentialsCheck(Protocol):
    """A provider that can ask its API, harmlessly, whether it accepts its credentials (`cdnpurge doctor`)."""

    def check_credentials(self) -> str | None:
        """Make the provider's documented harmless call that needs the credentials and purges nothing; the call
        made (`GET /tokens/self`), or None when its API has none. Refused credentials raise `AuthError`, any
        other failure its `ProviderError`."""
        ...


def credentials_check(provider: Provider) -> CredentialsCheck | None:
    """The adapter inside `provider`'s wrappers, if it implements `CredentialsCheck`."""
    while isinstance(provider, ProviderWrapper):
        provider = provider.inner
    return provider if isinstance(provider, CredentialsCheck) else None


class ProviderWrapper:
    """A `Provider` around another one, adding behaviour to `purge` (redaction; faults in tests)."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def spec(self) -> ProviderSpec:
        return self.inner.spec

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        return self.inner.purge(request, idempotency_token=idempotency_token, deadline=deadline)
