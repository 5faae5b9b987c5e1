"""Medianova CDN purge adapter.

Docs: https://docs.medianova.com (API reference > CDN > Purge).

- Base `https://cloud.medianova.com/api/v1`, `Authorization: Bearer <token>`.
- Create a job: `POST /cdn/{organization_uuid}/job/{resource_uuid}/purge` with
  `{"resource_uuid": "<same as in the path>", "file_path": ["/abs/path", ...]}`: 1 to 100 absolute paths;
  `*` is a wildcard (`/images/*`, `/images/*.jpg`). Jobs are asynchronous.
- List jobs: `GET` on the same path with `page` (>= 1), `limit` (1..100) and an optional `opID`
  (`job_status()`; the bounds are checked here before calling).
- Kinds: `path` and `prefix`, 100 per call. A prefix is rendered `{prefix}*` (`/img/` -> `/img/*`,
  `/img` -> `/img*`, which covers `/img` itself as the planner assumes, and `/imgx` too: a harmless
  over-purge). `url` is not native: the planner turns URLs of the configured hosts into paths. No soft purge.

*Unverified* (the page documents "200" without a body; see `UNVERIFIED`):
- the shape of the create and list responses: the job id is read from `data.id`, `id`, `opID` or
  `data.opID`, whichever is present, and a body saying `"status": false` / `"success": false` is taken
  as a refusal;
- the error body shape (we read `message` / `error`) and any rate limit;
- a literal `*` inside a path cannot be escaped: it is always a wildcard;
- `*` matching any characters, `/` included, so `/img/*` covers `/img/a/b.png` (the page shows `*` at the end
  and mid-path, `/images/*.jpg`, but not what it spans).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

import httpx
import msgspec

from cdnpurge.core.answers import answer_id
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest, Target, TargetKind
from cdnpurge.core.protocol import PurgeResult
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.schema import worded
from cdnpurge.core.spec import UNDOCUMENTED_TARGET_BYTES, Capabilities, ProviderDocs, ProviderSettings
from cdnpurge.runtime.providers.http import ApiCall, HttpProvider

BASE_URL = "https://cloud.medianova.com/api/v1"
MAX_PATHS_PER_CALL = 100
MAX_PAGE_LIMIT = 100
# A job's `status` in the listing while it runs (the listing's values are undocumented: see `UNVERIFIED`).
PENDING_STATUSES: Final = frozenset({"pending", "processing", "in_progress", "inprogress", "queued", "running"})
UNVERIFIED = (
    "medianova: response bodies are undocumented; the job id is read from data.id / id / opID",
    "medianova: no documented rate limit; 429 is handled when it comes",
    "medianova: `*` is assumed to match any characters, `/` included (prefix /img is sent as /img*)",
    "medianova: a literal `*` inside a path cannot be escaped: it is always a wildcard (such paths are refused)",
    f"medianova: no documented length limit for a `file_path`; each is bounded at {UNDOCUMENTED_TARGET_BYTES} bytes",
)

_UUID = worded(r"\A[A-Za-z0-9][A-Za-z0-9-]*\Z", "must be letters, digits and '-' (a UUID)")


class MedianovaSettings(ProviderSettings, frozen=True, kw_only=True):
    kind: Literal["medianova"] = "medianova"
    organization_uuid: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_UUID)]
    resource_uuid: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_UUID)]


def wildcard(prefix: str) -> str:
    """`/img/` -> `/img/*`, `/img` -> `/img*`, `/` -> `/*`; a prefix already ending in `*` is kept.

    Not `/img` -> `/img/*`: the planner counts the path `/img` as covered by the prefix `/img` (and drops it
    from the plan), and `/img/*` would not purge it. `*` may stand anywhere in a Medianova path (the page's
    `/images/*.jpg`), so `/img*` is a valid wildcard."""
    return prefix if prefix.endswith("*") else prefix + "*"


def _job_id(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    candidates = [data.get("id"), data.get("opID")] if isinstance(data, dict) else []
    for value in (*candidates, body.get("id"), body.get("opID")):
        job = answer_id(value)
        if job is not None:
            return job
    return None


class MedianovaProvider(HttpProvider):
    kind = "medianova"
    label = "Medianova"
    settings_model = MedianovaSettings
    default_base_url = BASE_URL
    required_credentials = ("token",)
    declared = Capabilities(
        max_targets={TargetKind.PATH: MAX_PATHS_PER_CALL, TargetKind.PREFIX: MAX_PATHS_PER_CALL},
        max_target_bytes={TargetKind.PATH: UNDOCUMENTED_TARGET_BYTES, TargetKind.PREFIX: UNDOCUMENTED_TARGET_BYTES},
        asynchronous=True,
    )
    docs = ProviderDocs(
        settings="`organization_uuid`, `resource_uuid`; `token`",
        purges="path, prefix (`{prefix}*`); async jobs, `job_status()`",
        per_call=f"{MAX_PATHS_PER_CALL} paths",
        soft="no",
        pacing="on 429",
        example="--path /index.html --prefix /assets/",
        unverified=UNVERIFIED,
        credential_check="`GET /cdn/{organization}/job/{resource}/purge?page=1&limit=1` (List Purge Requests)",
    )

    settings: MedianovaSettings

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """prefix -> `{prefix}*`; a path holding `*` is refused: Medianova would read it as a wildcard (`/*`
        purges everything) and offers no escape for a literal one."""
        if target.kind is TargetKind.PREFIX:
            return wildcard(target.value)
        if "*" in target.value:
            raise ValueError(f"path:{target.value[:200]}: Medianova would read '*' as a wildcard")
        return target.value

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['token'].get_secret_value()}"}

    @property
    def _jobs_path(self) -> str:
        org = quote(self.settings.organization_uuid, safe="")
        resource = quote(self.settings.resource_uuid, safe="")
        return f"cdn/{org}/job/{resource}/purge"

    def credentials_check(self) -> ApiCall:
        """`GET` on the jobs path, one job of the first page ("List Purge Requests", the listing `job_status`
        reads): needs the same bearer token as a purge and creates no job."""
        return ApiCall("GET", self._jobs_path, params={"page": "1", "limit": "1"})

    def build_request(self, request: PurgeRequest) -> ApiCall:
        paths = [self.render(self.settings, Target(request.kind, value)) for value in request.targets]
        body = {"resource_uuid": self.settings.resource_uuid, "file_path": paths}
        return ApiCall("POST", self._jobs_path, body=body, headers={"Content-Type": "application/json"})

    def read_response(self, request: PurgeRequest, response: httpx.Response) -> PurgeResult:
        body = self._json_object(response)
        return PurgeResult(provider_id=_job_id(body), detail="job created")

    # -- job listing ---------------------------------------------------------------------------------

    def job_status(
        self, page: int = 1, limit: int = 10, op_id: str | None = None, *, deadline: Deadline | None = None
    ) -> dict[str, Any]:
        """List purge jobs (newest first, as Medianova pages them); `op_id` filters one job. The call ends
        before `deadline` (None: within the provider's timeout)."""
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError(f"page must be an integer >= 1, got {page!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be an integer between 1 and {MAX_PAGE_LIMIT}, got {limit!r}")
        if op_id is not None and not op_id:
            raise ValueError("op_id must not be empty")
        params = {"page": str(page), "limit": str(limit)} | ({"opID": op_id} if op_id else {})
        response = self.send(ApiCall("GET", self._jobs_path, params=params), deadline=deadline)
        return self._json_object(response)

    def job_pending(self, job_id: str, deadline: Deadline) -> bool:
        """`JobStatus`: the job's status in the listing filtered by its `opID` is one of `PENDING_STATUSES`."""
        jobs = self.job_status(page=1, limit=1, op_id=job_id, deadline=deadline).get("data")
        if isinstance(jobs, list) and jobs and isinstance(jobs[0], dict):
            return str(jobs[0].get("status", "")).lower() in PENDING_STATUSES
        return False

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        """The response body as an object; a body that says the call failed is a refusal."""
        body = self.response_json(response)
        if not isinstance(body, dict):
            return {"data": body}
        if body.get("status") is False or body.get("success") is False:
            message = body.get("message") or body.get("error") or json.dumps(body)
            raise RejectedError(self.name, str(message), status=response.status_code)
        return body


ADAPTER = MedianovaProvider
