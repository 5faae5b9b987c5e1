"""F5 Distributed Cloud (XC) CDN cache-purge adapter.

Docs: https://docs.cloud.f5.com/docs-v2/api (API reference > CDN > "Purge CDN Cache").

- `POST https://{tenant}.console.ves.volterra.io/api/cdn/namespaces/{namespace}/cdn_loadbalancer/{name}/cache-purge`
  with `Authorization: APIToken <token>`.
- The body names exactly one target: `url`, `hostname`, `pattern` (a PCRE 1 regular expression) or
  `purge_all: {}`; plus exactly one of `soft_purge: {}` / `hard_purge: {}`. One target per call, so the
  planner sends one call per URL and a whole directory should be one `prefix` (one `pattern`).
- Response `{"purge_request_id": ...}`: the generated example shows a number, the field description a
  request id; both int and str are accepted (a 2xx without it is still an accepted purge, with no id).
  The id tracks an asynchronous purge.
- Errors: 401, 403, 404, 409 (conflict: a `RejectedError`), 429, 500, 503, 504.
- `path` targets are not native: the planner turns them into `url` targets per configured host.

*Unverified* (the page does not say; see `UNVERIFIED`):
- the regular expression in `pattern` is matched against the URL path (not host + path, not the full
  URL); a `prefix` is therefore rendered `^<escaped prefix>.*`, e.g. `/img/` -> `^/img/.*`;
- `url` is described as "a URL path" but the example is an absolute URL; we send the absolute URL;
- the page's example URL carries a doc-generator prefix (`/api/v1/api/production/us-east-1/...`);
  we call the tenant API path `/api/cdn/namespaces/...` shown in the operation itself;
- the shape of error bodies (we read `message`, as for the other XC APIs) and any rate-limit numbers.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
import msgspec

from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import (
    DNS_NAME_BYTES,
    UNDOCUMENTED_TARGET_BYTES,
    Capabilities,
    ProviderDocs,
    ProviderSettings,
)
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider

BASE_URL_TEMPLATE = "https://{tenant}.console.ves.volterra.io"
# The field that carries each target kind in the request body.
TARGET_FIELDS: dict[TargetKind, str] = {
    TargetKind.URL: "url",
    TargetKind.HOST: "hostname",
    TargetKind.PREFIX: "pattern",
    TargetKind.ALL: "purge_all",
}
UNVERIFIED = (
    "f5xc: `pattern` is assumed to be matched against the URL path; prefixes are sent as `^<prefix>.*`",
    "f5xc: `url` is sent as an absolute URL (the field is described as a URL path, the example is a URL)",
    "f5xc: no documented rate limit; 429 is handled when it comes",
    "f5xc: the error body shape is undocumented; `message` is read, as for the other XC APIs",
    f"f5xc: no documented length limit for `url` or `pattern`; each is bounded at {UNDOCUMENTED_TARGET_BYTES} bytes",
    "f5xc: the credential check reads the load balancer's configuration: a token allowed to purge but not to read "
    "it is reported refused (403)",
)

_NAME = worded(r"\A[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z", "must be lower-case letters, digits and '-', not at either end")
_DNS_NAME = worded(
    r"\A[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z", "must be a DNS name (lower-case letters, digits, '.' and '-')"
)


class F5xcSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["f5xc"] = "f5xc"
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=_NAME)]  # the console's tenant name
    namespace: Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=_NAME)]
    load_balancer: Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=_DNS_NAME)]


def prefix_pattern(prefix: str) -> str:
    """A PCRE anchored on the path that matches everything under `prefix` (regex-escaped)."""
    return f"^{re.escape(prefix)}.*"


class F5xcProvider(HttpProvider):
    kind = "f5xc"
    label = "F5 XC"
    settings_model = F5xcSettings
    default_base_url = BASE_URL_TEMPLATE
    required_credentials = ("token",)
    declared = Capabilities(
        max_targets={TargetKind.URL: 1, TargetKind.HOST: 1, TargetKind.PREFIX: 1, TargetKind.ALL: 1},
        max_target_bytes={
            TargetKind.URL: UNDOCUMENTED_TARGET_BYTES,
            TargetKind.PREFIX: UNDOCUMENTED_TARGET_BYTES,
            TargetKind.HOST: DNS_NAME_BYTES,
        },
        soft_purge=True,
        asynchronous=True,
    )
    docs = ProviderDocs(
        settings="`tenant`, `namespace`, `load_balancer`; `token` (`APIToken`)",
        purges="url, host, prefix (as a path-anchored PCRE `pattern`), all",
        per_call="1 target",
        soft="`soft_purge` / `hard_purge`",
        pacing="on 429",
        example="--prefix /img/ --soft      (one call per target)",
        unverified=UNVERIFIED,
        credential_check="`GET /api/config/namespaces/{namespace}/cdn_loadbalancers/{name}` (the load balancer purged)",
    )

    settings: F5xcSettings

    def base_url_for(self, settings: ProviderSettings) -> str:
        if not isinstance(settings, F5xcSettings):
            raise TypeError(f"expected F5xcSettings, got {type(settings).__name__}")
        return BASE_URL_TEMPLATE.format(tenant=settings.tenant)

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        if target.kind is TargetKind.PREFIX:
            return prefix_pattern(target.value)
        return target.value

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"APIToken {self.credentials['token'].get_secret_value()}"}

    def credentials_check(self) -> ApiCall:
        """`GET /api/config/namespaces/{namespace}/cdn_loadbalancers/{name}` (the CDN load balancer's "Get"
        operation of the XC config API): the load balancer purged, read with the same `APIToken`; 401 when the
        token is not accepted, 404 when the namespace or load balancer is not the tenant's."""
        return ApiCall(
            "GET",
            f"api/config/namespaces/{quote(self.settings.namespace, safe='')}"
            f"/cdn_loadbalancers/{quote(self.settings.load_balancer, safe='')}",
        )

    def build_request(self, request: PurgeRequest) -> ApiCall:
        field_name = TARGET_FIELDS[request.kind]
        value: Any = (
            {}
            if request.kind is TargetKind.ALL
            else self.render(self.settings, Target(request.kind, request.targets[0]))
        )
        body = {field_name: value, "soft_purge" if request.soft else "hard_purge": {}}
        path = (
            f"api/cdn/namespaces/{quote(self.settings.namespace, safe='')}"
            f"/cdn_loadbalancer/{quote(self.settings.load_balancer, safe='')}/cache-purge"
        )
        return ApiCall("POST", path, body=body, headers={"Content-Type": "application/json"})

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self.response_object(response)
        purge_id = body.get("purge_request_id")
        if purge_id is not None and (isinstance(purge_id, bool) or not isinstance(purge_id, int | str)):
            raise RejectedError(self.name, f"unexpected purge_request_id {purge_id}", status=response.status_code)
        return PurgeResult(provider_id=None if purge_id is None else str(purge_id), detail="accepted")


ADAPTER = F5xcProvider
