"""The metrics port: `/metrics`, `/healthz` and `/readyz`, served from a thread.

A thread (as prometheus_client's own server does) keeps scrapes answering with
the standard library's HTTP server; the state it reads is plain attributes.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


class Readiness:
    """Whether the service should get traffic, and why not.

    Ready means: joined the group with partitions settled, the broker answered the
    last check, and not shutting down.
    """

    def __init__(self) -> None:
        self._group: str | None = "starting"
        self._broker: str | None = None
        self._draining = False

    @property
    def reason(self) -> str | None:
        """None when ready; otherwise the one-line reason /readyz gives."""
        if self._draining:
            return "shutting down"
        if self._broker is not None:
            return f"broker unreachable: {self._broker}"
        return self._group

    def joined(self) -> None:
        self._group = None

    def rebalancing(self) -> None:
        # The first join also revokes (nothing); until it completes we are still starting.
        if self._group != "starting":
            self._group = "rebalancing"

    def draining(self) -> None:
        self._draining = True

    def broker_answered(self) -> None:
        self._broker = None

    def broker_failed(self, why: str) -> None:
        self._broker = why


class HealthServer:
    """Serves the three endpoints until `stop()`."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        handler = _handler_class(registry, readiness)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _handler_class(
    registry: CollectorRegistry, readiness: Readiness
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._answer(HTTPStatus.OK, b"ok\n")
            elif path == "/readyz":
                reason = readiness.reason
                if reason is None:
                    self._answer(HTTPStatus.OK, b"ready\n")
                else:
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {reason}\n".encode())
            else:
                self._answer(HTTPStatus.NOT_FOUND, b"not found\n")

        def _answer(
            self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            log.debug(format, *args)

    return Handler
