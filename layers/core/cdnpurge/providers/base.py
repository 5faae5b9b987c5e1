"""The one small provider protocol, its declared capabilities and the shared error vocabulary.

The planner only reads `Capabilities` (data, no provider branches); the executor only calls `purge()`
and reacts to the error classes below, so retries, metrics and logs are uniform across CDNs.
`HttpProvider` owns the shared HTTP flow (base URL pinning, auth hook, error mapping, `Retry-After`,
redaction) the way Powertools' persistence base owns its flow: an adapter only builds the request and
reads the response.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cdnpurge.credentials import CredentialRef
from cdnpurge.models import PurgeRequest, Target, TargetKind
from cdnpurge.urls import dot_segment_problem

# ---------------------------------------------------------------------------------------------------
# Errors: one vocabulary for every provider. The provider's own message is kept; credentials never are.
# ---------------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """Base of every provider failure; `retryable` tells the executor whether trying again can help."""

    retryable: ClassVar[bool] = False
    metric_name: ClassVar[str] = "ProviderFailed"

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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


# ---------------------------------------------------------------------------------------------------
# Capabilities: what the planner needs to know, as data.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """A provider's purge surface and limits, declared as data so the planner has no provider branches.

    - `max_targets`: the target kinds the provider accepts natively, each with its per-call maximum.
    - `max_body_bytes`: a hard cap on the JSON request body (Akamai: 50,000) or None.
    - `body_overhead_bytes`: bytes of the body around the target list, for byte-accurate chunking.
    - `soft_purge`: whether the provider can mark content stale instead of evicting it.
    - `hard_only`: kinds that are always hard even when soft is asked for (Fastly purge_all).
    - `asynchronous`: the provider returns a job that completes later (no effect on planning).
    - `rate_per_second` / `burst`: the documented or configured sustained request rate, for pacing.
    - `host_qualified`: kinds whose wire form names the host (Cloudflare prefixes: `host/path`); the
      planner expands a host-relative target into one per configured host.
    """

    max_targets: Mapping[TargetKind, int]
    max_body_bytes: int | None = None
    body_overhead_bytes: int = 0
    soft_purge: bool = False
    hard_only: frozenset[TargetKind] = frozenset()
    asynchronous: bool = False
    rate_per_second: float | None = None
    burst: int = 1
    host_qualified: frozenset[TargetKind] = frozenset()

    def supports(self, kind: TargetKind) -> bool:
        return kind in self.max_targets


@dataclass(frozen=True)
class PurgeResult:
    """What a provider said about one accepted purge call."""

    provider_id: str | None
    detail: str = "ok"
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Seconds the provider's rate-limit headers ask before the next call (see `HttpProvider.rate_signal`):
    # the executor slows down on it *before* a 429. None: the response said nothing.
    rate_wait: float | None = None


@dataclass(frozen=True)
class EscalationPolicy:
    """When the planner may purge more than asked to save requests (configured per provider, off by default).

    - `prefix_at`: at least this many paths/URLs sharing a directory become one prefix (wildcard, pattern)
      target, where the provider supports prefixes and the plan needs no more requests that way.
    - `purge_all_over`: a plan needing more than this many requests for the provider becomes one purge-all,
      where the provider supports it.
    """

    prefix_at: int | None = None
    purge_all_over: int | None = None


@dataclass(frozen=True)
class ProviderSpec:
    """What the planner knows of a provider: its name, limits, hosts, default mode and a pure renderer.

    Built from configuration alone (no credentials, no client), so `cdnpurge plan` works offline.
    `render` gives a target's wire form, which the planner measures for body-byte limits.
    """

    name: str
    capabilities: Capabilities
    hosts: tuple[str, ...]
    default_soft: bool
    render: Callable[[Target], str]
    escalation: EscalationPolicy = EscalationPolicy()


class Provider(Protocol):
    """The one interface the executor sees."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> ProviderSpec: ...

    def purge(self, request: PurgeRequest, *, idempotency_token: str) -> PurgeResult:
        """Send one planned request; raise a `ProviderError` subclass on failure."""
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

    def purge(self, request: PurgeRequest, *, idempotency_token: str) -> PurgeResult:
        return self.inner.purge(request, idempotency_token=idempotency_token)


# ---------------------------------------------------------------------------------------------------
# Configuration shared by every provider.
# ---------------------------------------------------------------------------------------------------


class ProviderSettings(BaseModel):
    """Fields every provider entry in the configuration has; each adapter subclasses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    endpoint: str | None = Field(
        default=None, description="Base-URL override (fake servers, tests, regional API endpoints)."
    )
    hosts: tuple[str, ...] = Field(
        default=(), description="Hostnames this provider serves; used to turn paths into URLs."
    )
    soft: bool = Field(default=False, description="Soft purge (mark stale) where the provider supports it.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_targets: dict[TargetKind, int] = Field(
        default_factory=dict, description="Lower a declared per-call limit (never raise it)."
    )
    rate_per_second: float | None = Field(default=None, gt=0, description="Override the pacing rate.")
    prefix_escalation_at: int | None = Field(
        default=None,
        ge=2,
        description="Purge at least this many paths/URLs sharing a directory as one prefix (wildcard), where "
        "the provider supports prefixes and it needs no more requests. Off when unset.",
    )
    purge_all_over: int | None = Field(
        default=None,
        ge=1,
        description="When a batch would need more than this many requests at this provider, send one purge-all "
        "instead (providers supporting `all` only). Off when unset.",
    )
    credentials: dict[str, CredentialRef] = Field(
        default_factory=dict, description="Credential name -> reference ({env: VAR} or {secret: NAME})."
    )


Credentials = Mapping[str, SecretStr]


class DeclaredProvider:
    """What every adapter shares, HTTP or not: its declared capabilities turned into a `ProviderSpec`."""

    declared: ClassVar[Capabilities]

    @classmethod
    def capabilities_for(cls, settings: ProviderSettings) -> Capabilities:
        """The declared capabilities; adapters whose limits depend on settings (a plan tier) override."""
        return cls.declared

    @classmethod
    def spec_for(cls, settings: ProviderSettings) -> ProviderSpec:
        return ProviderSpec(
            name=settings.name,
            capabilities=narrow_capabilities(cls.capabilities_for(settings), settings),
            hosts=settings.hosts,
            default_soft=settings.soft,
            render=partial(cls.render, settings),
            escalation=escalation_policy(cls.capabilities_for(settings), settings),
        )

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """A target's wire form; adapters override (e.g. prefix -> `/dir/*` or a PCRE pattern).

        Raises ValueError for a target the provider cannot express or would refuse: the planner makes that a
        plan error for the target's changes alone instead of a request the API refuses as a whole."""
        return target.value


class HttpProvider(DeclaredProvider, ABC):
    """Shared HTTP flow for every httpx-based adapter (template method).

    Subclasses set `kind`, `label`, `settings_model`, `default_base_url` and `declared`, and implement
    `build_request` and `read_response`; they may override `auth_headers`, `retry_after` and
    `error_message`. Only paths under the base URL are ever called.
    """

    kind: ClassVar[str]
    label: ClassVar[str]  # the CDN's name in messages ("Cloudflare")
    settings_model: ClassVar[type[ProviderSettings]]
    default_base_url: ClassVar[str]
    required_credentials: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, settings: ProviderSettings, credentials: Credentials, client: httpx.Client | None = None
    ) -> None:
        missing = [name for name in self.required_credentials if name not in credentials]
        if missing:
            raise ValueError(f"provider {settings.name!r}: missing credentials {missing}")
        self.settings = settings
        self.name = settings.name
        self.credentials = credentials
        self.base_url = (settings.endpoint or self.base_url_for(settings)).rstrip("/")
        self.spec = self.spec_for(settings)
        self._client = client

    # -- hooks ------------------------------------------------------------------------------------

    def base_url_for(self, settings: ProviderSettings) -> str:
        """The provider's fixed API base; adapters whose host depends on the account override this."""
        return self.default_base_url

    @abstractmethod
    def build_request(self, request: PurgeRequest) -> ApiCall:
        """Turn a planned request into one API call (path relative to the base URL)."""

    @abstractmethod
    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        """Read a 2xx response; raise `RejectedError` if its body says the purge failed."""

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the credentials; the only place a secret leaves this object."""

    def request_auth(self) -> httpx.Auth | None:
        """An httpx `Auth` that signs the final request (Akamai EdgeGrid); None for header tokens."""
        return None

    def error_class(self, response: httpx.Response) -> type[ProviderError]:
        """The error for a non-2xx response; adapters with their own error codes override."""
        return error_class_for_status(response.status_code)

    def retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("Retry-After"))

    def rate_signal(self, response: httpx.Response) -> float | None:
        """Seconds to wait before the next call, read from a successful response's rate-limit headers.

        The remaining budget is spread evenly over the time until it resets, so pacing slows down as the
        budget runs low instead of running into a 429. Adapters with other headers override.
        """
        return rate_signal_from_headers(response.headers)

    def error_message(self, response: httpx.Response) -> str:
        """The provider's own error text, trimmed; adapters override to dig into their error shape."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:300] or response.reason_phrase
        if isinstance(body, dict):
            for name in ("msg", "message", "detail", "title", "error", "errors"):
                if body.get(name):
                    return json.dumps(body[name])[:300] if not isinstance(body[name], str) else body[name]
        return json.dumps(body)[:300]

    # -- the shared flow --------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.settings.timeout_seconds,
                transport=httpx.HTTPTransport(retries=1),
                follow_redirects=False,
            )
        return self._client

    def purge(self, request: PurgeRequest, *, idempotency_token: str) -> PurgeResult:
        self.check(request)
        response = self.send(self.build_request(request))
        result = self.read_response(request, response)
        wait = self.rate_signal(response)
        return result if wait is None or result.rate_wait is not None else replace(result, rate_wait=wait)

    def check(self, request: PurgeRequest) -> None:
        """Refuse, before any call, a request the planner would not have made: more targets than one call
        takes, or a target `render` cannot express. The API would refuse it whole, failing every change in it.
        Kinds the adapter does not declare are left to `build_request`, which refuses them in its own words."""
        limit = self.spec.capabilities.max_targets.get(request.kind)
        if limit is None:
            return
        if not 1 <= len(request.targets) <= limit:
            raise RejectedError(
                self.name,
                f"{len(request.targets)} {request.kind.value} targets; {self.label} takes 1 to {limit} per call",
            )
        for value in request.targets:
            try:
                self.render(self.settings, Target(request.kind, value))
            except ValueError as exc:
                raise RejectedError(self.name, str(exc)) from None

    def send(self, call: ApiCall) -> httpx.Response:
        """Make one call under the base URL with auth; map failures to the shared error vocabulary.

        A path with dot segments is refused here, for every adapter: the URL actually requested would not be
        the one built (see `dot_segment_problem`)."""
        url = f"{self.base_url}/{call.path.lstrip('/')}"
        problem = dot_segment_problem(urlsplit(url).path)
        if problem:
            raise RejectedError(self.name, f"refused to call {call.method} {call.path[:200]!r}: it {problem}")
        headers = {"Accept": "application/json", **call.headers, **self.auth_headers()}
        try:
            response = self.client.request(
                call.method,
                url,
                headers=headers,
                json=call.body,
                params=call.params,
                auth=self.request_auth() or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            raise UnavailableError(self.name, f"timed out calling {call.method} {call.path}") from None
        except httpx.TransportError as exc:
            # The exception text can include the URL but never headers; keep only its class name.
            raise UnavailableError(self.name, f"{type(exc).__name__} calling {call.method} {call.path}") from None
        if response.is_success:
            return response
        error_class = self.error_class(response)
        message = self.error_message(response)
        if issubclass(error_class, ThrottledError):
            raise ThrottledError(
                self.name, message, status=response.status_code, retry_after=self.retry_after(response)
            )
        raise error_class(self.name, message, status=response.status_code)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@dataclass(frozen=True)
class ApiCall:
    """One HTTP call an adapter wants made; the base adds the base URL and auth."""

    method: Literal["GET", "POST", "DELETE", "PUT"]
    path: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] | None = None


def narrow_capabilities(declared: Capabilities, settings: ProviderSettings) -> Capabilities:
    """Apply configured overrides: limits may only go down, the pacing rate may be set."""
    limits = dict(declared.max_targets)
    for kind, limit in settings.max_targets.items():
        if kind not in limits:
            raise ValueError(f"provider {settings.name!r}: max_targets.{kind.value}: kind not supported")
        if not 1 <= limit <= limits[kind]:
            raise ValueError(
                f"provider {settings.name!r}: max_targets.{kind.value}={limit}: "
                f"must be between 1 and the provider's limit {limits[kind]}"
            )
        limits[kind] = limit
    return replace(declared, max_targets=limits, rate_per_second=settings.rate_per_second or declared.rate_per_second)


def escalation_policy(declared: Capabilities, settings: ProviderSettings) -> EscalationPolicy:
    """The configured escalations, refused where the provider cannot express them."""
    prefix_at = getattr(settings, "prefix_escalation_at", None)
    purge_all_over = getattr(settings, "purge_all_over", None)
    if prefix_at is not None and not declared.supports(TargetKind.PREFIX):
        raise ValueError(f"provider {settings.name!r}: prefix_escalation_at: this provider cannot purge by prefix")
    if purge_all_over is not None and not declared.supports(TargetKind.ALL):
        raise ValueError(f"provider {settings.name!r}: purge_all_over: this provider cannot purge everything")
    return EscalationPolicy(prefix_at=prefix_at, purge_all_over=purge_all_over)


# Cloudflare (IETF draft structured form): `Ratelimit: "default";r=50;t=30`.
_STRUCTURED_LIMIT = re.compile(r";\s*r\s*=\s*(\d+).*?;\s*t\s*=\s*(\d+)|;\s*t\s*=\s*(\d+).*?;\s*r\s*=\s*(\d+)")
# Above this much remaining budget the headers cannot slow anything down worth a look.
_SIGNAL_FLOOR_SECONDS = 0.001


def rate_signal_from_headers(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds per remaining call until the provider's budget resets, from the rate-limit headers in use:

    - Fastly: `Fastly-RateLimit-Remaining` + `Fastly-RateLimit-Reset` (epoch seconds);
    - Cloudflare / IETF draft: `Ratelimit: "name";r=<remaining>;t=<seconds to reset>`, or the older
      `RateLimit-Remaining` + `RateLimit-Reset` (seconds);
    - Akamai: `X-RateLimit-Remaining` (requests) + `X-RateLimit-Limit-Per-Second` (refill rate), which only
      says "wait" once the bucket is empty.

    None when the response carries none of them, or when the budget left makes any wait negligible.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    remaining, reset = _float(lowered.get("fastly-ratelimit-remaining")), _float(lowered.get("fastly-ratelimit-reset"))
    if remaining is not None and reset is not None:
        return _spread(remaining, max(0.0, reset - (time.time() if now is None else now)))
    structured = lowered.get("ratelimit")
    if structured:
        waits = []
        for item in structured.split(","):
            found = _STRUCTURED_LIMIT.search(item)
            if found:
                r, t = (found.group(1), found.group(2)) if found.group(1) else (found.group(4), found.group(3))
                waits.append(_spread(float(r), float(t)))
        known = [wait for wait in waits if wait is not None]
        return max(known) if known else None
    remaining, reset = _float(lowered.get("ratelimit-remaining")), _float(lowered.get("ratelimit-reset"))
    if remaining is not None and reset is not None:
        return _spread(remaining, reset)
    remaining = _float(lowered.get("x-ratelimit-remaining"))
    refill = _float(lowered.get("x-ratelimit-limit-per-second"))
    if remaining is not None and refill:
        return (1 - remaining) / refill if remaining < 1 else None
    return None


def _spread(remaining: float, reset_seconds: float) -> float | None:
    wait = reset_seconds if remaining < 1 else reset_seconds / remaining
    return wait if wait >= _SIGNAL_FLOOR_SECONDS else None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
