"""Fake Bunny CDN purge API under `/bunny`, following https://docs.bunny.net (Purge URL, Pull Zone Purge Cache).

- Every call needs the account's `AccessKey` header: anything else is 401.
- `POST /purge?url=<URL>[&async=<bool>][&exactPath=<bool>]`: `url` is required and must be an absolute
  http(s) URL (else 400). A URL holding `*`, or whose path ends with `/` without `exactPath=true`, is purged as
  a prefix (recorded `prefix:`), else exactly (`url:`), as the rate-limit page classifies them. Answers 200.
- `POST /pullzone/{id}/purgeCache`: an unknown pull zone is 404; no body purges the whole zone (`all`), a JSON
  object `{"CacheTag": "<tag>"}` purges that tag (`tag:`); any other body is 400. Answers 204.
- `GET /pullzone/{id}` ("Get Pull Zone", what `doctor` asks): the pull zone (a few of its documented fields),
  404 for another id; purges nothing.
- Bunny's rate limit is per purge type; this fake has the server's one bucket for all calls, with a 429
  carrying `Retry-After`.
Error bodies use Bunny's API error model `{"ErrorKey", "Field", "Message"}` (its shape is unverified).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

_ZONE_PURGE = re.compile(r"/pullzone/([^/]+)/purgeCache")
_ZONE = re.compile(r"/pullzone/([^/]+)")
_BOOLEANS = {"true": True, "false": False}


def bunny_error(status: int, key: str, message: str, field: str = "") -> FakeResponse:
    return FakeResponse(status, {"ErrorKey": key, "Field": field, "Message": message})


class BunnyBehaviour(Behaviour):
    name = "bunny"
    auth_headers = ("accesskey",)

    def __init__(
        self, *, access_key: str, pull_zone_id: int, rate_per_second: float | None = None, burst: int = 1
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.access_key = access_key
        self.pull_zone_id = pull_zone_id

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("accesskey") == self.access_key

    def unauthorized(self) -> FakeResponse:
        return bunny_error(401, "unauthorized", "The request authorization failed")

    def throttled(self, retry_after: float) -> FakeResponse:
        response = bunny_error(429, "rate_limited", "Too many purge requests; retry later")
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
        return response

    def error(self, status: int) -> FakeResponse:
        return bunny_error(status, "injected", f"injected {status}")

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        read = _ZONE.fullmatch(request.path)
        if read is not None and request.method == "GET":
            return self._get_zone(read.group(1)), []
        zone = _ZONE_PURGE.fullmatch(request.path)
        if request.path != "/purge" and zone is None:
            return bunny_error(404, "not_found", "Not found"), []
        if request.method != "POST":
            return bunny_error(405, "method_not_allowed", "Method not allowed"), []
        if zone is None:
            return self._purge_url(request)
        if zone.group(1) != str(self.pull_zone_id):
            return bunny_error(404, "pullzone.not_found", "The Pull Zone with the requested ID does not exist"), []
        return self._purge_zone(request)

    def _get_zone(self, zone_id: str) -> FakeResponse:
        if zone_id != str(self.pull_zone_id):
            return bunny_error(404, "pullzone.not_found", "The Pull Zone with the requested ID does not exist")
        return FakeResponse(200, {"Id": self.pull_zone_id, "Name": "fake-zone", "Enabled": True, "Hostnames": []})

    def _purge_url(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        urls = request.query.get("url", [])
        flags = {name: request.query.get(name, ["false"])[-1].lower() for name in ("async", "exactPath")}
        bad_flag = next((name for name, value in flags.items() if value not in _BOOLEANS), None)
        if bad_flag is not None:
            return bunny_error(400, "validation", f"{bad_flag} must be true or false", bad_flag), []
        if len(urls) != 1:
            return bunny_error(400, "validation", "url is required", "url"), []
        url = urls[0]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return bunny_error(400, "validation", f"url must be an absolute URL: {url[:200]!r}", "url"), []
        prefix = "*" in url or (parts.path.endswith("/") and not _BOOLEANS[flags["exactPath"]])
        return FakeResponse(200), [f"{'prefix' if prefix else 'url'}:{url}"]

    def _purge_zone(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        if not request.body:
            return FakeResponse(204), ["all"]
        try:
            body: Any = request.json()
        except ValueError:
            return bunny_error(400, "validation", "The request body is not valid JSON"), []
        tag = body.get("CacheTag") if isinstance(body, dict) else None
        if not isinstance(body, dict) or set(body) - {"CacheTag"} or not isinstance(tag, str | None):
            return bunny_error(400, "validation", "The body takes one optional string CacheTag", "CacheTag"), []
        return FakeResponse(204), [f"tag:{tag}"] if tag else ["all"]
