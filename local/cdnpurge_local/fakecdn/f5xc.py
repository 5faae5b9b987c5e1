"""Fake F5 Distributed Cloud CDN cache-purge API, following the "Purge CDN Cache" operation.

Serves `POST /api/cdn/namespaces/{namespace}/cdn_loadbalancer/{name}/cache-purge` under `/f5xc`.
Checks `Authorization: APIToken <token>` exactly, the namespace and load balancer (else 404), and the
body: exactly one of `url` / `hostname` / `pattern` / `purge_all: {}` and exactly one of
`soft_purge: {}` / `hard_purge: {}`, nothing else (else 400 with a message). A `pattern` must compile
(Python's `re` stands in for PCRE 1). Answers `{"purge_request_id": <number>}` as the example does, or a
string id with `string_ids=True`. Error bodies use the XC API's `{"code", "message", "details"}` shape
(the documentation shows only "example": an assumption). Its 429 carries `Retry-After`.
`GET /api/config/namespaces/{namespace}/cdn_loadbalancers/{name}` (the config API's "Get", what `doctor` asks)
answers the load balancer's metadata, 404 for another; it purges nothing.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

TARGET_FIELDS = ("url", "hostname", "pattern", "purge_all")
MODE_FIELDS = ("soft_purge", "hard_purge")
# gRPC status codes the XC API gateway reports beside the HTTP status.
_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 503: 14, 504: 4}
_ROUTE = re.compile(r"/api/cdn/namespaces/([^/]+)/cdn_loadbalancer/([^/]+)/cache-purge")
_CONFIG = re.compile(r"/api/config/namespaces/([^/]+)/cdn_loadbalancers/([^/]+)")


def xc_error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"code": _CODES.get(status, 2), "message": message, "details": []})


class F5xcBehaviour(Behaviour):
    name = "f5xc"
    auth_headers = ("authorization",)

    def __init__(
        self,
        *,
        token: str,
        namespace: str,
        load_balancer: str,
        string_ids: bool = False,
        rate_per_second: float | None = None,
        burst: int = 1,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.token = token
        self.namespace = namespace
        self.load_balancer = load_balancer
        self.string_ids = string_ids
        self._ids = itertools.count(1)

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization") == f"APIToken {self.token}"

    def unauthorized(self) -> FakeResponse:
        return xc_error(401, "Unauthenticated: invalid or expired API token")

    def throttled(self, retry_after: float) -> FakeResponse:
        response = xc_error(429, "Too many requests, operation has been rejected")
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
        return response

    def error(self, status: int) -> FakeResponse:
        return xc_error(status, f"injected {status}")

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        read = _CONFIG.fullmatch(request.path)
        if read is not None and request.method == "GET":
            namespace, load_balancer = read.groups()
            if (namespace, load_balancer) != (self.namespace, self.load_balancer):
                return xc_error(404, f"cdn_loadbalancer {namespace}/{load_balancer} not found"), []
            metadata = {"name": load_balancer, "namespace": namespace}
            return FakeResponse(200, {"metadata": metadata, "spec": {}, "system_metadata": {}}), []
        match = _ROUTE.fullmatch(request.path)
        if match is None:
            return xc_error(404, f"no such API {request.path}"), []
        if request.method != "POST":
            return xc_error(405, "method not allowed"), []
        namespace, load_balancer = match.groups()
        if namespace != self.namespace:
            return xc_error(404, f"namespace {namespace!r} not found"), []
        if load_balancer != self.load_balancer:
            return xc_error(404, f"cdn_loadbalancer {namespace}/{load_balancer} not found"), []
        try:
            body = request.json()
        except ValueError:
            return xc_error(400, "request body is not JSON"), []
        problem = self._check(body)
        if problem is not None:
            return xc_error(400, problem), []
        (target,) = [name for name in TARGET_FIELDS if name in body]
        mode = "soft" if "soft_purge" in body else "hard"
        purged = "all" if target == "purge_all" else f"{target}:{body[target]}"
        purge_id: Any = next(self._ids)
        if self.string_ids:
            purge_id = f"purge-{purge_id:06d}"
        return FakeResponse(200, {"purge_request_id": purge_id}), [f"{purged} ({mode})"]

    @staticmethod
    def _check(body: Any) -> str | None:
        """The reason the body is malformed, or None."""
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        unknown = sorted(set(body) - set(TARGET_FIELDS) - set(MODE_FIELDS))
        if unknown:
            return f"unknown field(s) {unknown}"
        targets = [name for name in TARGET_FIELDS if name in body]
        if len(targets) != 1:
            return f"exactly one of {list(TARGET_FIELDS)} is required, got {targets}"
        modes = [name for name in MODE_FIELDS if name in body]
        if len(modes) != 1:
            return f"exactly one of {list(MODE_FIELDS)} is required, got {modes}"
        if body[modes[0]] != {}:
            return f"{modes[0]} must be an empty object"
        (target,) = targets
        value = body[target]
        if target == "purge_all":
            return None if value == {} else "purge_all must be an empty object"
        if not isinstance(value, str) or not value:
            return f"{target} must be a non-empty string"
        # Documented as "a URL path", exemplified by an absolute URL: accept either.
        if target == "url" and not re.match(r"(https?://[^/\s]+)?/|https?://[^/\s]+$", value):
            return f"url {value!r} is neither a URL nor a URL path"
        if target == "pattern":
            try:
                re.compile(value)
            except re.error as exc:
                return f"pattern {value!r} is not a valid regular expression: {exc}"
        return None
