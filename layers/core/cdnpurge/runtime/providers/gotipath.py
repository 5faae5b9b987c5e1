"""Gotipath CDN purge adapter.

Docs: Gotipath Docs, CDN > API Reference > Purge > "Purge" (the page as published by Gotipath; its
address is not stable, so it is named by its place in the docs).

- `POST https://apistream.gotipath.com/v1/distributions/{distribution_id}/purges`.
- Auth headers `X-Auth-ClientId`, `X-Auth-LibraryId`, `X-Auth-ApiKey` (credentials `client_id`,
  `library_id`, `api_key`); the page also shows `Authorization: Bearer <token>`, which is sent only when a
  `bearer_token` credential is configured.
- Documented body: `{"type": "all", "paths": []}` (kind `all`). `paths` are host-relative URLs starting
  with `/`, query strings included ("purge by URL"; kind `path`; `url` targets are turned into paths by
  the planner for the configured hosts).
- Responses: 200 `{}`, 400, 401, 422 ("Parameter Error": a `RejectedError` with Gotipath's message).

*Unverified* (listed in `UNVERIFIED` so the docs and CLI can print them):
- the `type` value for a purge by URL: we send `"url"`;
- purge by pattern/prefix: not documented, so not declared;
- the limits: "rate and size limited" without numbers; we declare 50 paths per call and 1 call/s, which
  the configuration can lower (`max_targets`) or re-pace (`rate_per_second`);
- the error body shape (we read `message` / `error` / `errors`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
import msgspec

from cdnpurge.core.models import PurgeRequest, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import UNDOCUMENTED_TARGET_BYTES, Capabilities, ProviderDocs, ProviderSettings
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider

BASE_URL = "https://apistream.gotipath.com/v1"
# Conservative defaults: Gotipath documents that purges are rate and size limited, not the numbers.
DEFAULT_MAX_PATHS = 50
DEFAULT_RATE_PER_SECOND = 1.0
URL_PURGE_TYPE = "url"
UNVERIFIED = (
    'gotipath: the `type` of a purge by URL is undocumented; "url" is sent',
    "gotipath: purge by pattern/prefix is undocumented and not offered",
    f"gotipath: limits are undocumented; defaults {DEFAULT_MAX_PATHS} paths per call and "
    f"{DEFAULT_RATE_PER_SECOND:g} call/s (lower them with max_targets / rate_per_second)",
    "gotipath: the error body shape is undocumented; `message` and per-field `errors` are read",
    f"gotipath: no documented length limit for a path; each is bounded at {UNDOCUMENTED_TARGET_BYTES} bytes",
    "gotipath: the credential check's path `GET /distributions/{id}` is inferred from the reference's \"Get "
    'Distribution" entry beside the documented purge path; any answer but 2xx, 401 or 403 is reported unknown',
)


class GotipathSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["gotipath"] = "gotipath"
    distribution_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=128, pattern=worded(r"\A[A-Za-z0-9_-]+\Z", "must be letters, digits, '_' or '-'")
        ),
    ]


class GotipathProvider(HttpProvider):
    kind = "gotipath"
    label = "Gotipath"
    settings_model = GotipathSettings
    default_base_url = BASE_URL
    required_credentials = ("client_id", "library_id", "api_key")
    declared = Capabilities(
        max_targets={TargetKind.PATH: DEFAULT_MAX_PATHS, TargetKind.ALL: 1},
        max_target_bytes={TargetKind.PATH: UNDOCUMENTED_TARGET_BYTES},
        rate_per_second=DEFAULT_RATE_PER_SECOND,
        burst=1,
    )
    docs = ProviderDocs(
        settings="`distribution_id`; `client_id`, `library_id`, `api_key` (+ optional `bearer_token`)",
        purges="path (`type: url`), all",
        per_call=f"{DEFAULT_MAX_PATHS} (configurable)",
        soft="no",
        pacing=f"{DEFAULT_RATE_PER_SECOND:g}/s (configurable)",
        example="--path '/a.css?v=2'",
        unverified=UNVERIFIED,
        credential_check="`GET /distributions/{distribution_id}` (Get Distribution; path unverified)",
    )

    settings: GotipathSettings

    def auth_headers(self) -> dict[str, str]:
        headers = {
            "X-Auth-ClientId": self.credentials["client_id"].get_secret_value(),
            "X-Auth-LibraryId": self.credentials["library_id"].get_secret_value(),
            "X-Auth-ApiKey": self.credentials["api_key"].get_secret_value(),
        }
        bearer = self.credentials.get("bearer_token")
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer.get_secret_value()}"
        return headers

    def credentials_check(self) -> ApiCall:
        """`GET /distributions/{distribution_id}` ("Get Distribution" in Gotipath's CDN API reference): the
        distribution purged, read with the same `X-Auth-*` headers; 401 when they are not accepted. The path is
        inferred (see `UNVERIFIED`): a wrong one answers 404, reported unknown, never accepted."""
        return ApiCall("GET", f"distributions/{quote(self.settings.distribution_id, safe='')}")

    def build_request(self, request: PurgeRequest) -> ApiCall:
        if request.kind is TargetKind.ALL:
            body: dict[str, Any] = {"type": "all", "paths": []}
        else:  # TargetKind.PATH
            body = {"type": URL_PURGE_TYPE, "paths": list(request.targets)}
        path = f"distributions/{quote(self.settings.distribution_id, safe='')}/purges"
        return ApiCall("POST", path, body=body, headers={"Content-Type": "application/json"})

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self.response_object(response)
        purge_id = body.get("id")
        return PurgeResult(provider_id=None if purge_id is None else str(purge_id))

    def error_message(self, response: httpx.Response) -> str:
        """Gotipath's message, with the per-field `errors` of a 422 when it gives them."""
        message = super().error_message(response)
        try:
            body = response.json()
        except ValueError:
            return message
        if isinstance(body, dict) and isinstance(body.get("errors"), dict) and body.get("message"):
            details = "; ".join(
                f"{name}: {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                for name, problems in body["errors"].items()
            )
            return f"{message} ({details})"
        return message


ADAPTER = GotipathProvider
