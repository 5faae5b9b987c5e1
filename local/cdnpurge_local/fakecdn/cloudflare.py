"""Fake Cloudflare purge API, following https://developers.cloudflare.com/api/resources/cache/methods/purge/.

`POST /zones/{zone_id}/purge_cache` (the endpoint stands for `https://api.cloudflare.com/client/v4`) with
`Authorization: Bearer <token>`. Checks the zone, that
the body names exactly one purge type (`files`, `tags`, `hosts`, `prefixes`, `purge_everything: true`),
the item shapes (absolute URLs or `{url, headers}` objects; `host/path` prefixes without a scheme and
with at most 31 path separators; bare hostnames) and the per-plan item limits, answering every error in
the v4 envelope with an error code. Its 429 carries `Retry-After`.

Codes used (from public error reports; Cloudflare has no reference list for this endpoint): 1012 and
1014 for a malformed body, 7003 + 7000 for an unknown zone, 10000 (403) or 1000 (400) for a bad token,
971 when throttled. The code for "too many items" is not published: the fake uses 1015.
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import urlsplit

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

# Items per request by plan: (files, tags/hosts/prefixes), as declared by the adapter.
PLAN_LIMITS: dict[str, tuple[int, int]] = {
    "free": (30, 100),
    "paid": (100, 100),
    "pro": (100, 100),
    "business": (100, 100),
    "enterprise": (500, 100),
}
PURGE_TYPES = ("files", "tags", "hosts", "prefixes", "purge_everything")
MAX_PREFIX_SEPARATORS = 31
TOO_MANY_ITEMS_CODE = 1015  # the fake's choice; the real code is not documented
_PATH = re.compile(r"/zones/([^/]+)/purge_cache")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def envelope(status: int, *errors: tuple[int, str], result: Any = None) -> FakeResponse:
    return FakeResponse(
        status,
        {
            "success": not errors,
            "errors": [{"code": code, "message": message} for code, message in errors],
            "messages": [],
            "result": result,
        },
    )


class CloudflareBehaviour(Behaviour):
    name = "cloudflare"
    auth_headers = ("authorization",)

    def __init__(
        self,
        *,
        token: str,
        zone_id: str,
        plan: str = "paid",
        invalid_token_status: int = 403,
        rate_per_second: float | None = None,
        burst: int = 1,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.token = token
        self.zone_id = zone_id
        self.plan = plan
        self.invalid_token_status = invalid_token_status
        # When set, accepted purges answer 200 with `success: false` and this (code, message).
        self.fail_in_envelope: tuple[int, str] | None = None
        self._ids = itertools.count(1)

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> FakeResponse:
        if self.invalid_token_status == 400:
            return envelope(400, (1000, "Invalid API Token"))
        return envelope(self.invalid_token_status, (10000, "Authentication error"))

    def throttled(self, retry_after: float) -> FakeResponse:
        response = envelope(429, (971, "Please wait and consider throttling your request speed"))
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
        return response

    def error(self, status: int) -> FakeResponse:
        return envelope(status, (10001 if status >= 500 else 1001, f"injected {status}"))

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        if request.method == "GET" and request.path == "/user/tokens/verify":
            # A well-authorised token (checked before routing): its id and status, as Cloudflare answers.
            return envelope(200, result={"id": "fake-token", "status": "active"}), []
        match = _PATH.fullmatch(request.path)
        if match is None:
            return envelope(404, (7000, "No route for that URI")), []
        if match.group(1) != self.zone_id:
            return (
                envelope(
                    400,
                    (7003, f"Could not route to /client/v4{request.path}, perhaps your object identifier is invalid?"),
                    (7000, "No route for that URI"),
                ),
                [],
            )
        if request.method != "POST":
            return envelope(405, (10405, f"Method {request.method} not allowed")), []
        try:
            body = request.json()
        except ValueError:
            return envelope(400, (1012, "Request body is not valid JSON")), []
        return self._purge(body)

    def _purge(self, body: Any) -> tuple[FakeResponse, list[str]]:
        present = [name for name in PURGE_TYPES if isinstance(body, dict) and name in body]
        if len(present) != 1 or set(body) - set(PURGE_TYPES):
            message = 'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"'
            return envelope(400, (1012, message)), []
        (kind,) = present
        if kind == "purge_everything":
            if body[kind] is not True:
                return envelope(400, (1012, '"purge_everything" must be true')), []
            return self._accepted(["all"])
        items = body[kind]
        if not isinstance(items, list) or not items:
            return envelope(400, (1014, f'"{kind}" must be a non-empty array')), []
        files_limit, items_limit = PLAN_LIMITS[self.plan]
        limit = files_limit if kind == "files" else items_limit
        if len(items) > limit:
            return envelope(400, (TOO_MANY_ITEMS_CODE, f"You cannot provide more than {limit} {kind}")), []
        purged: list[str] = []
        for item in items:
            described, problem = self._item(kind, item)
            if problem is not None:
                return envelope(400, (1014, problem)), []
            purged.append(described)
        return self._accepted(purged)

    def _item(self, kind: str, item: Any) -> tuple[str, str | None]:
        if kind == "files":
            url = item.get("url") if isinstance(item, dict) else item
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
                return "", f"files: {item!r} is not an absolute URL"
            return f"url:{url}", None
        if not isinstance(item, str) or not item:
            return "", f"{kind}: items must be non-empty strings"
        if kind == "tags":
            return f"tag:{item}", None
        if kind == "hosts":
            return (f"host:{item}", None) if _HOST.match(item) else ("", f"hosts: {item!r} is not a hostname")
        host, _, path = item.partition("/")
        if "://" in item or not _HOST.match(host):
            return "", f"prefixes: {item!r} must be host/path without a scheme"
        if path.count("/") + 1 > MAX_PREFIX_SEPARATORS:
            return "", f"prefixes: {item!r} has more than {MAX_PREFIX_SEPARATORS} path separators"
        return f"prefix:{item}", None

    def _accepted(self, purged: list[str]) -> tuple[FakeResponse, list[str]]:
        if self.fail_in_envelope is not None:
            return envelope(200, self.fail_in_envelope), []
        return envelope(200, result={"id": f"{next(self._ids):032x}"}), purged
