"""Fake Akamai Fast Purge API v3, following https://techdocs.akamai.com/purge-cache/reference/api.

- Verifies the EdgeGrid signature for real: the expected `Authorization` is recomputed (written out here,
  independently of the adapter's signer) from the same credentials, the request as received (scheme,
  `Host`, full path with query, body) and the header's own timestamp and nonce; a mismatch, an unknown
  client or access token, or a reused nonce is a 401 problem+json (in the API gateway's shape). The
  timestamp's age is not checked.
- `POST /ccu/v3/{invalidate|delete}/{url|cpcode|tag}[/{production|staging}]` (network defaults to
  production), body `{"objects": [...]}`: over 50,000 bytes is a 413; bad JSON, bad objects (non-ASCII
  or relative URLs, tags over 128 characters or with disallowed characters, non-numeric CP codes) are a 400,
  all problem+json. Success is 201 `{"httpStatus", "detail", "estimatedSeconds", "purgeId", "supportId"}`.
- `POST /ccu/v3/rate-limit-status/{url|cpcode|tag}` ("Check rate and object limit statuses", what `doctor`
  asks), signed like a purge: 200 with the buckets' remaining tokens (members named as in the 429 bodies; the
  answer's shape is not documented); it purges nothing and takes no object token.
- Rate limits answer 429 with `X-Ratelimit-*` headers and `rateLimit*` body members, no `Retry-After`, as
  documented (https://techdocs.akamai.com/purge-cache/reference/rate-limit-response-examples); an
  optional object bucket (`objects_per_second`, `objects_burst`) mimics the per-object limits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import string
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

MAX_BODY_BYTES = 50_000
MAX_SIGNED_BODY = 131_072  # EdgeGrid max_body for Fast Purge clients
MAX_TAG_LENGTH = 128
OPERATIONS = ("invalidate", "delete")
OBJECT_TYPES = ("url", "cpcode", "tag")
NETWORKS = ("production", "staging")
DESCRIBED_BY = "https://developer.akamai.com/api/core_features/fast_purge/v3.html#httpcodes"
# https://techdocs.akamai.com/purge-cache/docs/purge-content-cache-tag: alphanumerics and these only.
_TAG_ALLOWED = set(string.ascii_letters + string.digits + "!#$%&'+-.^_`|~")
PROBLEM = "application/problem+json"


class AkamaiBehaviour(Behaviour):
    name = "akamai"
    auth_headers = ("authorization",)

    def __init__(
        self,
        *,
        client_token: str,
        client_secret: str,
        access_token: str,
        rate_per_second: float | None = None,
        burst: int = 1,
        objects_per_second: float | None = None,
        objects_burst: int = 10_000,
        estimated_seconds: int = 5,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.estimated_seconds = estimated_seconds
        self.client_token = client_token
        self.client_secret = client_secret
        self.access_token = access_token
        self.objects_per_second = objects_per_second
        self.objects_burst = objects_burst
        self._objects = float(objects_burst)
        self._objects_updated = time.monotonic()
        self._state_lock = threading.Lock()
        self._nonces: set[str] = set()
        self._local = threading.local()  # the auth problem of the request this thread is answering
        self._ids = itertools.count(1)

    # -- EdgeGrid -----------------------------------------------------------------------------------

    def authorized(self, request: FakeRequest) -> bool:
        problem = self._check_signature(request)
        self._local.problem = problem
        return problem is None

    def _check_signature(self, request: FakeRequest) -> str | None:
        header = request.headers.get("authorization", "")
        fields = dict(item.split("=", 1) for item in header.partition(" ")[2].split(";") if "=" in item)
        if not header.startswith("EG1-HMAC-SHA256 ") or not {"timestamp", "nonce", "signature"} <= set(fields):
            return "Missing or malformed EdgeGrid authorization header"
        if fields.get("client_token") != self.client_token or fields.get("access_token") != self.access_token:
            return "Invalid client token or access token"
        expected = self._expected_authorization(request, fields["timestamp"], fields["nonce"])
        if not _equal(expected, header):
            return "The signature does not match"
        with self._state_lock:
            if fields["nonce"] in self._nonces:
                return "The nonce has already been used"
            self._nonces.add(fields["nonce"])
        return None

    def _expected_authorization(self, request: FakeRequest, timestamp: str, nonce: str) -> str:
        """EdgeGrid as the API gateway computes it, written out here independently of the client's signer."""
        unsigned = (
            f"EG1-HMAC-SHA256 client_token={self.client_token};access_token={self.access_token};"
            f"timestamp={timestamp};nonce={nonce};"
        )
        path = f"/{self.name}{request.path}" + (f"?{request.raw_query}" if request.raw_query else "")
        body_hash = ""
        if request.method == "POST" and request.body:
            body_hash = base64.b64encode(hashlib.sha256(request.body[:MAX_SIGNED_BODY]).digest()).decode()
        # No headers_to_sign for Fast Purge: the canonical-headers field is empty.
        data = "\t".join([request.method, "http", request.headers.get("host", ""), path, "", body_hash, unsigned])
        key = _hmac_b64(self.client_secret, timestamp)
        return f"{unsigned}signature={_hmac_b64(key, data)}"

    def unauthorized(self) -> FakeResponse:
        return FakeResponse(
            401,
            {
                "type": "https://problems.luna.akamaiapis.net/-/pep-authn/deny",
                "title": "Not authorized",
                "status": 401,
                "detail": getattr(self._local, "problem", None) or "Not authorized",
                "requestId": f"fake-{next(self._ids):06d}",
            },
            content_type=PROBLEM,
        )

    # -- problems -----------------------------------------------------------------------------------

    def problem(self, status: int, title: str, detail: str, **extra: Any) -> FakeResponse:
        body = {"supportId": self._id(), "httpStatus": status, "title": title, "detail": detail}
        return FakeResponse(status, body | {"describedBy": DESCRIBED_BY} | extra, content_type=PROBLEM)

    def error(self, status: int) -> FakeResponse:
        return self.problem(status, "Injected error", f"injected {status}")

    def throttled(self, retry_after: float) -> FakeResponse:
        rate = self.rate_per_second or 50.0
        burst = self.burst if self.rate_per_second else 100
        response = self.problem(
            429, "Rate Limit exceeded", "", rateLimit=burst, rateLimitCurrentRequestSize=1, rateLimitRemaining=0
        )
        response.headers.update(
            {
                "X-Ratelimit-Remaining": "0",
                "X-Ratelimit-Limit-Per-Second": f"{rate:.2f}",
                "X-Ratelimit-Limit": str(burst),
            }
        )
        return response

    def _id(self) -> str:
        return f"edcp-fake{next(self._ids):08d}"

    # -- purge --------------------------------------------------------------------------------------

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        parts = request.path.strip("/").split("/")
        if parts[:3] == ["ccu", "v3", "rate-limit-status"]:
            return self._rate_limit_status(request, parts[3:]), []
        if len(parts) not in (4, 5) or parts[:2] != ["ccu", "v3"]:
            return self.problem(404, "Not found", f"no such resource {request.path}"), []
        operation, object_type = parts[2], parts[3]
        network = parts[4] if len(parts) == 5 else "production"
        if operation not in OPERATIONS or object_type not in OBJECT_TYPES or network not in NETWORKS:
            return self.problem(404, "Not found", f"no such resource {request.path}"), []
        if request.method != "POST":
            return self.problem(405, "Method not allowed", f"{request.method} is not allowed"), []
        if len(request.body) > MAX_BODY_BYTES:
            detail = f"The request body of {len(request.body)} bytes exceeds the maximum of {MAX_BODY_BYTES} bytes"
            return self.problem(413, "Request entity too large", detail), []
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.problem(400, "Bad request", "The request body is not valid JSON"), []
        if not isinstance(body, dict) or set(body) != {"objects"}:
            return self.problem(400, "Bad request", 'The body must be {"objects": [...]}'), []
        objects = body["objects"]
        if not isinstance(objects, list) or not objects:
            return self.problem(400, "Bad request", "objects must be a non-empty array"), []
        for item in objects:
            problem = _check_object(object_type, item)
            if problem is not None:
                return self.problem(400, f"bad {object_type}", problem), []
        refused = self._take_objects(object_type, len(objects))
        if refused is not None:
            return refused, []
        accepted = {
            "httpStatus": 201,
            "detail": "Request accepted",
            "estimatedSeconds": self.estimated_seconds,
            "purgeId": self._id(),
            "supportId": self._id(),
        }
        return FakeResponse(201, accepted), [f"{object_type}:{item} ({operation}, {network})" for item in objects]

    def _rate_limit_status(self, request: FakeRequest, rest: list[str]) -> FakeResponse:
        if len(rest) != 1 or rest[0] not in OBJECT_TYPES:
            return self.problem(404, "Not found", f"no such resource {request.path}")
        if request.method != "POST":
            return self.problem(405, "Method not allowed", f"{request.method} is not allowed")
        with self._state_lock:
            objects = None if self.objects_per_second is None else int(self._objects)
        with self._lock:
            requests = int(self._tokens) if self.rate_per_second else None
        limits = {"rateLimitRemaining": requests, "objectRateLimitRemaining": objects}
        return FakeResponse(200, {"purgeType": rest[0], **{k: v for k, v in limits.items() if v is not None}})

    def settles_after(self, response: FakeResponse) -> float:
        """A purge takes effect when its answer said it would: `estimatedSeconds` after acceptance."""
        body = response.body if isinstance(response.body, dict) else {}
        return float(body.get("estimatedSeconds", 0))

    def _take_objects(self, object_type: str, count: int) -> FakeResponse | None:
        """The object bucket: all or nothing; a refused request consumes no tokens (as documented)."""
        if self.objects_per_second is None:
            return None
        with self._state_lock:
            now = time.monotonic()
            elapsed = now - self._objects_updated
            self._objects = min(float(self.objects_burst), self._objects + elapsed * self.objects_per_second)
            self._objects_updated = now
            if count <= self._objects:
                self._objects -= count
                return None
            remaining = int(self._objects)
        response = self.problem(
            429,
            f"{object_type.upper()} Rate Limit exceeded",
            "",
            rateLimit=self.objects_burst,
            rateLimitCurrentRequestSize=count,
            rateLimitRemaining=remaining,
        )
        response.headers.update(
            {
                "X-Ratelimit-Remaining": "99",
                "X-Ratelimit-Limit-Per-Second": "50.00",
                "X-Ratelimit-Limit": "100",
                "X-Ratelimit-Remaining-Objects": str(remaining),
                "X-Ratelimit-Limit-Per-Second-Objects": f"{self.objects_per_second:.2f}",
                "X-Ratelimit-Limit-Objects": str(self.objects_burst),
            }
        )
        return response


def _check_object(object_type: str, item: Any) -> str | None:
    if object_type == "cpcode":
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            return f"Invalid CP code {item!r}: CP codes are positive numbers"
        return None
    if not isinstance(item, str) or not item:
        return f"Invalid {object_type} {item!r}"
    if not item.isascii():
        return f"Invalid or malformed {object_type} {item!r}: contains non-ASCII characters"
    if object_type == "url":
        parts = urlsplit(item)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            return f"Invalid or malformed URL {item!r}: not an absolute URL"
        return None
    if len(item) > MAX_TAG_LENGTH:
        return f"Invalid cache tag: longer than {MAX_TAG_LENGTH} characters"
    if not set(item) <= _TAG_ALLOWED:
        return f"Invalid cache tag {item!r}: contains a disallowed character"
    return None


def _hmac_b64(key: str, message: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def _equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
