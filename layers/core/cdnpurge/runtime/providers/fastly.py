"""Fastly purge API adapter (https://www.fastly.com/documentation/reference/api/purging/).

- url: `POST /purge/{host-and-path}`, one URL per call.
- key: `POST /service/{id}/purge/{key}` for one key, `POST /service/{id}/purge` with JSON
  `{"surrogate_keys": [...]}` for up to 256 keys.
- all: `POST /service/{id}/purge_all`, which Fastly never performs softly.
- Soft purge is the `Fastly-Soft-Purge: 1` header. Purges take effect in ~150 ms; there is no job.
- Over ~100,000 purges an hour: 429 with `Fastly-RateLimit-Reset` (epoch seconds).
- URLs and single keys become part of the API path, so one with a `.`/`..` segment (even percent-encoded)
  is refused by `render`: `https://www.example.com/a/../../../service/S/purge_all` would otherwise be
  resolved into a call to `purge_all`.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from cdnpurge.core.answers import MAX_ANSWER_COUNT, MAX_PROVIDER_WAIT_SECONDS, answer_number
from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import Capabilities, ProviderDocs, ProviderSettings
from cdnpurge.core.urls import dot_segment_problem, may_hold_dot_segment
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider, parse_retry_after

BASE_URL = "https://api.fastly.com"
MAX_KEYS_PER_CALL = 256
# Fastly "Surrogate-Key" reference: individual keys are limited to 1,024 bytes (longer ones fail the purge API).
MAX_KEY_BYTES = 1024
# Fastly "VCL constraints and limitations": URL size 8 KB; no request for a longer URL is ever cached.
MAX_URL_BYTES = 8192
# 100,000 purges per hour per customer, averaged: ~27.7 per second.
PURGES_PER_SECOND = 100_000 / 3600


def url_purge_path(url: str) -> str:
    """The API path purging one URL: `purge/{host-and-path}`, the target's own escapes kept."""
    parts = urlsplit(url)
    cached = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The target is already a percent-encoded URL: keep its escapes, encode only what is unsafe.
    return f"purge/{quote(cached, safe='/?=&:@!$,;~%+')}"


def key_purge_segment(key: str) -> str:
    """One surrogate key as the last segment of `service/{id}/purge/{key}`."""
    return quote(key, safe="")


class FastlySettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["fastly"] = "fastly"
    service_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1, pattern=worded(r"\A[A-Za-z0-9]+\Z", "must be letters and digits (a Fastly service id)")
        ),
    ]


class FastlyProvider(HttpProvider):
    kind = "fastly"
    label = "Fastly"
    settings_model = FastlySettings
    default_base_url = BASE_URL
    required_credentials = ("token",)
    declared = Capabilities(
        max_targets={TargetKind.URL: 1, TargetKind.KEY: MAX_KEYS_PER_CALL, TargetKind.ALL: 1},
        max_target_bytes={TargetKind.KEY: MAX_KEY_BYTES, TargetKind.URL: MAX_URL_BYTES},
        soft_purge=True,
        hard_only=frozenset({TargetKind.ALL}),
        rate_per_second=PURGES_PER_SECOND,
        burst=10,
    )
    docs = ProviderDocs(
        settings="`service_id`; credential `token`",
        purges="url, key (one, or bulk in a JSON body), all (never soft)",
        per_call=f"url 1, key {MAX_KEYS_PER_CALL}, all 1",
        soft="`Fastly-Soft-Purge: 1`",
        pacing="~27.8/s (100,000/h); 429 `Fastly-RateLimit-Reset`",
        example="--key article-42 --key home --soft",
        credential_check="`GET /tokens/self` (the token's own metadata)",
    )

    settings: FastlySettings

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """The target as given; a URL or key that would put a dot segment into the API path is refused."""
        value = target.value
        if "%" not in value and not may_hold_dot_segment(value):
            return value  # no dot segment can appear, encoded or not: the common case, kept cheap
        if target.kind is TargetKind.URL:
            path = url_purge_path(target.value)
        elif target.kind is TargetKind.KEY:
            path = f"purge/{key_purge_segment(target.value)}"
        else:
            return target.value
        problem = dot_segment_problem(urlsplit(path).path)
        if problem:
            raise ValueError(f"{target.kind.value}:{target.value[:200]}: {problem}")
        return target.value

    def auth_headers(self) -> dict[str, str]:
        return {"Fastly-Key": self.credentials["token"].get_secret_value()}

    def credentials_check(self) -> ApiCall:
        """`GET /tokens/self`: the token's own metadata, 401 when Fastly does not accept the token
        (https://www.fastly.com/documentation/reference/api/auth-tokens/user/)."""
        return ApiCall("GET", "tokens/self")

    def build_request(self, request: PurgeRequest) -> ApiCall:
        headers = {"Fastly-Soft-Purge": "1"} if request.soft and request.kind is not TargetKind.ALL else {}
        service = f"service/{self.settings.service_id}"
        if request.kind is TargetKind.URL:
            (url,) = request.targets
            return ApiCall("POST", url_purge_path(url), headers=headers)
        if request.kind is TargetKind.KEY:
            if len(request.targets) == 1:
                return ApiCall("POST", f"{service}/purge/{key_purge_segment(request.targets[0])}", headers=headers)
            return ApiCall("POST", f"{service}/purge", body={"surrogate_keys": list(request.targets)}, headers=headers)
        return ApiCall("POST", f"{service}/purge_all")  # TargetKind.ALL, the last declared kind

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self.response_object(response)
        if "status" in body:
            if body["status"] != "ok":
                raise RejectedError(self.name, f"purge status {body['status']!r}", status=response.status_code)
            return PurgeResult(provider_id=body.get("id"))
        # Bulk key purge: the official clients return a flat map key -> purge id; the OpenAPI
        # description wraps the same map in `purge_statuses`. Accept both.
        statuses = body.get("purge_statuses", body)
        if not isinstance(statuses, dict):
            raise RejectedError(self.name, f"unexpected purge_statuses {statuses}", status=response.status_code)
        missing = [key for key in request.targets if key not in statuses]
        if missing:
            raise RejectedError(self.name, f"bulk purge response lacks keys {missing[:5]}", status=response.status_code)
        return PurgeResult(provider_id=",".join(sorted({str(statuses[key]) for key in request.targets})))

    def retry_after(self, response: httpx.Response) -> float | None:
        """`Retry-After` if given, else Fastly's `Fastly-RateLimit-Reset` (epoch seconds) minus now."""
        explicit = parse_retry_after(response.headers.get("Retry-After"))
        if explicit is not None:
            return explicit
        reset = answer_number(response.headers.get("Fastly-RateLimit-Reset"), low=0.0, high=MAX_ANSWER_COUNT)
        return None if reset is None else answer_number(reset - time.time(), low=0.0, high=MAX_PROVIDER_WAIT_SECONDS)


ADAPTER = FastlyProvider
