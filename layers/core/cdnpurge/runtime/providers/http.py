"""The shared HTTP flow of every httpx-based adapter (template method).

`HttpProvider` owns what every HTTP CDN API needs alike: base URL pinning, the auth hook, refusing a kind the
adapter does not declare or more targets than one call takes, dot-segment refusal, error mapping, reading a
JSON body (`response_object`), `Retry-After` and rate-limit headers. The way Powertools' persistence base owns
its flow, an adapter only builds the request (`build_request`) and reads the response (`read_response`).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from cdnpurge.core.answers import MAX_ANSWER_COUNT, MAX_PROVIDER_WAIT_SECONDS, answer_number
from cdnpurge.core.boundary import unexpected
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, Target
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import (
    ProviderError,
    RejectedError,
    ThrottledError,
    UnavailableError,
    UnreadableAnswerError,
    error_class_for_status,
)
from cdnpurge.core.spec import Credentials, DeclaredProvider, ProviderSettings
from cdnpurge.core.urls import dot_segment_problem
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.http import bounded_http_client

_HTTP_DATE_CHARS = 64  # "Sun, 06 Nov 1994 08:49:37 GMT" is 29


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 10.2.3), finite
    and at most `MAX_PROVIDER_WAIT_SECONDS` (`cdnpurge.core.answers`)."""
    if not value:
        return None
    seconds = answer_number(value, low=0.0, high=MAX_PROVIDER_WAIT_SECONDS)
    if seconds is not None or len(value) > _HTTP_DATE_CHARS:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return answer_number(when - (time.time() if now is None else now), low=0.0, high=MAX_PROVIDER_WAIT_SECONDS)


class HttpProvider(DeclaredProvider, ABC):
    """Shared HTTP flow for every httpx-based adapter (template method).

    Subclasses set `kind`, `label`, `settings_model`, `default_base_url`, `declared` and `docs`, and implement
    `auth_headers`, `build_request` (only ever called with a declared kind and an allowed number of targets)
    and `read_response` (`response_object` / `response_json` read the body); they may override `base_url_for`,
    `request_auth`, `retry_after`, `rate_signal`, `error_class`, `error_message` and `credentials_check`. Only
    paths under the base URL are ever called.
    """

    default_base_url: ClassVar[str]

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
        """Turn a planned request of a declared kind into one API call (path relative to the base URL)."""

    @abstractmethod
    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        """Read a 2xx response; raise `RejectedError` if its body says the purge failed."""

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the credentials; the only place a secret leaves this object."""

    def credentials_check(self) -> ApiCall | None:
        """A harmless documented call that succeeds only with accepted credentials (changes and purges nothing), for
        `cdnpurge doctor`; None when the provider's API has none (the default)."""
        return None

    def check_credentials(self) -> str | None:
        """`core.protocol.CredentialsCheck`: make `credentials_check()` through `send` (base URL, auth, timeouts
        and error mapping as a purge has them); the call made, None when there is none."""
        call = self.credentials_check()
        if call is None:
            return None
        self.send(call)
        return f"{call.method} /{call.path}"

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
        """The provider's own error text, whole: `RedactingProvider` redacts, then bounds it (cutting it here
        first could leave part of an echoed credential). Adapters override to dig into their error shape."""
        try:
            body = response.json()
        except ValueError:
            return response.text or response.reason_phrase
        if isinstance(body, dict):
            for name in ("msg", "message", "detail", "title", "error", "errors"):
                if body.get(name):
                    return json.dumps(body[name]) if not isinstance(body[name], str) else body[name]
        return json.dumps(body)

    # -- the shared flow --------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = bounded_http_client(timeout=self.settings.timeout_seconds, retries=1)
        return self._client

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        """Check, build, send, read. Whatever reading an answer raises that is not already a provider error
        makes the answer unreadable (transient, `cdnpurge.core.boundary`); what building raises is left to the
        executor's boundary (permanent: the same request would be built the same way)."""
        self.check(request)
        # A purge starts only if its whole timeout fits before the deadline: cut short, the CDN may have done it
        # without our knowing, and the redelivery would purge again.
        response = self.send(self.build_request(request), deadline=deadline, whole=True)
        try:
            result = self.read_response(request, response)
            wait = self.rate_signal(response)
        except ProviderError:
            raise
        except Exception as exc:
            raise UnreadableAnswerError(
                self.name, unexpected(exc, "reading the answer"), status=response.status_code
            ) from None
        return (
            result if wait is None or result.rate_wait is not None else msgspec.structs.replace(result, rate_wait=wait)
        )

    def check(self, request: PurgeRequest) -> None:
        """Refuse, before any call, a request the planner would not have made: a kind the adapter does not
        declare, more targets than one call takes, or a target `render` cannot express. The API would refuse
        it whole, failing every change in it."""
        limit = self.spec.capabilities.max_targets.get(request.kind)
        if limit is None:
            raise RejectedError(self.name, f"target kind {request.kind.value!r} is not supported by {self.label}")
        if not 1 <= len(request.targets) <= limit:
            raise RejectedError(
                self.name,
                f"{len(request.targets)} {request.kind.value} targets; {self.label} takes 1 to {limit} per call",
            )
        for value in request.targets:
            try:
                self.spec.render(Target(request.kind, value))  # the adapter's render and the declared bounds
            except ValueError as exc:
                raise RejectedError(self.name, str(exc)) from None

    def send(self, call: ApiCall, *, deadline: Deadline | None = None, whole: bool = False) -> httpx.Response:
        """Make one call under the base URL with auth; map failures to the shared error vocabulary.

        The whole call (connect, request, the answer's head and body) ends within `timeout_seconds` and
        before `deadline` (None: only the timeout bounds it, as in the CLI), however slowly the answer
        arrives (`cdnpurge.runtime.bounded.http`); a call that cannot start in time (`whole`: with its whole
        timeout before the deadline) raises `OutOfTimeError`.
        A path with dot segments is refused here, for every adapter: the URL actually requested would not be
        the one built (see `dot_segment_problem`)."""
        url = f"{self.base_url}/{call.path.lstrip('/')}"
        problem = dot_segment_problem(urlsplit(url).path)
        if problem:
            raise RejectedError(self.name, f"refused to call {call.method} {call.path[:200]!r}: it {problem}")
        headers = {"Accept": "application/json", **call.headers, **self.auth_headers()}
        timeout = self.settings.timeout_seconds
        bound = deadline or Deadline.after(timeout)
        try:
            what = f"{self.name}: {call.method} {call.path[:200]}"
            with bounded_call(bound, timeout, what=what, need=timeout if whole and deadline else 0.0):
                # Building the request is inside the boundary too: it is where an over-long URL or a header
                # value that is not ASCII fails.
                request = self.client.build_request(
                    call.method, url, headers=headers, json=call.body, params=call.params
                )
                response = self.client.send(request, auth=self.request_auth() or httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException:
            raise UnavailableError(
                self.name,
                f"timed out calling {call.method} {call.path[:200]}: no complete answer within {timeout:g} s "
                "or before the deadline",
            ) from None
        except httpx.TransportError as exc:
            # The exception text can include the URL but never headers; keep only its class name.
            raise UnavailableError(self.name, f"{type(exc).__name__} calling {call.method} {call.path}") from None
        except httpx.DecodingError as exc:
            # The CDN answered, but its body does not decode (`Content-Encoding: gzip` over plain bytes): the
            # answer is unreadable, not a refusal, and the next one may be readable.
            raise UnreadableAnswerError(
                self.name, f"unreadable answer to {call.method} {call.path[:200]}: DecodingError: {str(exc)[:200]}"
            ) from None
        except (httpx.InvalidURL, UnicodeEncodeError) as exc:
            # The request cannot be built (a URL past httpx's length limit, a header value that is not ASCII):
            # it can never be sent. Only the class name: the text may quote the header value (a credential).
            raise RejectedError(
                self.name, f"cannot send {call.method} {call.path[:200]}: {type(exc).__name__}"
            ) from None
        except httpx.RequestError as exc:  # anything else httpx says went wrong with the exchange
            raise UnavailableError(self.name, f"{type(exc).__name__} calling {call.method} {call.path[:200]}") from None
        if response.is_success:
            return response
        error_class = self.error_class(response)
        message = self.error_message(response)
        if issubclass(error_class, ThrottledError):
            raise ThrottledError(
                self.name, message, status=response.status_code, retry_after=self.retry_after(response)
            )
        raise error_class(self.name, message, status=response.status_code)

    def response_json(self, response: httpx.Response) -> Any:
        """A 2xx body as JSON (an empty body is `{}`); a body that is not JSON is a `RejectedError` quoting it.

        A proxy or maintenance page answering 2xx in front of the API must become an error the executor
        handles, never a `JSONDecodeError` escaping it."""
        try:
            return response.json() if response.content else {}
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not text
            raise RejectedError(
                self.name, f"response is not JSON: {response.text!r}", status=response.status_code
            ) from None

    def response_object(self, response: httpx.Response) -> dict[str, Any]:
        """A 2xx body that must be a JSON object (`response_json`, then anything else refused)."""
        body = self.response_json(response)
        if not isinstance(body, dict):
            raise RejectedError(self.name, f"unexpected response body {body}", status=response.status_code)
        return body

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
                waits.append(_spread(_float(r) or 0.0, _float(t) or 0.0))
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
    """A rate-limit header's number: finite, not negative, bounded (`cdnpurge.core.answers`)."""
    return answer_number(value, low=0.0, high=MAX_ANSWER_COUNT)
