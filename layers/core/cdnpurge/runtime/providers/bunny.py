"""Bunny CDN (bunny.net) purge adapter.

Docs: Purge URL https://docs.bunny.net/reference/purgepublic_indexpost; Pull Zone "Purge Cache"
https://docs.bunny.net/api-reference/core/pull-zone/purge-cache with the guide
https://docs.bunny.net/cdn/purge-cache; rate limits https://docs.bunny.net/docs/cdn-api-purge-rate-limits.

- Base `https://api.bunny.net`, header `AccessKey: <account API key>` (credential `access_key`).
- url: `POST /purge?url=<URL>`, one URL per call. Bunny purges a URL holding `*`, or whose path ends with
  `/`, as a prefix (wildcard): a URL ending with `/` is sent with `exactPath=true` ("purges only the exact
  path without adding a wildcard suffix"), and a URL holding `*` is refused by `render`, so the planner
  reports it for its change alone instead of purging a wildcard. `async` is left at its default (false):
  the call returns once the purge is done, so there is no job to follow.
- key (cache tag): `POST /pullzone/{id}/purgeCache` with `{"CacheTag": "<tag>"}`, one tag per call; it purges
  the files whose `CDN-Tag` response header carries the tag. `CDN-Tag` values are limited to 1,024 bytes, so
  a longer tag, which no file can carry, is refused by `render`.
- all: `POST /pullzone/{id}/purgeCache` without a body: the whole pull zone.
- `path` targets are not native: the planner turns them into URLs for the configured hosts. No soft purge.
- Errors by status: 401 (wrong key: `AuthError`), 404 (unknown pull zone: `NotFoundError`), 400, 429, 5xx.
- Rate limits: token buckets per account and per purge type, one token per purged item: exact URLs burst
  120, 5/s; prefixes (wildcards) burst 20, 0.5/s. A 429 carries "guidance on when to retry".

*Unverified* (see `UNVERIFIED`):
- the 429's retry guidance: `Retry-After` is read (the shared default), and without it the executor's back-off
  applies;
- which bucket a cache-tag or whole-zone purge draws from: pacing declares the exact-URL bucket (5/s, burst
  120) for every kind; lower it with `rate_per_second`;
- the success statuses (the reference shows 200 for `/purge` and 204 for `purgeCache`) and bodies: any 2xx is
  accepted and a body, if any, is not relied on (a 2xx that is not JSON is still refused);
- the error body shape: Bunny's API error model `{"ErrorKey", "Field", "Message"}` is read when present;
- whether `CacheTag` matches a tag exactly (assumed) or as a substring (a public report needed `*tag*`);
- `exactPath` only applies when the pull zone has IgnoreQueryStrings disabled (documented): with it enabled,
  a URL ending with `/` may be purged as a prefix.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.spec import UNDOCUMENTED_TARGET_BYTES, Capabilities, ProviderDocs, ProviderSettings
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider

BASE_URL = "https://api.bunny.net"
# Exact-purge bucket (documented): burst 120 tokens, refilled at 5 a second.
EXACT_PURGES_PER_SECOND = 5.0
EXACT_PURGE_BURST = 120
MAX_TAG_BYTES = 1024
UNVERIFIED = (
    "bunny: the 429's retry guidance is undocumented in detail; `Retry-After` is read",
    f"bunny: the bucket of tag and whole-zone purges is undocumented; pacing uses the exact-URL one "
    f"({EXACT_PURGES_PER_SECOND:g}/s, burst {EXACT_PURGE_BURST}) for every kind (lower with rate_per_second)",
    "bunny: success statuses (200 for /purge, 204 for purgeCache) and bodies are not relied on: any 2xx is "
    "accepted unless its body is not JSON",
    'bunny: the error body is assumed to be `{"ErrorKey", "Field", "Message"}` (Message is read)',
    "bunny: `CacheTag` is assumed to match a tag exactly (a public report needed `*tag*`)",
    "bunny: `exactPath=true` (sent for URLs ending with `/`) only applies to pull zones with "
    "IgnoreQueryStrings disabled; otherwise such a URL may be purged as a prefix",
    f"bunny: no documented length limit for a purged URL; each is bounded at {UNDOCUMENTED_TARGET_BYTES} bytes",
)


class BunnySettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["bunny"] = "bunny"
    pull_zone_id: Annotated[int, msgspec.Meta(ge=1)]  # the pull zone whose cache tags and whole cache are purged


class BunnyProvider(HttpProvider):
    kind = "bunny"
    label = "Bunny CDN"
    settings_model = BunnySettings
    default_base_url = BASE_URL
    required_credentials = ("access_key",)
    declared = Capabilities(
        max_targets={TargetKind.URL: 1, TargetKind.KEY: 1, TargetKind.ALL: 1},
        max_target_bytes={TargetKind.URL: UNDOCUMENTED_TARGET_BYTES, TargetKind.KEY: MAX_TAG_BYTES},
        rate_per_second=EXACT_PURGES_PER_SECOND,
        burst=EXACT_PURGE_BURST,
    )
    docs = ProviderDocs(
        settings="`pull_zone_id`; `access_key` (`AccessKey`)",
        purges="url (`/purge?url=`, `exactPath` for a trailing `/`), key (`CacheTag`), all (the pull zone)",
        per_call="1 target",
        soft="no",
        pacing=f"{EXACT_PURGES_PER_SECOND:g}/s burst {EXACT_PURGE_BURST} (exact-URL bucket); 429 `Retry-After`",
        example="--key product-7 --url https://www.example.com/index.html",
        unverified=UNVERIFIED,
        credential_check="`GET /pullzone/{id}` (the pull zone purged)",
    )

    settings: BunnySettings

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """The target as sent; raises ValueError for what Bunny would purge as a wildcard or cannot match."""
        value = target.value
        if target.kind is TargetKind.URL:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"url:{value[:200]}: Bunny purges absolute http(s) URLs")
            if "*" in value:
                raise ValueError(f"url:{value[:200]}: Bunny would read '*' as a wildcard and purge a prefix")
        elif target.kind is TargetKind.KEY and len(value.encode()) > MAX_TAG_BYTES:
            raise ValueError(f"key:{value[:80]}...: Bunny cache tags (CDN-Tag) are at most {MAX_TAG_BYTES} bytes")
        return value

    def auth_headers(self) -> dict[str, str]:
        return {"AccessKey": self.credentials["access_key"].get_secret_value()}

    def credentials_check(self) -> ApiCall:
        """`GET /pullzone/{id}` ("Get Pull Zone", https://docs.bunny.net/api-reference/core/pull-zone/get-pull-zone):
        the configured pull zone, read with the account's `AccessKey`; 401 when Bunny does not accept the key,
        404 when the zone is not the account's."""
        return ApiCall("GET", f"pullzone/{self.settings.pull_zone_id}")

    def build_request(self, request: PurgeRequest) -> ApiCall:
        (value,) = request.targets
        if request.kind is TargetKind.URL:
            exact = {"exactPath": "true"} if urlsplit(value).path.endswith("/") else {}
            return ApiCall("POST", "purge", params={"url": value, **exact})
        zone = f"pullzone/{self.settings.pull_zone_id}/purgeCache"
        if request.kind is TargetKind.KEY:
            return ApiCall("POST", zone, body={"CacheTag": value}, headers={"Content-Type": "application/json"})
        return ApiCall("POST", zone)  # TargetKind.ALL, the last declared kind

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        self.response_json(response)  # a 2xx page that is not JSON is a proxy in front of the API, not Bunny
        return PurgeResult(provider_id=None, detail="purged")

    def error_message(self, response: httpx.Response) -> str:
        """Bunny's `ErrorKey: Message (field Field)`, else the shared reading."""
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        if isinstance(body, dict) and isinstance(body.get("Message"), str):
            key, field_name = body.get("ErrorKey"), body.get("Field")
            text = f"{key}: {body['Message']}" if key else body["Message"]
            return text + (f" (field {field_name})" if field_name else "")
        return super().error_message(response)


ADAPTER = BunnyProvider
