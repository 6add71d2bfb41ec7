"""The operator routes every service serves: ``GET /healthz``, ``/readyz``, ``/metrics``.

:func:`add_operations_routes` puts them on a FastAPI app (validators, coordinator,
distribution node); :class:`OperationsServer` serves them alone, as a small threaded
WSGI server, for a process without an HTTP API (the builder worker). Both answer the
same bytes: ``/healthz`` is :data:`farm.health.HEALTHY`, ``/readyz`` is
:func:`farm.health.readiness` of the checks the service gives, ``/metrics`` is the
Prometheus text format of the service's own :class:`~prometheus_client.CollectorRegistry`
(never the process-global default registry, so several services in one process do
not collide).

Invariants: the readiness checks run at each request, in a worker thread for FastAPI
(they may do I/O); an exception inside a check is already a failed check
(:func:`farm.health.probe`), and one escaping it anyway answers 503, never 500.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from farm.errors import ConfigError
from farm.health import HEALTHY, Check, readiness

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["OperationsServer", "add_operations_routes", "metrics_text", "ready_answer"]

log = logging.getLogger(__name__)

Checks = Callable[[], Sequence[Check]]


def ready_answer(checks: Checks) -> tuple[int, dict[str, Any]]:
    """What ``GET /readyz`` answers: :func:`farm.health.readiness` of ``checks()``."""
    try:
        return readiness(checks())
    except Exception as exc:  # a check that raised is a failed check, not a 500
        log.exception("readiness checks failed")
        return readiness([Check("checks", False, f"{type(exc).__name__}: {exc}")])


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)


def add_operations_routes(app: FastAPI, checks: Checks, registry: CollectorRegistry) -> None:
    """``GET /healthz``, ``/readyz`` and ``/metrics`` on ``app`` (not in its OpenAPI)."""
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse(HEALTHY)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status, body = await run_in_threadpool(ready_answer, checks)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(metrics_text, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds
        log.debug(format, *args)


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--metrics-address {address!r}: want HOST:PORT")
    return host.strip("[]"), int(port)


class OperationsServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``HOST:PORT``, in a daemon thread."""

    def __init__(self, address: str, checks: Checks, registry: CollectorRegistry) -> None:
        host, port = _split(address)
        self._checks = checks
        self._registry = registry
        try:
            self._server = make_server(
                host, port, self._app, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {address}: {exc.strerror}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="farm-operations", daemon=True
        )

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, 405, "application/json", b'{"status":"read-only"}')
        if path == "/healthz":
            return _answer(start_response, 200, "application/json", json.dumps(HEALTHY).encode())
        if path == "/readyz":
            status, body = ready_answer(self._checks)
            return _answer(start_response, status, "application/json", json.dumps(body).encode())
        if path == "/metrics":
            return _answer(start_response, 200, CONTENT_TYPE_LATEST, metrics_text(self._registry))
        return _answer(start_response, 404, "application/json", b'{"status":"not found"}')


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _answer(
    start_response: Callable[..., Any], status: int, content_type: str, body: bytes
) -> list[bytes]:
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]
