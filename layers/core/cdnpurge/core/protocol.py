"""The one small provider protocol the executor sees, and what one accepted purge call returns.

The executor only calls `purge()` and reacts to the error classes of `providers.errors`; the planner only
reads the `ProviderSpec` of `providers.spec`. The shared HTTP flow is `providers.http.HttpProvider`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.spec import ProviderSpec


@dataclass(frozen=True)
class PurgeResult:
    """What a provider said about one accepted purge call."""

    provider_id: str | None
    detail: str = "ok"
    extra: Mapping[str, Any] = field(default_factory=dict)
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
