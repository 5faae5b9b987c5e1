"""Fake Medianova purge API: create purge jobs and list them, under `/medianova`.

`POST /cdn/{organization_uuid}/job/{resource_uuid}/purge` with
`{"resource_uuid": <same as the path>, "file_path": [1..100 absolute paths, `*` wildcards allowed]}`;
`GET` on the same path lists the jobs created, with `page` (>= 1), `limit` (1..100) and optional `opID`.
Checks `Authorization: Bearer <token>` exactly, the organisation and resource (else 404). A malformed
body or a `resource_uuid` unlike the path's is 400; a bad `file_path` (empty, over 100, relative) is 422;
bad listing parameters are 400.

Medianova's API reference documents "200" without bodies, so the shapes here are assumptions the adapter
must read defensively: a created job answers `{"status": true, "data": {"id": opID, ...}}` (`response_shape="data"`),
`{"id": opID}` (`"flat"`) or `{"opID": opID}` (`"opid"`); errors are `{"status": false, "message": ...}`.
A job is `pending` until `completion_delay` seconds (on the injected `clock`) have passed, then `completed`;
the fake edge applies the purge at that moment too (`settles_after`).
`covered(path)` tells whether a created job purged a path: `*` matches any characters, `/` included (the
documentation allows `*` anywhere, `/images/*.jpg`, without saying what it spans: this is the adapter's assumption too).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any, Literal

from cdnpurge_local.fakecdn.clock import Clock
from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

MAX_PATHS = 100
MAX_LIMIT = 100
_ROUTE = re.compile(r"/cdn/([^/]+)/job/([^/]+)/purge")


def matches(file_path: str, path: str) -> bool:
    """Whether a purged `file_path` (with `*` wildcards) covers `path`."""
    pattern = ".*".join(re.escape(part) for part in file_path.split("*"))
    return re.fullmatch(pattern, path, flags=re.DOTALL) is not None


def failure(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"status": False, "message": message})


class MedianovaBehaviour(Behaviour):
    name = "medianova"
    auth_headers = ("authorization",)

    def __init__(
        self,
        *,
        token: str,
        organization_uuid: str,
        resource_uuid: str,
        response_shape: Literal["data", "flat", "opid"] = "data",
        rate_per_second: float | None = None,
        burst: int = 1,
        completion_delay: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.token = token
        self.organization_uuid = organization_uuid
        self.resource_uuid = resource_uuid
        self.response_shape = response_shape
        self.completion_delay = completion_delay
        self.clock = clock
        self.jobs: list[dict[str, Any]] = []
        self._done_at: dict[str, float] = {}  # opID -> when the job completes
        self._ids = itertools.count(1)
        self._jobs_lock = threading.Lock()

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> FakeResponse:
        return failure(401, "Unauthenticated.")

    def throttled(self, retry_after: float) -> FakeResponse:
        response = failure(429, "Too Many Attempts.")
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
        return response

    def error(self, status: int) -> FakeResponse:
        return failure(status, f"injected {status}")

    def settles_after(self, response: FakeResponse) -> float:
        return self.completion_delay

    def covered(self, path: str) -> bool:
        """Whether any job created so far purged `path`."""
        with self._jobs_lock:
            return any(matches(file_path, path) for job in self.jobs for file_path in job["file_path"])

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        match = _ROUTE.fullmatch(request.path)
        if match is None:
            return failure(404, "Not found."), []
        organization, resource = match.groups()
        if organization != self.organization_uuid:
            return failure(404, f"Organization {organization} not found."), []
        if resource != self.resource_uuid:
            return failure(404, f"Resource {resource} not found."), []
        if request.method == "POST":
            return self._create(request, resource)
        if request.method == "GET":
            return self._list(request), []
        return failure(405, "Method not allowed."), []

    def _create(self, request: FakeRequest, resource: str) -> tuple[FakeResponse, list[str]]:
        try:
            body = request.json()
        except ValueError:
            return failure(400, "Request body is not JSON."), []
        if not isinstance(body, dict) or "resource_uuid" not in body or "file_path" not in body:
            return failure(400, "resource_uuid and file_path are required."), []
        if body["resource_uuid"] != resource:
            return failure(400, "resource_uuid must match the resource_uuid in the path."), []
        paths = body["file_path"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return failure(422, "file_path must be an array of strings."), []
        if not 1 <= len(paths) <= MAX_PATHS:
            return failure(422, f"file_path must contain 1 to {MAX_PATHS} items, got {len(paths)}."), []
        relative = [p for p in paths if not p.startswith("/")]
        if relative:
            return failure(422, f"file_path entries must be absolute paths: {relative[:3]}"), []
        op_id = f"00000000-0000-4000-8000-{next(self._ids):012d}"
        job = {"id": op_id, "opID": op_id, "file_path": paths, "status": "pending"}
        with self._jobs_lock:
            self.jobs.append(job)
            self._done_at[op_id] = self.clock() + self.completion_delay
        if self.response_shape == "flat":
            answer: dict[str, Any] = {"id": op_id}
        elif self.response_shape == "opid":
            answer = {"opID": op_id}
        else:
            answer = {"status": True, "data": job}
        return FakeResponse(200, answer), [f"path:{p}" for p in paths]

    def _list(self, request: FakeRequest) -> FakeResponse:
        try:
            page = int(request.query["page"][0])
            limit = int(request.query["limit"][0])
        except (KeyError, ValueError):
            return failure(400, "page and limit are required integers.")
        if page < 1:
            return failure(400, "page must be at least 1.")
        if not 1 <= limit <= MAX_LIMIT:
            return failure(400, f"limit must be between 1 and {MAX_LIMIT}.")
        op_id = request.query.get("opID", [None])[0]
        now = self.clock()
        with self._jobs_lock:
            jobs = [
                {**job, "status": "completed" if self._done_at[job["opID"]] <= now else "pending"}
                for job in reversed(self.jobs)
                if op_id is None or job["opID"] == op_id
            ]
        start = (page - 1) * limit
        return FakeResponse(
            200,
            {
                "status": True,
                "data": jobs[start : start + limit],
                "meta": {"page": page, "limit": limit, "total": len(jobs)},
            },
        )
