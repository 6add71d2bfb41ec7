"""The distribution node's HTTP API: read-only, GET and HEAD only.

Routes::

    GET|HEAD /artifacts/sha256/{digest}[/{filename}]   the bytes (api.distribution.artifacts)
    GET      /v1/packages/{name}/{version}              PackageRelease (farm.evidence)
    GET      /v1/evidence/sha256/{digest}               ArtifactEvidence
    GET|HEAD /simple/  and  /simple/{project}/          PEP 503 / PEP 691 index
    GET      /v1/status                                 height, sizes, counts
    GET      /healthz, /readyz, /metrics                alive; ready; Prometheus
                                                        (api.distribution.metrics)

Starting a node programmatically (what ``farm dist serve`` and ``farm bench dist`` do)::

    from api.distribution.app import create_app
    from api.distribution.settings import DistSettings

    app = create_app(DistSettings(genesis=..., coordinator_url=..., data_dir=...))
    uvicorn.run(app, host=..., port=..., lifespan="on", access_log=False,
                http="httptools", loop="uvloop")     # or uvicorn.Server(uvicorn.Config(...))

The returned ASGI app starts following and mirroring in its lifespan startup and stops
them at shutdown; ``app.node`` (attribute of the returned object) is the
:class:`~api.distribution.node.DistNode`. :func:`serve` runs all that until interrupted.

Every error has one body shape, ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.distribution.artifacts import ArtifactsFirst, Receive, Scope, Send
from api.distribution.catalog import normalize_name
from api.distribution.metrics import Served, dist_checks, dist_registry, route_of
from api.distribution.node import DistNode
from api.distribution.settings import DistSettings
from api.distribution.simple import choose_format, project_page, root_page
from api.errors import ERROR_RESPONSES, error_response
from farm.evidence import ArtifactEvidence, PackageRelease
from farm.health_http import add_operations_routes

__all__ = ["DistApp", "create_app", "make_api", "serve"]

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return error_response(status, code, message)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(_ApiError)
    async def api_error(_: Request, exc: _ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, "bad_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        if exc.status_code == 405:
            response.headers["allow"] = "GET, HEAD"
        return response


def _format(request: Request) -> str:
    fmt = choose_format(request.headers.get("accept"), request.query_params.get("format"))
    if fmt is None:
        raise _ApiError(406, "not_acceptable", "this index serves PEP 691 JSON or PEP 503 HTML")
    return fmt


def _page(body: bytes, fmt: str) -> Response:
    return Response(
        body,
        media_type=fmt,
        headers={"vary": "Accept", "cache-control": "max-age=60"},
    )


def make_api(node: DistNode, served: Served | None = None) -> FastAPI:
    """The FastAPI part of the node's API (everything but ``/artifacts/``); ``/metrics``
    reports ``served`` (the requests counted by :class:`DistApp`)."""
    app = FastAPI(
        title="farm distribution node",
        version="1",
        description="Read-only: serves only what the ledger committed, with its evidence.",
        lifespan=_lifespan(node),
        responses=ERROR_RESPONSES,
    )
    _install_error_handlers(app)

    @app.get("/v1/packages/{name}/{version}", response_model=PackageRelease)
    def package(name: str, version: str) -> PackageRelease:
        """A release's artifacts per architecture, each with its evidence."""
        release = node.release(name, version)
        if release is None:
            raise _ApiError(404, "not_found", f"no committed release {name} {version} here")
        return release

    @app.get("/v1/evidence/sha256/{digest}", response_model=ArtifactEvidence)
    def evidence(digest: str) -> ArtifactEvidence:
        """The attestation, inclusion proofs and checkpoint of one artifact."""
        found = node.evidence(digest)
        if found is not None:
            return found
        reason = node.view.gone.get(digest)
        if reason is not None:
            raise _ApiError(410, "revoked", f"sha256:{digest} was revoked: {reason}")
        raise _ApiError(404, "not_found", f"sha256:{digest} is not a committed artifact here")

    @app.get("/simple/")
    @app.head("/simple/", include_in_schema=False)  # one operation in the OpenAPI
    def simple_root(request: Request) -> Response:
        """PEP 503/691 project list."""
        fmt = _format(request)
        return _page(root_page(node.view.projects, fmt), fmt)

    @app.get("/simple/{project}/")
    @app.head("/simple/{project}/", include_in_schema=False)  # one operation in the OpenAPI
    def simple_project(request: Request, project: str) -> Response:
        """PEP 503/691 project page; a non-normalized name redirects to the normal one."""
        normal = normalize_name(project)
        if normal != project:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/simple/{normal}/{query}", status_code=301)
        fmt = _format(request)
        files = node.view.projects.get(normal)
        if not files:
            raise _ApiError(404, "not_found", f"no committed project {project!r} here")
        return _page(project_page(normal, files, fmt), fmt)

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        """The node's progress."""
        return node.status()

    add_operations_routes(app, lambda: dist_checks(node), dist_registry(node, served or Served()))
    return app


def _lifespan(node: DistNode) -> Any:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        node.start()
        try:
            yield
        finally:
            node.stop()

    return lifespan


class DistApp(ArtifactsFirst):
    """The whole ASGI app of one node; ``node`` is the :class:`DistNode` behind it."""

    def __init__(self, node: DistNode) -> None:
        self.node = node
        self.served = Served()
        self.api = make_api(node, self.served)
        super().__init__(lambda: node.view, self.api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        status, sent = 500, 0

        async def counted(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await super().__call__(scope, receive, counted)
        finally:
            self.served.record(route_of(scope["path"]), status, sent)


def create_app(settings: DistSettings) -> DistApp:
    """Open the node's stores and build its ASGI app (see the module docstring).

    Raises:
        ConfigError: a genesis that cannot be read.
        StorageError: a data directory that belongs to another chain.
    """
    return DistApp(DistNode(settings))


def serve(settings: DistSettings, *, log_level: str = "info") -> None:
    """Run a node until interrupted: check a validator answers, then serve HTTP."""
    import uvicorn

    from farm.tls import server_tls

    tls = server_tls(settings.tls_cert, settings.tls_key)
    app = create_app(settings)
    app.node.check_ledger()
    log.info(
        "serving on %s://%s:%d, following %s, mirroring from %s",
        "https" if tls else "http",
        settings.host,
        settings.port,
        ", ".join(app.node.urls),
        settings.coordinator_url,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through the process's handler (farm.logs)
        access_log=False,
        lifespan="on",
        http="httptools",
        loop="uvloop",
        **tls,  # type: ignore[arg-type]
    )
