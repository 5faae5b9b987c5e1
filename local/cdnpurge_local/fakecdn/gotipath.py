"""Fake Gotipath purge API: `POST /distributions/{distribution_id}/purges` under `/gotipath`.

Checks `X-Auth-ClientId`, `X-Auth-LibraryId` and `X-Auth-ApiKey` exactly, and `Authorization: Bearer`
when the fake is given a bearer token; an unknown distribution is 404. Body `{"type", "paths"}`:
documented is `type: "all"` with empty `paths`, and `paths` of host-relative URLs starting with `/`
(query strings allowed). The `type` of a purge by URL is not documented: the fake accepts `"url"` (the
adapter's assumption) and refuses any other type with 422, as it does inconsistent type/paths and relative
paths. Gotipath documents no number of paths per call, so the fake enforces none unless given `max_paths`
(then more is a 422), to try a limit an account turns out to have. A body that is not a JSON object is 400.
Success is 200 `{}`. `GET /distributions/{distribution_id}` ("Get Distribution", what `doctor` asks; its path
is inferred, as the adapter's) answers the distribution, 404 for another; it purges nothing. The error body
shape is not documented: `{"message": ..., "errors": {field: [...]}}` is an assumption. Its 429 carries
`Retry-After`.
"""

from __future__ import annotations

import re
from typing import Any

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

PURGE_TYPES = ("all", "url")
_ROUTE = re.compile(r"/distributions/([^/]+)/purges")
_DISTRIBUTION = re.compile(r"/distributions/([^/]+)")


def parameter_error(field: str, problem: str) -> FakeResponse:
    return FakeResponse(422, {"message": "Parameter Error", "errors": {field: [problem]}})


class GotipathBehaviour(Behaviour):
    name = "gotipath"
    auth_headers = ("x-auth-clientid", "x-auth-libraryid", "x-auth-apikey", "authorization")

    def __init__(
        self,
        *,
        client_id: str,
        library_id: str,
        api_key: str,
        distribution_id: str,
        bearer_token: str | None = None,
        max_paths: int | None = None,
        rate_per_second: float | None = None,
        burst: int = 1,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.credentials = {
            "x-auth-clientid": client_id,
            "x-auth-libraryid": library_id,
            "x-auth-apikey": api_key,
        }
        if bearer_token is not None:
            self.credentials["authorization"] = f"Bearer {bearer_token}"
        self.distribution_id = distribution_id
        self.max_paths = max_paths

    def authorized(self, request: FakeRequest) -> bool:
        return all(request.headers.get(name) == value for name, value in self.credentials.items())

    def unauthorized(self) -> FakeResponse:
        return FakeResponse(401, {"message": "Unauthorized"})

    def throttled(self, retry_after: float) -> FakeResponse:
        return FakeResponse(429, {"message": "Too Many Requests"}, {"Retry-After": str(max(1, round(retry_after)))})

    def error(self, status: int) -> FakeResponse:
        return FakeResponse(status, {"message": f"injected {status}"})

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        read = _DISTRIBUTION.fullmatch(request.path)
        if read is not None and request.method == "GET":
            if read.group(1) != self.distribution_id:
                return FakeResponse(404, {"message": "Distribution not found"}), []
            return FakeResponse(200, {"id": self.distribution_id, "status": "deployed"}), []
        match = _ROUTE.fullmatch(request.path)
        if match is None or match.group(1) != self.distribution_id:
            return FakeResponse(404, {"message": "Distribution not found"}), []
        if request.method != "POST":
            return FakeResponse(405, {"message": "Method Not Allowed"}), []
        try:
            body: Any = request.json()
        except ValueError:
            return FakeResponse(400, {"message": "Bad Request: body is not JSON"}), []
        if not isinstance(body, dict):
            return FakeResponse(400, {"message": "Bad Request: body must be a JSON object"}), []
        kind, paths = body.get("type"), body.get("paths")
        if kind not in PURGE_TYPES:
            return parameter_error("type", f"type must be one of {list(PURGE_TYPES)}"), []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return parameter_error("paths", "paths must be an array of strings"), []
        if kind == "all":
            if paths:
                return parameter_error("paths", "paths must be empty when type is all"), []
            return FakeResponse(200, {}), ["all"]
        if not paths:
            return parameter_error("paths", "paths is required"), []
        if self.max_paths is not None and len(paths) > self.max_paths:
            return parameter_error("paths", f"at most {self.max_paths} paths, got {len(paths)}"), []
        bad = [p for p in paths if not p.startswith("/") or p.startswith("//")]
        if bad:
            return parameter_error("paths", f"paths must start with / and name no host: {bad[:3]}"), []
        return FakeResponse(200, {}), [f"url:{p}" for p in paths]
