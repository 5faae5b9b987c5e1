"""The error vocabulary every provider speaks, so retries, metrics and logs are uniform across CDNs.

The executor reacts to the class (`retryable`, `metric_name`), never to a provider's own codes: each adapter
maps its answers onto these, the HTTP ones through `STATUS_ERRORS`. A provider's own message is kept;
credentials never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from cdnpurge.core.errors import CdnpurgeError


class ProviderError(CdnpurgeError):
    """Base of every provider failure; `retryable` tells the executor whether trying again can help."""

    retryable: ClassVar[bool] = False
    metric_name: ClassVar[str] = "ProviderFailed"
    unexpected: ClassVar[bool] = False  # raised by a fault boundary (`cdnpurge.core.boundary`): its records say so

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        self.message = message
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{provider}: {where}: {message}")


class ThrottledError(ProviderError):
    """The provider asked us to slow down (429, or CloudFront's TooManyInvalidationsInProgress)."""

    retryable = True
    metric_name = "ProviderThrottled"

    def __init__(
        self, provider: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after


class UnavailableError(ProviderError):
    """5xx, timeout or connection failure: the request may not have been processed; retry."""

    retryable = True
    metric_name = "ProviderUnavailable"


class RejectedError(ProviderError):
    """The provider refused the request as malformed or conflicting; retrying the same call won't help."""

    metric_name = "ProviderRejected"


class AuthError(ProviderError):
    """Credentials missing, wrong or lacking permission (401/403)."""

    metric_name = "ProviderAuthFailed"


class NotFoundError(ProviderError):
    """The service, zone, distribution or resource named in the configuration does not exist."""

    metric_name = "ProviderNotFound"


class UnexpectedError(ProviderError):
    """The call raised something no adapter maps (a bug, an unmapped library error): the request fails,
    permanently, with the exception's type and a redacted excerpt, never the batch (`cdnpurge.core.boundary`).
    Permanent, because a retry would replay the same request through the same code: the record goes to the
    dead-letter queue with its reason, for a redrive once fixed."""

    metric_name = "RequestFailedUnexpectedly"  # cdnpurge.core.boundary.REQUEST_METRIC
    unexpected = True


class UnreadableAnswerError(UnavailableError):
    """The CDN answered, but the answer could not be read (a body that does not decode, a shape the adapter
    fails on): transient, since the next answer may be readable, and counted as unexpected."""

    metric_name = "RequestFailedUnexpectedly"  # cdnpurge.core.boundary.REQUEST_METRIC
    unexpected = True


STATUS_ERRORS: Mapping[int, type[ProviderError]] = {
    400: RejectedError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: RejectedError,
    413: RejectedError,
    422: RejectedError,
    429: ThrottledError,
}


def error_class_for_status(status: int) -> type[ProviderError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    return UnavailableError if status >= 500 else RejectedError
