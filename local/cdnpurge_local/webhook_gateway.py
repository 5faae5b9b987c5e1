"""The webhook endpoint on loopback: what API Gateway's HTTP API does in front of `WebhookFunction`, locally.

`POST /webhooks/<source>` on 127.0.0.1 becomes the payload-format-2.0 event API Gateway sends (header names
lower-cased, the body as text, `pathParameters.source`), the real handler (functions/webhook/app.py) runs
in-process against the local stack, and its response is written back. A request body is read only up to
`MAX_REQUEST_BYTES` (API Gateway's own 10 MB limit is far above any source's cap, which the handler
enforces); anything else (another path, another method) is answered as API Gateway would, 404, and a
function that raises as API Gateway answers it, 500 (the traceback printed, as Lambda logs it).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from types import ModuleType
from typing import Any, Final

from cdnpurge_local.event_source import LocalLambdaContext
from cdnpurge_local.fakecdn.loopback import LoopbackHTTP
from cdnpurge_local.servers import REPO_ROOT

WEBHOOK_HANDLER_PATH: Final = REPO_ROOT / "functions" / "webhook" / "app.py"
MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024
ROUTE_PREFIX: Final = "/webhooks/"

Handler = Callable[[dict[str, Any], LocalLambdaContext], Mapping[str, Any]]


def load_webhook_handler() -> ModuleType:
    """Import functions/webhook/app.py the way Lambda does, as a fresh top-level module `app`."""
    spec = importlib.util.spec_from_file_location("app", WEBHOOK_HANDLER_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {WEBHOOK_HANDLER_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_api_event(path: str, query: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The HTTP API (2.0) event for a POST to `path` (`/webhooks/<source>`)."""
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "pathParameters": {"source": path.removeprefix(ROUTE_PREFIX)},
        "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "127.0.0.1"}},
        "body": body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": False,
    }


@contextmanager
def webhook_gateway(handler: Handler) -> Iterator[str]:
    """Serve `handler` at `<endpoint>/webhooks/<source>` on 127.0.0.1; yields the endpoint. Requests are
    answered on threads, but the handler runs one invocation at a time, as in one Lambda execution environment
    (its module-level logger and metrics are not built for two invocations at once)."""
    environment = threading.Lock()

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("content-length") or 0)
            source = path.removeprefix(ROUTE_PREFIX)
            if not path.startswith(ROUTE_PREFIX) or not source or "/" in source or length > MAX_REQUEST_BYTES:
                self._answer(404 if length <= MAX_REQUEST_BYTES else 413, {"message": "Not Found"})
                return
            body = self.rfile.read(length)
            event = http_api_event(path, query, dict(self.headers.items()), body)
            context = LocalLambdaContext(function_name="cdnpurge-WebhookFunction-local", timeout_seconds=20)
            try:
                with environment:
                    response = handler(event, context)
            except Exception:  # a function error: API Gateway answers 500 and the traceback is in the logs
                traceback.print_exc()
                self._answer(500, {"message": "Internal Server Error"})
                return
            self._answer(int(response["statusCode"]), json.loads(response["body"]))

        def do_GET(self) -> None:
            self._answer(404, {"message": "Not Found"})

        def _answer(self, status: int, document: Mapping[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("apigw-requestid", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo prints what matters."""

    server = LoopbackHTTP(Gateway, "webhook-gateway")
    try:
        yield server.endpoint
    finally:
        server.stop()
