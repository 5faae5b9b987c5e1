"""A rate-limited fake of CloudFront's CreateInvalidation (REST-XML), for the benchmark.

The contract tests run the CloudFront adapter against moto server, which has no rate limits; the
benchmark needs a CloudFront that throttles like the other fakes, served by the same loopback server
(`FakeCDN`) so both purgers meet the same limits. It implements what both purgers call:

- `POST /2020-05-31/distribution/{id}/invalidation` with an `InvalidationBatch` (1..3000 paths, a
  `CallerReference`): 201 with the `Invalidation` document and a `Location` header; the same
  reference with the same paths returns the existing invalidation (CloudFront's idempotency);
- over the request rate: HTTP 400 `Throttling` ("Rate exceeded"), the error CloudFront returns;
- more than 3000 paths (or 15 wildcards) in progress: `TooManyInvalidationsInProgress`. Invalidations
  complete after `complete_after` seconds (0 by default: like moto, and so that the benchmark measures
  the request rate rather than CloudFront's propagation time);
- cache tags: an item `#<tag>` invalidates a tag, by the documented rules (`cdnpurge_local.cloudfront_tags`:
  an invalid one is `InvalidArgument`; `#A` and `#a` are one tag). Every item of a new invalidation is
  recorded as purged (`path:/a`, `tag:a`), so the records count the billed paths. The in-progress limit for
  tag items is not published and not modelled.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from datetime import UTC, datetime
from xml.sax.saxutils import escape, unescape

from cdnpurge_local.cloudfront_tags import tag_item_problem, tag_of
from cdnpurge_local.fakecdn.server import Behaviour, FakeRequest, FakeResponse

NAMESPACE = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
MAX_PATHS = 3000
MAX_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
_ROUTE = re.compile(r"/2020-05-31/distribution/([A-Z0-9]+)/invalidation")
_PATH = re.compile(r"<Path>(.*?)</Path>", re.DOTALL)
_REFERENCE = re.compile(r"<CallerReference>(.*?)</CallerReference>", re.DOTALL)


def error(status: int, code: str, message: str) -> FakeResponse:
    body = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"
    )
    return FakeResponse(status, body.encode(), content_type="text/xml")


class CloudFrontBehaviour(Behaviour):
    name = "cloudfront"
    auth_headers = ("authorization",)

    def __init__(
        self,
        *,
        distribution_id: str,
        rate_per_second: float | None = None,
        burst: int = 1,
        complete_after: float = 0.0,
    ) -> None:
        super().__init__(rate_per_second=rate_per_second, burst=burst)
        self.distribution_id = distribution_id
        self.complete_after = complete_after
        self._ids = itertools.count(1)
        self._by_reference: dict[str, tuple[tuple[str, ...], str]] = {}
        self._in_progress: list[tuple[float, int, int]] = []  # (done at, paths, wildcards)
        self._state = threading.Lock()

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 ")

    def unauthorized(self) -> FakeResponse:
        return error(403, "InvalidSignature", "The request signature is missing")

    def throttled(self, retry_after: float) -> FakeResponse:
        return error(400, "Throttling", "Rate exceeded")

    def error(self, status: int) -> FakeResponse:
        return error(status, "ServiceUnavailable", f"injected {status}")

    def route(self, request: FakeRequest) -> tuple[FakeResponse, list[str]]:
        match = _ROUTE.fullmatch(request.path)
        if match is None or request.method != "POST":
            return error(404, "NoSuchResource", "Not found"), []
        if match.group(1) != self.distribution_id:
            return error(404, "NoSuchDistribution", "The specified distribution does not exist."), []
        text = request.body.decode("utf-8")
        paths = tuple(unescape(path) for path in _PATH.findall(text))
        reference_match = _REFERENCE.search(text)
        if not paths or len(paths) > MAX_PATHS or reference_match is None:
            return error(400, "InvalidArgument", f"{len(paths)} paths: allowed 1..{MAX_PATHS}"), []
        reference = unescape(reference_match.group(1))
        problems = [problem for problem in map(tag_item_problem, paths) if problem is not None]
        if problems:
            return error(400, "InvalidArgument", f"Invalid tag invalidation item: {problems[0]}"), []
        wildcards = sum(1 for path in paths if path.endswith("*"))
        with self._state:
            now = time.monotonic()
            self._in_progress = [entry for entry in self._in_progress if entry[0] > now]
            existing = self._by_reference.get(reference)
            if existing is not None:
                if existing[0] != paths:
                    return error(409, "InvalidationBatchAlreadyExists", "Different batch, same reference"), []
                return self._created(existing[1], paths, reference), []
            busy_paths = sum(entry[1] for entry in self._in_progress)
            busy_wildcards = sum(entry[2] for entry in self._in_progress)
            if busy_paths + len(paths) > MAX_IN_PROGRESS or busy_wildcards + wildcards > MAX_WILDCARDS_IN_PROGRESS:
                return error(400, "TooManyInvalidationsInProgress", "Too many invalidations in progress"), []
            invalidation_id = f"I{next(self._ids):013d}"
            self._by_reference[reference] = (paths, invalidation_id)
            if self.complete_after > 0:
                self._in_progress.append((now + self.complete_after, len(paths) - wildcards, wildcards))
        return self._created(invalidation_id, paths, reference), [_purged(path) for path in paths]

    def _created(self, invalidation_id: str, paths: tuple[str, ...], reference: str) -> FakeResponse:
        items = "".join(f"<Path>{escape(path)}</Path>" for path in paths)
        created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = (
            f'<?xml version="1.0"?><Invalidation xmlns="{NAMESPACE}"><Id>{invalidation_id}</Id>'
            f"<Status>InProgress</Status><CreateTime>{created}</CreateTime><InvalidationBatch><Paths>"
            f"<Quantity>{len(paths)}</Quantity><Items>{items}</Items></Paths>"
            f"<CallerReference>{escape(reference)}</CallerReference></InvalidationBatch></Invalidation>"
        )
        location = f"https://cloudfront.amazonaws.com/2020-05-31/distribution/{self.distribution_id}/invalidation/{invalidation_id}"
        return FakeResponse(201, body.encode(), {"Location": location}, content_type="text/xml")


def _purged(item: str) -> str:
    """What one item invalidates, as the benchmark records it: `tag:<tag>` (one case) or `path:<path>`."""
    tag = tag_of(item)
    return f"tag:{tag}" if tag is not None else f"path:{item}"
