"""Fake Fastly purge API, following https://www.fastly.com/documentation/reference/api/purging/.

Checks `Fastly-Key`, the service id, the 256-key bulk limit, JSON or `Surrogate-Key` header bodies, and
refuses a soft purge_all (Fastly cannot do one). Answers bulk purges in either documented shape.
Its 429 carries `Fastly-RateLimit-Remaining` and `Fastly-RateLimit-Reset` (epoch seconds).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from typing import Literal
from urllib.parse import unquote

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

MAX_KEYS = 256


class FastlyBehaviour(Behaviour):
    name = "fastly"
    auth_headers = ("fastly-key",)

    def __init__(
        self,
        *,
        token: str,
        service_id: str,
        bulk_shape: Literal["flat", "purge_statuses"] = "flat",
        rate_per_second: float | None = None,
        burst: int = 1,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.token = token
        self.service_id = service_id
        self.bulk_shape = bulk_shape
        self._ids = itertools.count(1)

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("fastly-key") == self.token

    def throttled(self, retry_after: float) -> FakeResponse:
        reset = math.ceil(time.time() + retry_after)
        return FakeResponse(
            429,
            {"msg": "Rate limit exceeded"},
            {"Fastly-RateLimit-Remaining": "0", "Fastly-RateLimit-Reset": str(reset)},
        )

    def _id(self) -> str:
        return f"fake-{next(self._ids):08d}"

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        if request.method == "GET" and request.path == "/tokens/self":
            # The token's metadata (a well-authorised request only reaches here): what `doctor` asks.
            return FakeResponse(200, {"id": "fake-token", "name": "cdnpurge", "scope": "purge_select"}), []
        if request.method != "POST":
            return FakeResponse(405, {"msg": "Method not allowed"}), []
        soft = "fastly-soft-purge" in request.headers
        mode = "soft" if soft else "hard"
        if request.path.startswith("/purge/"):
            cached = request.path.removeprefix("/purge/") + (f"?{request.raw_query}" if request.raw_query else "")
            if "/" not in cached or cached.startswith("/"):
                return FakeResponse(400, {"msg": f"Invalid URL to purge: {cached!r}"}), []
            return FakeResponse(200, {"status": "ok", "id": self._id()}), [f"url:{cached} ({mode})"]
        match = re.fullmatch(r"/service/([^/]+)/(purge_all|purge)(?:/(.+))?", request.path)
        if match is None:
            return FakeResponse(404, {"msg": "Record not found"}), []
        service_id, operation, single_key = match.groups()
        if service_id != self.service_id:
            return FakeResponse(404, {"msg": "Record not found", "detail": "Cannot find service"}), []
        if operation == "purge_all":
            if soft:
                return FakeResponse(400, {"msg": "purge_all cannot be soft"}), []
            return FakeResponse(200, {"status": "ok"}), ["all (hard)"]
        if single_key is not None:
            key = unquote(single_key)
            return FakeResponse(200, {"status": "ok", "id": self._id()}), [f"key:{key} ({mode})"]
        return self._bulk(request, mode)

    def _bulk(self, request: FakeRequest, mode: str) -> tuple[FakeResponse, list[str]]:
        if request.body:
            try:
                body = request.json()
            except ValueError:
                return FakeResponse(400, {"msg": "Body is not JSON"}), []
            keys = body.get("surrogate_keys") if isinstance(body, dict) else None
        else:
            keys = request.headers.get("surrogate-key", "").split() or None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
            return FakeResponse(400, {"msg": "surrogate_keys must be a non-empty list of strings"}), []
        if len(keys) > MAX_KEYS:
            return FakeResponse(400, {"msg": f"Too many surrogate keys: {len(keys)} > {MAX_KEYS}"}), []
        statuses = {key: self._id() for key in keys}
        body_out = statuses if self.bulk_shape == "flat" else {"purge_statuses": statuses}
        return FakeResponse(200, body_out), [f"key:{key} ({mode})" for key in keys]
