"""API Gateway HTTP API requests (payload format 2.0) in, responses out.

The body is measured before it is decoded or hashed: a base64 body is refused on its encoded length, which
bounds the decoded one, so an oversized request costs no more than reading its length.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final, TypedDict

import msgspec

from cdnpurge.core.webhooks.signatures import SignedRequest


class HttpResponse(TypedDict):
    statusCode: int
    headers: dict[str, str]
    body: str


class BodyTooLargeError(Exception):
    """The body exceeds the cap (answered 413)."""


class BadRequestError(Exception):
    """The request is not a webhook delivery we can read (answered 400)."""


class Incoming(msgspec.Struct, frozen=True):
    """The parts of an HTTP API event the intake reads."""

    method: str
    source: str
    path: str
    headers: Mapping[str, str]
    raw_body: str
    base64_encoded: bool

    def signed_request(self, max_body_bytes: int) -> SignedRequest:
        """The request as signatures see it, refusing a body over `max_body_bytes`."""
        encoded_cap = (max_body_bytes + 2) // 3 * 4 if self.base64_encoded else max_body_bytes
        if len(self.raw_body) > encoded_cap:  # a str's length bounds its UTF-8 size from below
            raise BodyTooLargeError
        if self.base64_encoded:
            try:
                body = base64.b64decode(self.raw_body, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequestError("body is not valid base64") from None
        else:
            body = self.raw_body.encode("utf-8", "surrogatepass")
        if len(body) > max_body_bytes:
            raise BodyTooLargeError
        return SignedRequest(self.method, self.path, self.headers, body)


_MAX_SOURCE_CHARS: Final = 64


def read_event(event: Mapping[str, Any]) -> Incoming:
    """The request in an HTTP API (2.0) event; `BadRequestError` when it is not one."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if not isinstance(http, Mapping):
        raise BadRequestError("not an HTTP API request")
    parameters = event.get("pathParameters")
    source = parameters.get("source") if isinstance(parameters, Mapping) else None
    headers = event.get("headers")
    body = event.get("body")
    path = event.get("rawPath")
    query = event.get("rawQueryString")
    return Incoming(
        method=str(http.get("method", "")).upper(),
        source=source if isinstance(source, str) and len(source) <= _MAX_SOURCE_CHARS else "",
        path=(path if isinstance(path, str) else "/") + (f"?{query}" if isinstance(query, str) and query else ""),
        headers={str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {},
        raw_body=body if isinstance(body, str) else "",
        base64_encoded=event.get("isBase64Encoded") is True,
    )


def respond(status: int, document: Mapping[str, Any]) -> HttpResponse:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(document, separators=(",", ":")),
    }
