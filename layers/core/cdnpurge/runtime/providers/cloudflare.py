"""Cloudflare cache purge adapter (https://developers.cloudflare.com/api/resources/cache/methods/purge/).

- `POST https://api.cloudflare.com/client/v4/zones/{zone_id}/purge_cache`, `Authorization: Bearer <token>`
  (an API token with the zone's Cache Purge permission).
- The body names one purge type: `files` (kind url), `tags` (kind key), `hosts` (kind host), `prefixes`
  (kind prefix, written `host/path` without a scheme, so they are declared host-qualified and the planner
  expands `/dir/` into `www.example.com/dir/` per configured host) or `purge_everything: true` (kind all).
  `path` targets are not native: the planner turns them into URLs for the configured hosts.
- Prefixes (https://developers.cloudflare.com/cache/how-to/purge-cache/purge_by_prefix/) cover everything
  starting with them, the prefix itself included; one may hold at most 31 path separators and no query
  string or fragment. `render` refuses others, so the planner reports them per change instead of sending a
  request Cloudflare refuses as a whole.
- Every answer is the v4 envelope `{"success", "errors": [{"code", "message"}], "messages", "result"}`; a
  2xx with `success: false` is a `RejectedError` carrying the first error's code and message. Error codes
  are mapped before statuses (`ERROR_CODES`), since Cloudflare answers some auth and routing problems
  with a 400.
- There is no soft purge and no job to poll ("Instant Purge").

Limits (https://developers.cloudflare.com/cache/how-to/purge-cache/#availability-and-limits, per account,
token bucket; `PLANS`): Free 5 requests/min (bucket 25), Pro 5/s (25), Business 10/s (50), Enterprise
50/s (500); 100 items per request for tags, hosts and prefixes on every plan; single-file (URL) purges:
100 per request (Enterprise 500), with a URL-rate of 800 (Free) to 3,000 (Enterprise) URLs/s.
`plan: paid` is Pro, the most conservative paid plan. Over a limit: 429 with `Retry-After`.

*Unverified* (see `UNVERIFIED`):
- URLs per request below Enterprise: the current table says 100, the single-file page (2024) and a
  2025 docs issue (cloudflare/cloudflare-docs#21338) say 30; we declare 30 on Free, 100 on paid plans;
- pacing uses the request bucket for every kind (URL purges are limited by URLs/s instead, usually looser);
- error codes come from public error reports, not a reference page: 1012/1014 (bad body), 7003/7000
  (zone not routable), 1000/10000 (token), 971 (throttled).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import httpx
import msgspec

from cdnpurge.core.answers import MAX_ANSWER_COUNT, answer_number
from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import AuthError, NotFoundError, ProviderError, RejectedError
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import (
    DNS_NAME_BYTES,
    UNDOCUMENTED_TARGET_BYTES,
    Capabilities,
    ProviderDocs,
    ProviderSettings,
)
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider

BASE_URL = "https://api.cloudflare.com/client/v4"
# The body field carrying each target kind.
BODY_FIELDS: dict[TargetKind, str] = {
    TargetKind.URL: "files",
    TargetKind.KEY: "tags",
    TargetKind.HOST: "hosts",
    TargetKind.PREFIX: "prefixes",
}
# Cloudflare error code -> error class, consulted before the HTTP status.
ERROR_CODES: dict[int, type[ProviderError]] = {
    1000: AuthError,  # "Invalid API Token"
    10000: AuthError,  # "Authentication error"
    7000: NotFoundError,  # "No route for that URI"
    7003: NotFoundError,  # "Could not route to /zones/..., perhaps your object identifier is invalid?"
}
MAX_PREFIX_SEPARATORS = 31
# Cloudflare documents no per-tag limit for the purge API (only the origin's 16 KB Cache-Tag header): unverified.
MAX_TAG_BYTES = 1024
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CODE_PREFIX = re.compile(r"^code (\d+): ")


class PlanLimits(msgspec.Struct, frozen=True):
    """One Cloudflare plan's purge limits."""

    urls_per_request: int
    items_per_request: int  # tags, hosts, prefixes
    requests_per_second: float
    bucket: int


PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(urls_per_request=30, items_per_request=100, requests_per_second=5 / 60, bucket=25),
    "pro": PlanLimits(urls_per_request=100, items_per_request=100, requests_per_second=5.0, bucket=25),
    "business": PlanLimits(urls_per_request=100, items_per_request=100, requests_per_second=10.0, bucket=50),
    "enterprise": PlanLimits(urls_per_request=500, items_per_request=100, requests_per_second=50.0, bucket=500),
}
PLANS["paid"] = PLANS["pro"]

UNVERIFIED = (
    "cloudflare: URLs per request below Enterprise: docs disagree (100 in the limits table, 30 on the "
    "single-file page); declared 30 on free, 100 on paid plans (lower with max_targets.url)",
    "cloudflare: pacing uses the per-plan request bucket for every kind; URL purges are really limited "
    "by URLs/s (800-3,000), so set rate_per_second to go faster",
    "cloudflare: error codes (1012, 1014, 7000, 7003, 1000, 10000, 971) come from public error reports",
    f"cloudflare: no documented per-item length for purges; URLs and prefixes are bounded at "
    f"{UNDOCUMENTED_TARGET_BYTES} bytes, tags at {MAX_TAG_BYTES}",
)


class CloudflareSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["cloudflare"] = "cloudflare"
    zone_id: Annotated[
        str, msgspec.Meta(pattern=worded(r"\A[0-9a-f]{32}\Z", "must be 32 lower-case hexadecimal digits (a zone id)"))
    ]  # the zone's 32-hex identifier
    # Sets the per-request item limits and pacing; `paid` = Pro.
    plan: Literal["free", "paid", "pro", "business", "enterprise"] = "paid"


def plan_capabilities(plan: str) -> Capabilities:
    limits = PLANS[plan]
    return Capabilities(
        max_targets={
            TargetKind.URL: limits.urls_per_request,
            TargetKind.KEY: limits.items_per_request,
            TargetKind.HOST: limits.items_per_request,
            TargetKind.PREFIX: limits.items_per_request,
            TargetKind.ALL: 1,
        },
        rate_per_second=limits.requests_per_second,
        burst=limits.bucket,
        host_qualified=frozenset({TargetKind.PREFIX}),
        max_target_bytes={
            TargetKind.URL: UNDOCUMENTED_TARGET_BYTES,
            TargetKind.KEY: MAX_TAG_BYTES,
            TargetKind.PREFIX: UNDOCUMENTED_TARGET_BYTES,
            TargetKind.HOST: DNS_NAME_BYTES,
        },
    )


class CloudflareProvider(HttpProvider):
    kind = "cloudflare"
    label = "Cloudflare"
    settings_model = CloudflareSettings
    default_base_url = BASE_URL
    required_credentials = ("token",)
    declared = plan_capabilities("paid")
    docs = ProviderDocs(
        settings="`zone_id`, `plan` (free/paid/pro/business/enterprise); `token`",
        purges="url (`files`), key (`tags`), host, prefix (`host/path`), all",
        per_call="30 URLs free, 100 paid, 500 enterprise; 100 items",
        soft="no",
        pacing="per plan (5/min .. 50/s); 429 `Retry-After`",
        example="--key product-7 --host www.example.com",
        unverified=UNVERIFIED,
        credential_check="`GET /user/tokens/verify`",
    )

    settings: CloudflareSettings

    @classmethod
    def capabilities_for(cls, settings: ProviderSettings) -> Capabilities:
        """Limits depend on the configured plan, so they are chosen per settings, not per class."""
        return plan_capabilities(settings.plan if isinstance(settings, CloudflareSettings) else "paid")

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """Prefixes are `host/path` without a scheme; everything else is sent as given.

        Raises ValueError for a prefix Cloudflare refuses: without a host, over 31 `/`, or with `?` / `#`."""
        if target.kind is not TargetKind.PREFIX:
            return target.value
        prefix = _SCHEME.sub("", target.value)
        if prefix.startswith("/"):
            raise ValueError(
                f"prefix:{target.value[:200]}: Cloudflare prefixes need a host (`host/path`); configure `hosts`"
            )
        if prefix.count("/") > MAX_PREFIX_SEPARATORS:
            raise ValueError(
                f"prefix:{target.value[:200]}: Cloudflare prefixes have at most {MAX_PREFIX_SEPARATORS} path separators"
            )
        if "?" in prefix or "#" in prefix:
            raise ValueError(f"prefix:{target.value[:200]}: Cloudflare prefixes cannot hold a query or fragment")
        return prefix

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['token'].get_secret_value()}"}

    def credentials_check(self) -> ApiCall:
        """`GET /user/tokens/verify`: whether Cloudflare accepts the API token
        (https://developers.cloudflare.com/api/resources/user/subresources/tokens/methods/verify/)."""
        return ApiCall("GET", "user/tokens/verify")

    def build_request(self, request: PurgeRequest) -> ApiCall:
        body: dict[str, Any]
        if request.kind is TargetKind.ALL:
            body = {"purge_everything": True}
        else:
            values = [self.render(self.settings, Target(request.kind, value)) for value in request.targets]
            body = {BODY_FIELDS[request.kind]: values}
        return ApiCall(
            "POST",
            f"zones/{self.settings.zone_id}/purge_cache",
            body=body,
            headers={"Content-Type": "application/json"},
        )

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self.response_json(response)
        if not isinstance(body, dict) or body.get("success") is not True:
            message = envelope_message(body) or f"unexpected response {body}"
            raise RejectedError(self.name, message, status=response.status_code)
        result = body.get("result")
        purge_id = result.get("id") if isinstance(result, dict) else None
        return PurgeResult(provider_id=None if purge_id is None else str(purge_id))

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text or response.reason_phrase
        return envelope_message(body) or super().error_message(response)

    def error_class(self, response: httpx.Response) -> type[ProviderError]:
        """Cloudflare's error codes decide before the status (see `ERROR_CODES`)."""
        match = _CODE_PREFIX.match(self.error_message(response))
        code = answer_number(match.group(1), low=0, high=MAX_ANSWER_COUNT) if match else None
        by_code = ERROR_CODES.get(int(code)) if code is not None else None
        return by_code or super().error_class(response)


def envelope_message(body: Any) -> str | None:
    """`code N: message` of the first error in a v4 envelope (plus how many more), or None."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    text = f"code {first.get('code')}: {first.get('message', '')}"
    return text + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")


ADAPTER = CloudflareProvider
