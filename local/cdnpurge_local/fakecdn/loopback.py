"""One loopback HTTP server on a daemon thread, for the fake CDN and the fake edge alike.

Both serve a `BaseHTTPRequestHandler` on 127.0.0.1 at a free port for the length of a `with` block; the
start (a threading server whose request threads never keep the process alive) and the stop (shut down,
close the socket, join the serving thread) are written here once.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTP:
    """`handler` served on 127.0.0.1 at a free port from the moment it is built until `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
