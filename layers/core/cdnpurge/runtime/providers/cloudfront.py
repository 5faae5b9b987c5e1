"""Amazon CloudFront invalidation adapter (boto3, not httpx).

- `create_invalidation(DistributionId, InvalidationBatch={Paths: {Quantity, Items}, CallerReference})`.
  `CallerReference` is our request token, which names the attempt (`execute.request_token`): the same
  reference with the same batch returns the existing invalidation, so a retry of one attempt never creates
  (or pays for) a second one, and a new attempt at the same paths (a re-purge) is a new invalidation.
- Paths start with `/`, at most 4,000 characters; `*` is a wildcard and only allowed as the last character.
  CloudFront matches on the encoded path: non-ASCII and RFC 1738 "unsafe" characters are percent-encoded,
  nothing else is (our paths arrive percent-encoded from the rules; existing escapes are kept).
- Up to 3,000 individual paths in progress per distribution, and independently up to 15 wildcard paths;
  over either, `TooManyInvalidationsInProgress` (HTTP 400, no `Retry-After`).
- AWS documents no request rate for CreateInvalidation; the in-progress limits are the real constraint,
  so pacing defaults to a conservative 1 call a second, burst 5 (override with `rate_per_second`).
- Status: `get_invalidation` -> `InProgress` / `Completed`.
- Cache tags (AWS, 2026-04; "Invalidating content by cache tags", "What you need to know when invalidating
  tags"): on a distribution with a `CacheTagConfig` (setting `cache_tags: true`) a surrogate key goes as an
  item `#<tag>` in the same `Paths.Items`. A tag is ASCII 33-126 without commas, at most 256 characters, has
  no wildcard, and is case-insensitive, so the planner dedupes tags case-insensitively (`case_insensitive`)
  and they go lower-cased. Each tag item is billed like one path. A distribution without the configuration
  ignores tags: the setting is off by default, and a key is then a plan error rather than a silent no-op.
  AWS counts tag items against the 3,000 paths in progress per distribution, not the 15 wildcard paths
  ("What you need to know when invalidating tags"), so a call takes up to 3,000 tags (`MAX_TAGS_IN_PROGRESS`);
  the shared meter counts them with the paths (`in_progress`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import msgspec
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)

from cdnpurge.core.answers import answer_id
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RejectedError,
    ThrottledError,
    UnavailableError,
    error_class_for_status,
)
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import (
    Capabilities,
    Credentials,
    DeclaredProvider,
    InProgressLimit,
    ProviderDocs,
    ProviderSettings,
)
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CONNECT_SECONDS, aws_client

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

MAX_PATHS_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
MAX_PATH_LENGTH = 4000
# Tag items count against the paths in progress (AWS, "What you need to know when invalidating tags").
MAX_TAGS_IN_PROGRESS = MAX_PATHS_IN_PROGRESS
MAX_TAG_LENGTH = 256
TAG_PREFIX = "#"
# Not documented by AWS: a conservative default for CreateInvalidation calls.
CALLS_PER_SECOND = 1.0
BURST = 5
# Invalidations usually finish within a minute or two; a full in-progress quota frees up on that scale.
IN_PROGRESS_BACKOFF_SECONDS = 60.0
# The longest the shared meter counts an invalidation's items as in progress when no one sees it complete:
# it is released as soon as a `GetInvalidation` says `Completed` (verification's poll, or a caller that
# found the distribution full), so this bound only matters when nobody asks. AWS states invalidations
# complete in under 25 s (p95) since 2026-04, and documented 10 to 15 minutes before: the slowest it has
# ever described, so a count never expires under an invalidation still running.
IN_PROGRESS_HOLD_SECONDS = 900.0
# Total attempts, first included (botocore's `max_attempts` would count retries only: 3 -> 4 calls).
MAX_ATTEMPTS = 3
SIGNING_REGION = "us-east-1"

# RFC 1738 section 2.2 "unsafe" characters (plus `%` when it does not start an escape) are encoded;
# everything else printable is sent as is, because CloudFront compares the encoded form.
# Characters CloudFront wants percent-encoded: RFC 1738's unsafe set and anything beyond ASCII.
_NEEDS_ESCAPE = re.compile(r'[ <>"#{}|\\^~\[\]`]|[^\x00-\x7f]')
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A path of only these characters (after its leading `/`) passes every check of `_checked_encoding` and
# needs no encoding: most paths, recognised with one regex instead of four (a plan renders every path).
_PLAIN_PATH = re.compile(r"/[!$&'()+,\-./0-9:;=?@A-Z_a-z]*")
# A tag: visible ASCII (33-126) except `,` (the origin header's separator) and `*` (no wildcards).
_TAG = re.compile(r"[!-)+\--~]+")


class InvalidationStatus(StrEnum):
    """An invalidation's progress as `get_invalidation` reports it."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"

    @classmethod
    def _missing_(cls, value: object) -> InvalidationStatus | None:
        # moto reports "COMPLETED"; compare case-insensitively.
        for member in cls:
            if isinstance(value, str) and member.value.lower() == value.lower():
                return member
        return None


class CloudFrontSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["cloudfront"] = "cloudfront"
    distribution_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=32,
            pattern=worded(r"\A[A-Z0-9]+\Z", "must be capital letters and digits (a distribution id)"),
        ),
    ]
    # The distribution has a CacheTagConfig: surrogate keys are invalidated as `#<tag>` items.
    cache_tags: bool = False

    def __post_init__(self) -> None:
        if self.credentials:
            raise ValueError("CloudFront uses the function's IAM role; configure no credentials")


def _escape_match(match: re.Match[str]) -> str:
    # Not `urllib.parse.quote`: it never escapes `~`, which RFC 1738 lists as unsafe.
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def encode_path(path: str) -> str:
    """A host-relative path in the form CloudFront matches; raises ValueError if it cannot be expressed."""
    if _PLAIN_PATH.fullmatch(path) and len(path) <= MAX_PATH_LENGTH:
        return path  # as `_checked_encoding` would (tests/unit/test_cloudfront_paths.py compares the two)
    return _checked_encoding(path)


def _checked_encoding(path: str) -> str:
    """`encode_path` the long way: every check, then percent-encoding wherever CloudFront needs it."""
    if not path.startswith("/"):
        raise ValueError(f"{path[:80]!r}: CloudFront paths start with '/'")
    if _CONTROL.search(path):
        raise ValueError(f"{path[:80]!r}: control characters cannot be invalidated")
    if "*" in path:
        raise ValueError(f"{path[:80]!r}: a literal '*' would be read as a CloudFront wildcard")
    encoded = _STRAY_PERCENT.sub("%25", path) if "%" in path else path
    if _NEEDS_ESCAPE.search(encoded):  # most paths need nothing: searching is cheaper than substituting
        encoded = _NEEDS_ESCAPE.sub(_escape_match, encoded)
    if len(encoded) > MAX_PATH_LENGTH:
        raise ValueError(f"{path[:80]!r}: longer than CloudFront's {MAX_PATH_LENGTH} characters once encoded")
    return encoded


def encode_tag(tag: str) -> str:
    """A cache tag as its `Paths.Items` entry `#<tag>`; raises ValueError for a tag CloudFront refuses."""
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"key {tag[:80]!r}: longer than CloudFront's {MAX_TAG_LENGTH}-character cache tags")
    if not _TAG.fullmatch(tag):
        raise ValueError(f"key {tag[:80]!r}: a CloudFront cache tag is visible ASCII (33-126) without ',' or '*'")
    return TAG_PREFIX + tag.lower()


_ERRORS: Mapping[str, type[ProviderError]] = {
    "TooManyInvalidationsInProgress": ThrottledError,
    "Throttling": ThrottledError,
    "RequestLimitExceeded": ThrottledError,
    "NoSuchDistribution": NotFoundError,
    "NoSuchInvalidation": NotFoundError,
    "AccessDenied": AuthError,
    "InvalidSignature": AuthError,
    "UnrecognizedClient": AuthError,
    "InvalidClientTokenId": AuthError,
    "SignatureDoesNotMatch": AuthError,
    "ExpiredToken": AuthError,
    "InvalidArgument": RejectedError,
    "BatchTooLarge": RejectedError,
    "InconsistentQuantities": RejectedError,
    "InvalidationBatchAlreadyExists": RejectedError,
    "MissingBody": RejectedError,
    "ServiceUnavailable": UnavailableError,
    "InternalError": UnavailableError,
}


class CloudFrontProvider(DeclaredProvider):
    """Invalidations on one distribution. Credentials come from the IAM role (boto3's default chain)."""

    kind: ClassVar[str] = "cloudfront"
    label: ClassVar[str] = "CloudFront"
    settings_model: ClassVar[type[ProviderSettings]] = CloudFrontSettings
    declared: ClassVar[Capabilities] = Capabilities(
        max_targets={
            TargetKind.PATH: MAX_PATHS_IN_PROGRESS,
            TargetKind.PREFIX: MAX_WILDCARDS_IN_PROGRESS,
            TargetKind.ALL: 1,
        },
        asynchronous=True,
        rate_per_second=CALLS_PER_SECOND,
        burst=BURST,
        # AWS counts cache-tag items against the 3,000 paths, not the 15 wildcards ("What you need to know when
        # invalidating tags"); purge-all (`/*`) is a wildcard path.
        in_progress=(
            InProgressLimit("paths", MAX_PATHS_IN_PROGRESS, frozenset({TargetKind.PATH, TargetKind.KEY})),
            InProgressLimit("wildcards", MAX_WILDCARDS_IN_PROGRESS, frozenset({TargetKind.PREFIX, TargetKind.ALL})),
        ),
        in_progress_seconds=IN_PROGRESS_HOLD_SECONDS,
    )
    # With `cache_tags: true`: keys too, matched regardless of case.
    tagged: ClassVar[Capabilities] = msgspec.structs.replace(
        declared,
        max_targets={**declared.max_targets, TargetKind.KEY: MAX_TAGS_IN_PROGRESS},
        case_insensitive=frozenset({TargetKind.KEY}),
    )
    docs: ClassVar[ProviderDocs] = ProviderDocs(
        settings="`distribution_id`, `cache_tags`; IAM role, no credentials",
        purges="path, prefix (`{prefix}*`), all (`/*`), key (`#<tag>`, with `cache_tags: true`); "
        "`CallerReference` = the attempt's request token; every item billed",
        per_call=f"{MAX_PATHS_IN_PROGRESS:,} paths and tags, {MAX_WILDCARDS_IN_PROGRESS} wildcards (in progress, "
        "counted for every caller)",
        soft="no",
        pacing=f"{CALLS_PER_SECOND:g}/s burst {BURST}; `TooManyInvalidationsInProgress` = throttle",
        example="--path /index.html --prefix /img/",
        unverified=(
            "cloudfront: items are counted in progress until GetInvalidation says Completed, at most 15 minutes "
            "(the longest AWS has documented); an invalidation slower than that can still meet "
            "`TooManyInvalidationsInProgress`, a shared throttle",
            "cloudfront: AWS documents no request rate for CreateInvalidation; 1 call/s, burst 5 is a "
            "conservative default (set rate_per_second)",
            "cloudfront: moto (the local stand-in) ignores `CallerReference`; the local stack's moto server "
            "is made to follow AWS's documented rule (same reference and batch: the existing invalidation; "
            "other paths: InvalidationBatchAlreadyExists)",
        ),
        credential_check="`GetDistribution` with the caller's AWS credentials, and (`doctor`) the function's role "
        "checked against `CloudFrontDistributionArns`",
    )

    settings: CloudFrontSettings

    def __init__(
        self,
        settings: ProviderSettings,
        credentials: Credentials,
        client: CloudFrontClient | None = None,
    ) -> None:
        if not isinstance(settings, CloudFrontSettings):
            raise TypeError(f"provider {settings.name!r}: expected CloudFrontSettings")
        self.settings = settings
        self.name = settings.name
        self.spec = self.spec_for(settings)
        self._client = client

    @classmethod
    def capabilities_for(cls, settings: ProviderSettings) -> Capabilities:
        return cls.tagged if isinstance(settings, CloudFrontSettings) and settings.cache_tags else cls.declared

    @classmethod
    def billing_key(cls, settings: ProviderSettings) -> str | None:
        """Every path, wildcard and tag item is billed beyond the account's free 1,000 a month."""
        return settings.distribution_id if isinstance(settings, CloudFrontSettings) else None

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """path -> encoded path; prefix -> `{prefix}*` (one wildcard path); all -> `/*`; key -> `#<tag>`."""
        if target.kind is TargetKind.PATH:
            return encode_path(target.value)
        if target.kind is TargetKind.KEY and isinstance(settings, CloudFrontSettings) and settings.cache_tags:
            return encode_tag(target.value)
        if target.kind is TargetKind.PREFIX:
            wildcard = encode_path(target.value) + "*"
            if len(wildcard) > MAX_PATH_LENGTH:
                raise ValueError(f"{target.value[:80]!r}: longer than CloudFront's {MAX_PATH_LENGTH} characters")
            return wildcard
        if target.kind is TargetKind.ALL:
            return "/*"
        raise ValueError(f"{target}: CloudFront cannot invalidate by {target.kind.value}")

    @property
    def client(self) -> CloudFrontClient:
        if self._client is None:
            timeout = self.settings.timeout_seconds
            # Without an `endpoint`, boto3 honours AWS_ENDPOINT_URL_CLOUDFRONT / AWS_ENDPOINT_URL itself.
            self._client = aws_client(
                "cloudfront",
                endpoint_url=self.settings.endpoint,
                # CloudFront is global, but a custom endpoint still needs a signing region: its home.
                default_region=SIGNING_REGION,
                connect_timeout=min(timeout, CONNECT_SECONDS),
                read_timeout=timeout,
                max_attempts=MAX_ATTEMPTS,
            )
        return self._client

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        try:
            paths = [self.render(self.settings, Target(request.kind, value)) for value in request.targets]
        except ValueError as exc:
            raise RejectedError(self.name, str(exc)) from None
        paths = list(dict.fromkeys(paths))  # `#A` and `#a` are one tag
        limit = self.spec.capabilities.max_targets.get(request.kind, 0)
        if not paths or len(paths) > limit:
            raise RejectedError(self.name, f"{len(paths)} {request.kind.value} targets: allowed 1..{limit}")
        with self._translated_errors("CreateInvalidation", deadline, whole=True):
            response = self.client.create_invalidation(
                DistributionId=self.settings.distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": len(paths), "Items": paths},
                    "CallerReference": idempotency_token,
                },
            )
        invalidation = response["Invalidation"]
        return PurgeResult(
            provider_id=answer_id(invalidation.get("Id")),
            detail=self._status(invalidation["Status"]).value,
            extra={"location": response.get("Location", "")},
        )

    def check_credentials(self) -> str:
        """`core.protocol.CredentialsCheck`: `GetDistribution` (read-only, documented; IAM action
        `cloudfront:GetDistribution`) on the configured distribution with the AWS credentials this adapter
        holds: `AccessDenied` or an unknown key is an `AuthError`, a missing distribution a `NotFoundError`.
        There is no token: what it tells is whether these credentials reach the distribution. Whether the
        function's role may invalidate it is the role's policy (`cdnpurge doctor` reads it from the stack)."""
        with self._translated_errors("GetDistribution", None):
            self.client.get_distribution(Id=self.settings.distribution_id)
        return f"GetDistribution {self.settings.distribution_id}"

    def status(self, invalidation_id: str, *, deadline: Deadline | None = None) -> InvalidationStatus:
        """The invalidation's progress: `InProgress` until every edge has dropped the paths."""
        with self._translated_errors("GetInvalidation", deadline):
            response = self.client.get_invalidation(DistributionId=self.settings.distribution_id, Id=invalidation_id)
        return self._status(response["Invalidation"]["Status"])

    def job_pending(self, job_id: str, deadline: Deadline) -> bool:
        """`JobStatus`: an invalidation is pending while `GetInvalidation` says `InProgress`."""
        return self.status(job_id, deadline=deadline) is InvalidationStatus.IN_PROGRESS

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _status(self, value: str) -> InvalidationStatus:
        """A status we cannot read is a `RejectedError`, like any unreadable answer of the HTTP adapters: asking
        again returns the same status (a retried CreateInvalidation returns the same invalidation)."""
        try:
            return InvalidationStatus(value)
        except ValueError:
            raise RejectedError(self.name, f"unknown invalidation status {str(value)!r}") from None

    @contextmanager
    def _translated_errors(self, operation: str, deadline: Deadline | None, *, whole: bool = False) -> Iterator[None]:
        """One call within `timeout_seconds` (retries included) and before `deadline` (None: the timeout
        alone); boto3/botocore exceptions -> the provider error vocabulary, in one place, most specific first.
        An attempt refused for lack of time (`OutOfTimeError`) is raised as is: the executor defers it."""
        timeout = self.settings.timeout_seconds
        try:
            until, what = deadline or Deadline.after(timeout), f"{self.name}: {operation}"
            with bounded_call(until, timeout, what=what, need=timeout if whole and deadline else 0.0):
                yield
        except OutOfTimeError:
            raise
        except ClientError as exc:
            raise client_error(self.name, exc) from None
        except NoCredentialsError:
            raise AuthError(self.name, f"{operation}: no AWS credentials found (IAM role?)") from None
        except ParamValidationError as exc:
            raise RejectedError(self.name, f"{operation}: {exc}") from None
        except (ConnectionError, HTTPClientError, BotoCoreError) as exc:
            # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, ...
            raise UnavailableError(self.name, f"{type(exc).__name__} calling {operation}") from None


def client_error(provider: str, exc: ClientError) -> ProviderError:
    """Map a `ClientError` by its AWS error code (with or without an `Exception` suffix), else by status."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message") or code or "unknown error")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = f"{code}: {message}" if code and not message.startswith(code) else message
    error_class = _ERRORS.get(code) or _ERRORS.get(code.removesuffix("Exception"))
    if error_class is None:
        error_class = error_class_for_status(status) if status else UnavailableError
    if error_class is ThrottledError:
        retry_after = IN_PROGRESS_BACKOFF_SECONDS if code.startswith("TooManyInvalidationsInProgress") else None
        return ThrottledError(provider, message, status=status, retry_after=retry_after)
    return error_class(provider, message, status=status)


ADAPTER = CloudFrontProvider
