"""Akamai Fast Purge API v3 adapter (https://techdocs.akamai.com/purge-cache/reference/api).

- `POST https://{host}/ccu/v3/{invalidate|delete}/{url|cpcode|tag}/{production|staging}` with body
  `{"objects": [...]}`; `host` is the EdgeGrid API host of the API client (`akab-....purge.akamaiapis.net`).
- Auth: every request is signed with EdgeGrid (`edgegrid.EdgeGridAuth`, an httpx `Auth` on this adapter's
  client) from the credentials `client_token`, `client_secret` and `access_token`.
- Kinds: `url` (absolute URLs) and `key`, which are cache tags or CP codes depending on `keys_are`
  (one provider entry purges one of them; configure two entries to purge both). CP codes are sent as
  numbers. `path` targets become URLs for the configured hosts (planner).
- Soft purge is `invalidate` (serve stale while revalidating), hard is `delete`: the mode changes the path.
- Response 201 `{"purgeId", "estimatedSeconds", "httpStatus": 201, "detail", "supportId"}`; purges finish in
  about 5 s and there is no status to poll (so it is not `asynchronous`: nothing to ask, see `JobStatus`).
- Errors are problem+json (`title`, `detail`, `httpStatus`, `supportId`): 400, 401, 403, 413 (body over
  50,000 bytes), 429, 500, 503, 504, 507. If any object fails, the whole request fails, so `render` refuses
  what Akamai would, and the planner reports it for that target's changes alone: URLs that are not
  absolute http(s) URLs of printable ASCII (percent-encode the rest), non-numeric CP codes, and cache tags
  over 128 characters or with characters outside the documented set (alphanumerics and
  ``!#$%&'+-.^_`|~``, the RFC 7230 token characters but `*`;
  https://techdocs.akamai.com/purge-cache/docs/purge-content-cache-tag).

Limits (https://techdocs.akamai.com/purge-cache/reference/rate-limiting, per account, token buckets):
requests 100 burst, 50/s; objects: URLs 10,000 burst, 12,000/min; CP codes 300, 30/min; cache tags 5,000,
500/min. A request needs a token per object, so one request can never hold more objects than the bucket
(declared as `max_targets`). The body is at most 50,000 bytes: declared as `max_body_bytes`, and checked
again here before sending. A 429 carries no `Retry-After` but `X-Ratelimit-*` headers and
`rateLimitCurrentRequestSize` / `rateLimitRemaining` in the body
(https://techdocs.akamai.com/purge-cache/reference/rate-limit-response-examples); the wait is computed
from them, else the documented "wait five seconds".

*Unverified*: pacing covers the request bucket only; the object buckets refill much slower (200 URLs/s,
0.5 CP codes/s, ~8.3 tags/s) and are met by 429 + computed back-off.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from cdnpurge.core.answers import MAX_ANSWER_COUNT, MAX_ANSWER_SECONDS, answer_id, answer_number
from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import Capabilities, Credentials, ProviderDocs, ProviderSettings
from cdnpurge.runtime.providers.edgegrid import EdgeGridAuth
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider, parse_retry_after

MAX_BODY_BYTES = 50_000
BODY_OVERHEAD_BYTES = len('{"objects":[]}')
# Object bucket sizes: the most objects one request can ever carry.
MAX_URLS = 10_000
MAX_TAGS = 5_000
MAX_CPCODES = 300
REQUESTS_PER_SECOND = 50.0
REQUEST_BURST = 100
DOCUMENTED_WAIT_SECONDS = 5.0
MAX_TAG_LENGTH = 128
# Allowed cache-tag characters (Akamai's table): alphanumerics and RFC 7230 token punctuation except `*`.
_TAG = re.compile(r"[A-Za-z0-9!#$%&'+.^_`|~-]+")
# Printable ASCII without space: anything else must arrive percent-encoded.
_URL = re.compile(r"[!-~]+")
UNVERIFIED = (
    "akamai: pacing covers the request bucket (50/s, burst 100); object buckets (URLs 200/s, CP codes "
    "30/min, tags 500/min) are met by 429 and a back-off computed from the X-Ratelimit-* headers",
)


class AkamaiSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["akamai"] = "akamai"
    # The API client's EdgeGrid host, e.g. akab-xxxx.purge.akamaiapis.net.
    host: Annotated[
        str,
        msgspec.Meta(
            pattern=worded(
                r"\A[a-z0-9-]+(\.[a-z0-9-]+)*\.akamaiapis\.net\Z",
                "must be an EdgeGrid API host ending in .akamaiapis.net",
            )
        ),
    ]
    network: Literal["production", "staging"] = "production"
    # Whether `key` targets of this entry are cache tags or CP codes.
    keys_are: Literal["tag", "cpcode"] = "tag"


def key_capabilities(keys_are: str) -> Capabilities:
    return Capabilities(
        max_targets={TargetKind.URL: MAX_URLS, TargetKind.KEY: MAX_TAGS if keys_are == "tag" else MAX_CPCODES},
        max_body_bytes=MAX_BODY_BYTES,
        body_overhead_bytes=BODY_OVERHEAD_BYTES,
        # A URL is bounded by the documented 50,000-byte body (`max_body_bytes`); a tag by its 128 characters.
        max_target_bytes={TargetKind.KEY: MAX_TAG_LENGTH},
        soft_purge=True,
        rate_per_second=REQUESTS_PER_SECOND,
        burst=REQUEST_BURST,
    )


class AkamaiProvider(HttpProvider):
    kind = "akamai"
    label = "Akamai"
    settings_model = AkamaiSettings
    default_base_url = "https://{host}"
    required_credentials = ("client_token", "client_secret", "access_token")
    declared = key_capabilities("tag")
    docs = ProviderDocs(
        settings="`host`, `network` (production/staging), `keys_are` (tag/cpcode); `client_token`, "
        "`client_secret`, `access_token`",
        purges="url, tag or cpcode; EdgeGrid signed",
        per_call=f"by body: <= {MAX_BODY_BYTES:,} bytes (never 413)",
        soft="`invalidate` (soft) / `delete` (hard)",
        pacing=f"{REQUESTS_PER_SECOND:g}/s burst {REQUEST_BURST}; 429 `X-Ratelimit-*`",
        example="--url https://www.example.com/ --soft",
        unverified=UNVERIFIED,
        credential_check="`POST /ccu/v3/rate-limit-status/{tag|cpcode}` (the account's purge budget), EdgeGrid signed",
    )

    settings: AkamaiSettings

    def __init__(
        self, settings: ProviderSettings, credentials: Credentials, client: httpx.Client | None = None
    ) -> None:
        super().__init__(settings, credentials, client)
        self._auth = EdgeGridAuth(
            self.credentials["client_token"], self.credentials["client_secret"], self.credentials["access_token"]
        )

    @classmethod
    def capabilities_for(cls, settings: ProviderSettings) -> Capabilities:
        """The key limit depends on `keys_are` (tags or CP codes), so capabilities are chosen per settings."""
        return key_capabilities(settings.keys_are if isinstance(settings, AkamaiSettings) else "tag")

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """The object as sent (CP codes as their digits); raises ValueError for one Fast Purge would refuse."""
        value = target.value
        if target.kind is TargetKind.URL:
            parts = urlsplit(value) if _URL.fullmatch(value) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"url:{value[:200]}: Akamai takes absolute http(s) URLs of printable ASCII only "
                    "(percent-encode spaces and non-ASCII characters)"
                )
        elif target.kind is TargetKind.KEY and isinstance(settings, AkamaiSettings) and settings.keys_are == "cpcode":
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                raise ValueError(f"key:{value[:200]}: CP codes must be numbers")
        elif target.kind is TargetKind.KEY:
            if len(value) > MAX_TAG_LENGTH:
                raise ValueError(f"key:{value[:80]}...: Akamai cache tags are at most {MAX_TAG_LENGTH} characters")
            if not _TAG.fullmatch(value):
                raise ValueError(f"key:{value[:200]}: Akamai cache tags take only letters, digits and !#$%&'+-.^_`|~")
        return value

    def base_url_for(self, settings: ProviderSettings) -> str:
        if not isinstance(settings, AkamaiSettings):
            raise TypeError(f"expected AkamaiSettings, got {type(settings).__name__}")
        return f"https://{settings.host}"

    def request_auth(self) -> httpx.Auth:
        return self._auth

    def auth_headers(self) -> dict[str, str]:
        return {}  # EdgeGrid signs the final request in `EdgeGridAuth.auth_flow`.

    def credentials_check(self) -> ApiCall:
        """`POST /ccu/v3/rate-limit-status/{purge-type}` ("Check rate and object limit statuses",
        https://techdocs.akamai.com/purge-cache/reference/rate-limits): the account's remaining requests and
        objects of the entry's key type, signed with EdgeGrid like a purge and purging nothing; 401 when the API
        client's credentials are not accepted."""
        return ApiCall("POST", f"ccu/v3/rate-limit-status/{self.settings.keys_are}")

    def build_request(self, request: PurgeRequest) -> ApiCall:
        objects: list[Any]
        if request.kind is TargetKind.URL:
            object_type, objects = "url", list(request.targets)
        elif self.settings.keys_are == "tag":  # TargetKind.KEY
            object_type, objects = "tag", list(request.targets)
        else:
            # `check` has made sure they are numbers.
            object_type, objects = "cpcode", [int(value) for value in request.targets]
        body = {"objects": objects}
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_BODY_BYTES:
            raise RejectedError(self.name, f"request body of {size} bytes exceeds Akamai's {MAX_BODY_BYTES}")
        operation = "invalidate" if request.soft else "delete"
        return ApiCall(
            "POST",
            f"ccu/v3/{operation}/{object_type}/{self.settings.network}",
            body=body,
            headers={"Content-Type": "application/json"},
        )

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self.response_json(response)
        if not isinstance(body, dict) or body.get("httpStatus", response.status_code) != 201:
            raise RejectedError(self.name, f"unexpected response {body}", status=response.status_code)
        extra = {
            "estimatedSeconds": answer_number(body.get("estimatedSeconds"), low=0.0, high=MAX_ANSWER_SECONDS),
            "supportId": answer_id(body.get("supportId")),
        }
        return PurgeResult(
            provider_id=answer_id(body.get("purgeId")),
            detail=str(body.get("detail", "ok")),
            extra={name: value for name, value in extra.items() if value is not None},
        )

    def error_message(self, response: httpx.Response) -> str:
        """problem+json: `title: detail`, as Akamai's own tools print it."""
        try:
            body = response.json()
        except ValueError:
            return response.text or response.reason_phrase
        if isinstance(body, dict) and (body.get("title") or body.get("detail")):
            parts = [str(body[name]) for name in ("title", "detail") if body.get(name)]
            return ": ".join(parts)
        return super().error_message(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        """`Retry-After` if present, else the time for the exhausted bucket to refill, else 5 s (documented)."""
        explicit = parse_retry_after(response.headers.get("Retry-After"))
        if explicit is not None:
            return explicit
        waits: list[float] = []
        requests_left = _number(response.headers.get("X-Ratelimit-Remaining"))
        requests_rate = _number(response.headers.get("X-Ratelimit-Limit-Per-Second"))
        if requests_left is not None and requests_left < 1 and requests_rate:
            waits.append((1 - requests_left) / requests_rate)
        try:
            body = response.json()
        except ValueError:
            body = None
        needed = _number(body.get("rateLimitCurrentRequestSize")) if isinstance(body, dict) else None
        objects_left = _number(response.headers.get("X-Ratelimit-Remaining-Objects"))
        objects_rate = _number(response.headers.get("X-Ratelimit-Limit-Per-Second-Objects"))
        if needed is not None and objects_left is not None and objects_rate and needed > objects_left:
            waits.append((needed - objects_left) / objects_rate)
        return max(waits) if waits else DOCUMENTED_WAIT_SECONDS


def _number(value: Any) -> float | None:
    """A rate-limit number of a 429 (a header or the body's request size): finite, bounded, not negative."""
    return answer_number(value, low=0.0, high=MAX_ANSWER_COUNT)


ADAPTER = AkamaiProvider
