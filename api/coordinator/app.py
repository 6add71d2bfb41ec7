"""The coordinator's REST API (FastAPI): builders, staging, results, builds.

Reads are public. Every write is authenticated: operators by a bearer token (stored
hashed), builders by a signature of their enrolled key over the request
(:mod:`farm.coordinator.auth`), except enrollment, which spends a one-time token.
Routes return the ``XPublic`` models, never table rows.

Every error has one body shape, ``{"error": {"code": ..., "message": ...}}``; the
mapping from farm's errors to HTTP statuses is :data:`ERROR_STATUS`, in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import yaml
from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.coordinator import dashboard
from api.coordinator._changes import commits_of
from api.errors import ERROR_RESPONSES, error_response
from farm.coordinator import attestations, recipes_repo, reports, revocations, service
from farm.coordinator.auth import ReplayCache, SignedRequest, verify_request
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EnrollmentError,
    LedgerUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher
from farm.coordinator.models import (
    AttestationPage,
    AttestationPublic,
    BuildCreate,
    Builder,
    BuilderCreate,
    BuilderPublic,
    BuildPage,
    BuildPublic,
    BuildResultPublic,
    ConsistencyProofPublic,
    DiffReportPublic,
    EnrollmentTokenCreate,
    EnrollmentTokenPublic,
    InclusionProofPublic,
    LedgerCheckpointPublic,
    LedgerStatusPublic,
    RecipePublic,
    RevocationCreate,
    RevocationPage,
    RevocationPublic,
    utcnow,
)
from farm.coordinator.recipes_repo import RecipeFollower
from farm.coordinator.report_worker import ReportWorker, needs_reports
from farm.coordinator.scheduler import Scheduler, SchedulerConfig, request_build
from farm.coordinator.settings import CoordinatorSettings
from farm.coordinator.staging import Staging
from farm.diffoscope import DiffoscopeLimits
from farm.errors import ConfigError, FarmError, QuorumError, RecipeError, SignatureError
from farm.keys import load_key
from farm.recipe import Recipe, parse_recipe

__all__ = ["ERROR_STATUS", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

#: farm error → (HTTP status, error code). The most specific class listed wins.
ERROR_STATUS: dict[type[FarmError], tuple[int, str]] = {
    NotFoundError: (404, "not_found"),
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    EnrollmentError: (403, "enrollment_refused"),
    ConflictError: (409, "conflict"),
    StagingError: (400, "staging_refused"),
    ResultRefusedError: (422, "result_refused"),
    SignatureError: (422, "bad_signature"),
    RecipeError: (422, "bad_recipe"),
    QuorumError: (409, "no_quorum"),
    BadRequestError: (400, "bad_request"),
    LedgerUnavailableError: (503, "ledger_unavailable"),
    ConfigError: (500, "misconfigured"),
    FarmError: (400, "bad_request"),
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, code, message, headers)


def status_of(exc: FarmError) -> tuple[int, str]:
    """The HTTP status and code of a farm error (by its nearest listed class)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400, "bad_request"


def _install_error_handlers(app: FastAPI) -> None:
    async def farm_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FarmError)
        status, code = status_of(exc)
        return _error(status, code, str(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg')}")

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return _error(500, "internal", "internal server error")

    app.add_exception_handler(FarmError, farm_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


@dataclass
class _State:
    settings: CoordinatorSettings
    engine: Engine
    staging: Staging
    replay: ReplayCache
    clock: Callable[[], datetime]
    reports: ReportWorker
    follower: RecipeFollower | None = None
    publisher: LedgerPublisher | None = None
    scheduler: Scheduler | None = None
    ledger: LedgerClient | None = None
    """Reads of the validators (checkpoint, proofs, status), when a ledger is set."""
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


@dataclass(frozen=True)
class BuilderCaller:
    """A builder whose request signature verified, and the body it signed."""

    builder_id: str
    approved: bool
    body: bytes


def _state(request: Request) -> _State:
    state: _State = request.app.state.farm
    return state


async def _session(request: Request) -> AsyncIterator[Session]:
    """A session for one request. An async generator, so FastAPI opens and closes it on
    the event loop: a sync one costs two extra thread hops per request (about a third of
    a small query's time). Opening connects nothing; closing only returns the connection."""
    with Session(_state(request).engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]


def _operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    _operator_name(request, authorization)


def _operator_name(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The name of the operator token the request carries; 401 without a valid one."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationError("operator token required (Authorization: Bearer <token>)")
    with Session(_state(request).engine) as session:
        return service.authenticate_operator(session, secret.strip()).name


async def _builder(request: Request) -> BuilderCaller:
    state = _state(request)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > state.settings.max_upload:
        raise StagingError(
            f"body of {length} bytes exceeds the limit of {state.settings.max_upload}"
        )
    body = await request.body()
    if len(body) > state.settings.max_upload:
        raise StagingError(f"body exceeds the limit of {state.settings.max_upload} bytes")
    signed = SignedRequest.from_headers(request.headers)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")

    def check() -> BuilderCaller:
        with Session(state.engine) as session:
            builder = session.get(Builder, signed.builder_id)
            if builder is None:
                raise AuthenticationError(f"builder {signed.builder_id[:64]} is not enrolled")
            now = state.clock().timestamp()
            window = state.settings.request_window
            verify_request(signed, builder.public_key, request.method, target, body, now, window)
            state.replay.check_and_add(signed.signature, now, window)
            return BuilderCaller(builder.id, builder.approved, body)

    return await run_in_threadpool(check)


BuilderDep = Annotated[BuilderCaller, Depends(_builder)]
OperatorDep = Depends(_operator)


def _approved(caller: BuilderCaller) -> None:
    if not caller.approved:
        raise PermissionDeniedError(f"builder {caller.builder_id[:12]} is not approved yet")


def _builder_public(builder: Builder) -> BuilderPublic:
    rate = builder.agreements / builder.builds_done if builder.builds_done else None
    return BuilderPublic.model_validate({**builder.model_dump(), "agreement_rate": rate})


def _recipe_of(body: BuildCreate) -> Recipe:
    if isinstance(body.recipe, dict):
        return parse_recipe(body.recipe, "request body")
    try:
        data = yaml.safe_load(body.recipe)  # YAML text, or JSON (which is YAML)
    except yaml.YAMLError as exc:
        raise RecipeError(f"request body: recipe is not YAML: {exc}") from None
    return parse_recipe(data, "request body")


def _start_background(state: _State) -> None:
    """The report worker, the scheduler (with a broker), the ledger publisher (with
    validators) and the recipe follower (with a repository)."""
    settings = state.settings
    state.threads.append(
        threading.Thread(
            target=state.reports.run, args=(state.stop,), name="farm-reports", daemon=True
        )
    )
    if settings.redis_url:
        from farm.coordinator.celery_dispatch import CeleryDispatcher

        config = SchedulerConfig(
            allow_same_host=settings.allow_same_host,
            timeout_margin=settings.timeout_margin,
            max_retries=settings.max_retries,
            heartbeat_within=settings.heartbeat_within,
        )
        scheduler = state.scheduler = Scheduler(
            state.engine,
            state.staging,
            CeleryDispatcher(settings.redis_url),
            config,
            state.clock,
            on_verified=state.publisher.wake if state.publisher is not None else None,
            on_reports=state.reports.submit,
        )
        state.threads.append(
            threading.Thread(
                target=scheduler.run,
                args=(state.stop, settings.schedule_interval),
                name="farm-scheduler",
                daemon=True,
            )
        )
    if state.publisher is not None:
        state.threads.append(
            threading.Thread(
                target=state.publisher.run,
                args=(state.stop, settings.ledger_interval),
                name="farm-ledger",
                daemon=True,
            )
        )
    if state.follower is not None:
        state.threads.append(
            threading.Thread(
                target=state.follower.run, args=(state.stop,), name="farm-recipes", daemon=True
            )
        )
    for thread in state.threads:
        thread.start()


def _result_arrived(state: _State, build_status: str) -> None:
    """A result was recorded: the scheduler settles it now, the publisher attests now."""
    if state.scheduler is not None:
        state.scheduler.wake()
    if build_status == "verified" and state.publisher is not None:
        state.publisher.wake()


def _publisher(state: _State) -> LedgerPublisher:
    settings = state.settings
    if settings.coordinator_key is None or settings.operator_key is None:
        raise ConfigError("--ledger needs --coordinator-key and --operator-key")
    if settings.ledger_chain is None:
        raise ConfigError("--ledger needs --ledger-chain (the chain_id of the ledger's genesis)")
    urls = [u.strip() for u in (settings.ledger_urls or "").split(",") if u.strip()]
    return LedgerPublisher(
        state.engine,
        LedgerClient(urls),
        load_key(settings.coordinator_key),
        load_key(settings.operator_key),
        state.clock,
        settings.ledger_chain,
    )


@asynccontextmanager
async def _lifespan(state: _State, _: FastAPI) -> AsyncIterator[None]:
    _start_background(state)
    try:
        yield
    finally:
        _stop_background(state)


def _stop_background(state: _State) -> None:
    state.stop.set()
    if state.follower is not None:
        state.follower.wake()
    if state.publisher is not None:
        state.publisher.wake()
    if state.scheduler is not None:
        state.scheduler.wake()
    for thread in state.threads:
        thread.join(timeout=10)
    if state.ledger is not None:
        state.ledger.close()


Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]

ReportId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A diffoscope report's id.")]

#: Diffoscope's HTML comes from untrusted build outputs: no scripts, no fetches, sandboxed.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def _add_attestation_routes(app: FastAPI) -> None:
    """Attestations committed to the ledger, with their inclusion proofs."""

    @app.get("/v1/attestations", response_model=AttestationPage, tags=["attestations"])
    async def list_attestations(
        session: SessionDep,
        name: Annotated[str | None, Query(max_length=255)] = None,
        version: Annotated[str | None, Query(max_length=255)] = None,
        arch: Annotated[str | None, Query(max_length=32)] = None,
        sha256: Annotated[str | None, Query(pattern="^(sha256:)?[0-9a-f]{64}$")] = None,
        recipe_digest: Annotated[str | None, Query(pattern="^sha256:[0-9a-f]{64}$")] = None,
        status: Annotated[str, Query(pattern="^(committed|rejected)$")] = "committed",
        revoked: Annotated[
            bool | None, Query(description="Only with (true) or without (false) a revocation.")
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response:
        """Attestations (newest first) with bundle, ledger index, inclusion proof and
        checkpoint; ``status=rejected`` lists those the ledger refused, with its reason.
        A revoked artifact carries its revocation (reason, ledger index)."""
        # One thread hop, and the page's JSON made with the stored bundles spliced in as
        # they are (see list_attestations_json): the route's cost is mostly FastAPI's.
        body = await run_in_threadpool(
            attestations.list_attestations_json,
            session,
            name=name,
            version=version,
            arch=arch,
            sha256=sha256,
            recipe_digest=recipe_digest,
            status=status,
            revoked=revoked,
            limit=limit,
            offset=offset,
        )
        return Response(body, media_type="application/json")

    @app.get("/v1/attestations/{tx_id}", response_model=AttestationPublic, tags=["attestations"])
    def get_attestation(
        session: SessionDep, tx_id: Annotated[str, Path(pattern="^[0-9a-f]{64}$")]
    ) -> AttestationPublic:
        """One attestation by its ledger transaction id."""
        return attestations.get_attestation(session, tx_id)


Sha256 = Annotated[str, Query(pattern="^(sha256:)?[0-9a-f]{64}$", description="Artifact sha256.")]


def _add_revocation_routes(app: FastAPI) -> None:
    """Revocations: an operator asks, the ledger commits a revoke transaction."""

    @app.post(
        "/v1/revocations",
        status_code=202,
        response_model=RevocationPublic,
        tags=["revocations"],
    )
    def revoke(
        request: Request,
        body: RevocationCreate,
        session: SessionDep,
        operator: Annotated[str, Depends(_operator_name)],
    ) -> RevocationPublic:
        """Revoke an attested artifact (operator): the coordinator signs a revoke
        transaction with its operator key and submits it; the answer is ``pending``
        until the ledger commits (or refuses) it, see ``GET /v1/revocations/{id}``."""
        state = _state(request)
        if state.publisher is None:
            raise ConflictError("this coordinator has no ledger (farm serve --ledger)")
        publisher = state.publisher
        row = revocations.request_revocation(
            session, body, publisher.operator_key, publisher.chain, operator, state.clock()
        )
        state.publisher.wake()
        assert row.id is not None
        return revocations.get_revocation(session, row.id)

    @app.get("/v1/revocations", response_model=RevocationPage, tags=["revocations"])
    def list_revocations(
        session: SessionDep,
        sha256: Sha256 | None = None,
        status: Annotated[str | None, Query(pattern="^(pending|committed|rejected)$")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RevocationPage:
        """Revocations, newest first, optionally of one artifact or in one status."""
        return revocations.list_revocations(
            session, sha256=sha256, status=status, limit=limit, offset=offset
        )

    @app.get(
        "/v1/revocations/{revocation_id}", response_model=RevocationPublic, tags=["revocations"]
    )
    def get_revocation(
        session: SessionDep, revocation_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
    ) -> RevocationPublic:
        """One revocation: pending, committed (with its receipt) or rejected (with why)."""
        return revocations.get_revocation(session, revocation_id)


LogIndex = Annotated[int, Query(ge=0, le=2**53, description="Log index.")]
LogSize = Annotated[int, Query(ge=0, le=2**53, description="Tree size.")]


def _add_ledger_routes(app: FastAPI) -> None:
    """The ledger's checkpoint, proofs and status, relayed from its validators."""

    def ledger(request: Request) -> LedgerClient:
        client = _state(request).ledger
        if client is None:
            raise ConflictError("this coordinator has no ledger (farm serve --ledger)")
        return client

    @app.get("/v1/ledger/checkpoint", response_model=LedgerCheckpointPublic, tags=["ledger"])
    def checkpoint(request: Request) -> LedgerCheckpointPublic:
        """The latest checkpoint co-signed by the validators (a signed note)."""
        return ledger(request).read("/v1/checkpoint", LedgerCheckpointPublic)

    @app.get("/v1/ledger/proofs/inclusion", response_model=InclusionProofPublic, tags=["ledger"])
    def inclusion(request: Request, index: LogIndex, size: LogSize) -> InclusionProofPublic:
        """Inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        if not index < size:
            raise BadRequestError(f"need index < size (index {index}, size {size})")
        params = {"index": index, "size": size}
        return ledger(request).read("/v1/proofs/inclusion", InclusionProofPublic, params)

    @app.get(
        "/v1/ledger/proofs/consistency", response_model=ConsistencyProofPublic, tags=["ledger"]
    )
    def consistency(request: Request, old: LogSize, new: LogSize) -> ConsistencyProofPublic:
        """Consistency proof between the trees of ``old`` and ``new`` entries."""
        if not old <= new:
            raise BadRequestError(f"need old <= new (old {old}, new {new})")
        params = {"old": old, "new": new}
        return ledger(request).read("/v1/proofs/consistency", ConsistencyProofPublic, params)

    @app.get("/v1/ledger/status", response_model=LedgerStatusPublic, tags=["ledger"])
    def ledger_status(request: Request) -> LedgerStatusPublic:
        """The ledger's height and log size, as the first validator to answer sees them."""
        return ledger(request).read("/v1/status", LedgerStatusPublic)


def _add_scheduling_routes(app: FastAPI) -> None:
    """Build requests, build and recipe lists, the push webhook."""

    @app.post(
        "/v1/builds",
        status_code=201,
        response_model=list[BuildPublic],
        dependencies=[OperatorDep],
        tags=["builds"],
    )
    def request_builds(
        request: Request, body: BuildCreate, session: SessionDep
    ) -> list[BuildPublic]:
        """Request a build of a recipe (one per architecture); the scheduler runs it."""
        recipe = _recipe_of(body)
        state = _state(request)
        builds = request_build(session, recipe, state.clock(), arches=body.arches)
        if state.scheduler is not None:
            state.scheduler.wake()
        return [service.build_public(session, b.id) for b in builds]

    @app.get("/v1/builds", response_model=BuildPage, tags=["builds"])
    def list_builds(
        session: SessionDep,
        limit: Limit = 50,
        offset: Offset = 0,
        status: Annotated[str | None, Query(max_length=16)] = None,
        name: Annotated[str | None, Query(max_length=255)] = None,
        verdict: Annotated[str | None, Query(pattern="^(verified|disputed|failed)$")] = None,
    ) -> BuildPage:
        """Builds, newest first, filtered by status, recipe name or verdict."""
        return service.list_builds(
            session, status=status, name=name, verdict=verdict, limit=limit, offset=offset
        )

    @app.get("/v1/recipes", response_model=list[RecipePublic], tags=["recipes"])
    def recipes(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> list[RecipePublic]:
        """Recipes of the followed repository: digest, lint status, latest verdict."""
        return recipes_repo.list_recipes(session, limit=limit, offset=offset)

    @app.post("/v1/hooks/push", status_code=202, tags=["recipes"])
    async def push_hook(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """A push landed: poll the recipe repository now (operator token or webhook HMAC)."""
        state = _state(request)
        body = await request.body()
        secret = state.settings.webhook_secret
        if not (secret and recipes_repo.signature_matches(secret, body, x_hub_signature_256)):
            await run_in_threadpool(_operator, request, authorization)
        if state.follower is None:
            raise ConflictError("this coordinator follows no recipe repository")
        state.follower.wake()
        return {"polling": True}


def _make_state(
    settings: CoordinatorSettings, engine: Engine, clock: Callable[[], datetime]
) -> _State:
    staging = Staging(settings.staging_dir)
    limits = DiffoscopeLimits(timeout=settings.diffoscope_timeout)
    worker = ReportWorker(engine, staging, settings.reports_dir, limits)
    state = _State(settings, engine, staging, ReplayCache(), clock, worker)
    if settings.recipes_repo:
        state.follower = RecipeFollower(
            engine,
            settings.recipes_repo,
            settings.recipes_checkout,
            branch=settings.recipes_branch,
            interval=settings.recipes_poll,
        )
    if settings.ledger_urls:
        state.publisher = _publisher(state)
        state.ledger = LedgerClient(state.publisher.client.urls)
    return state


#: The longest long-poll of a build a request may ask for (seconds).
MAX_BUILD_WAIT = 60.0
#: A long-poll reads its build again at least this often even when nothing here
#: committed: a commit by another process (``farm operator --db``) wakes nobody.
BUILD_RECHECK_S = 2.0

BuildWait = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_BUILD_WAIT,
        description="With `since`: seconds to wait for the build to change (long-poll).",
    ),
]
BuildSince = Annotated[
    str | None,
    Query(
        pattern="^[0-9a-f]{32}$",
        description="The `ETag` of the build as last read, without quotes: answer when it differs.",
    ),
]
_BUILD_ETAG_HEADER = {
    "description": "The version of this answer (quoted), for `since`.",
    "schema": {"type": "string"},
}


async def _build_when_changed(
    state: _State, build_id: str, since: str | None, wait: float
) -> tuple[BuildPublic, str]:
    """The build and its version, once that differs from ``since`` or ``wait`` s pass.

    Woken by every commit in this process (:mod:`api.coordinator._changes`): the scheduler, a result
    arriving, the report worker; it reads the build again and compares versions.
    """
    commits = commits_of(state.engine)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait

    def read() -> tuple[BuildPublic, str]:
        with Session(state.engine) as session:  # never commits (see api.coordinator._changes)
            view = service.build_public(session, build_id)
        return view, hashlib.sha256(view.model_dump_json().encode()).hexdigest()[:32]

    while True:
        seen = commits.count
        view, etag = await run_in_threadpool(read)
        left = deadline - loop.time()
        if since is None or etag != since or left <= 0:
            return view, etag
        await commits.wait(seen, min(left, BUILD_RECHECK_S))


def _add_build_read_route(app: FastAPI) -> None:
    """One build, read at once or long-polled until it changes."""

    @app.get(
        "/v1/builds/{build_id}",
        response_model=BuildPublic,
        tags=["builds"],
        responses={200: {"headers": {"ETag": _BUILD_ETAG_HEADER}}},
    )
    async def build(
        request: Request,
        response: Response,
        build_id: str,
        wait: BuildWait = 0.0,
        since: BuildSince = None,
    ) -> BuildPublic:
        """A build with every result received and its verdict.

        A long-poll with ``since`` (the ``ETag`` of an earlier answer, unquoted) and
        ``wait``: the answer comes as soon as the build differs from that version, or
        unchanged after ``wait`` seconds. Without ``since``, at once.
        """
        view, etag = await _build_when_changed(_state(request), build_id, since, wait)
        response.headers["ETag"] = f'"{etag}"'
        return view


def _add_report_routes(app: FastAPI) -> None:
    """Diffoscope reports: listed per build, served as HTML (sandboxed) and JSON."""

    @app.get("/v1/builds/{build_id}/diffs", response_model=list[DiffReportPublic], tags=["builds"])
    def diffs(build_id: str, session: SessionDep) -> list[DiffReportPublic]:
        """The diffoscope reports of a build: between builders' differing outputs
        (``against=builders``) and between upstream's artifact and the rebuild
        (``against=upstream``)."""
        service.get_build(session, build_id)
        return [
            DiffReportPublic.model_validate(r.model_dump())
            for r in reports.diff_reports(session, build_id)
        ]

    @app.get("/v1/diffs/{report_id}.html", response_class=FileResponse, tags=["builds"])
    def diff_html(report_id: ReportId, session: SessionDep) -> FileResponse:
        """A diffoscope report as HTML (served sandboxed)."""
        path = reports.report_file(session, report_id, "html")
        return FileResponse(
            path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP}
        )

    @app.get("/v1/diffs/{report_id}.json", response_class=FileResponse, tags=["builds"])
    def diff_json(report_id: ReportId, session: SessionDep) -> FileResponse:
        """A diffoscope report as JSON."""
        return FileResponse(
            reports.report_file(session, report_id, "json"), media_type="application/json"
        )


def create_app(
    settings: CoordinatorSettings | None = None,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The coordinator's API over ``settings.db_url`` (or ``engine``); creates the tables."""
    settings = settings or CoordinatorSettings()
    engine = engine or make_engine(settings.db_url)
    create_tables(engine)
    commits_of(engine)  # every commit from now on wakes the long-polls of builds
    state = _make_state(settings, engine, clock)
    app = FastAPI(
        title="farm coordinator",
        version="1",
        description="Builders enroll and send signed results; operators approve and read.",
        lifespan=partial(_lifespan, state),
        responses=ERROR_RESPONSES,
        routes=dashboard.router.routes,  # the operator dashboard (not in the OpenAPI)
    )
    app.state.farm = state
    _install_error_handlers(app)

    @app.post(
        "/v1/builders/enroll", status_code=201, response_model=BuilderPublic, tags=["builders"]
    )
    def enroll(request: Request, body: BuilderCreate, session: SessionDep) -> BuilderPublic:
        """Register a builder's key with a one-time token; it waits for approval."""
        return _builder_public(service.enroll(session, body, _state(request).clock()))

    @app.post(
        "/v1/builders/{builder_id}/heartbeat", response_model=BuilderPublic, tags=["builders"]
    )
    def heartbeat(
        request: Request, builder_id: str, caller: BuilderDep, session: SessionDep
    ) -> BuilderPublic:
        """Record that the signing builder is alive (it may only speak for itself)."""
        if caller.builder_id != builder_id:
            raise PermissionDeniedError("a builder may only send its own heartbeat")
        return _builder_public(service.heartbeat(session, builder_id, _state(request).clock()))

    @app.put("/v1/staging/sha256/{digest}", status_code=201, tags=["staging"])
    def upload(
        request: Request, digest: str, caller: BuilderDep, session: SessionDep
    ) -> dict[str, Any]:
        """Stage an output; the body's sha256 must equal ``digest``."""
        _approved(caller)
        state = _state(request)
        blob = service.record_upload(
            session, state.staging, caller.builder_id, digest, caller.body, state.clock()
        )
        return {"sha256": blob.sha256, "size": blob.size}

    @app.get("/v1/staging/sha256/{digest}", response_class=FileResponse, tags=["staging"])
    def download(request: Request, digest: str) -> FileResponse:
        """A staged blob's bytes (public: readers check them against the digest)."""
        staging = _state(request).staging
        if not staging.has(digest):
            raise NotFoundError(f"sha256:{digest} is not in staging")
        return FileResponse(staging.path_for(digest), media_type="application/octet-stream")

    @app.post(
        "/v1/builds/{build_id}/results",
        status_code=201,
        response_model=BuildResultPublic,
        tags=["builds"],
    )
    def post_result(
        request: Request,
        build_id: str,
        caller: BuilderDep,
        session: SessionDep,
        envelope: Annotated[dict[str, Any], Body(description="The result's DSSE envelope.")],
    ) -> BuildResultPublic:
        """Record the signing builder's result for a build (refusals are recorded).

        When this result decides the build as disputed, or its agreed outputs differ
        from upstream's, diffoscope reports are queued (made in their own thread).
        """
        state = _state(request)
        row = service.record_result(
            session, state.staging, build_id, caller.builder_id, envelope, state.clock()
        )
        view = service.build_public(session, build_id)
        _result_arrived(state, view.status)
        if needs_reports(view.status, (view.verdict or {}).get("upstream_matches")):
            state.reports.submit(build_id)
        return next(r for r in view.results if r.id == row.id)

    @app.post(
        "/v1/operator/enrollment-tokens",
        status_code=201,
        response_model=EnrollmentTokenPublic,
        dependencies=[OperatorDep],
        tags=["operator"],
    )
    def new_enrollment_token(
        request: Request,
        session: SessionDep,
        body: Annotated[EnrollmentTokenCreate | None, Body()] = None,
    ) -> EnrollmentTokenPublic:
        """Issue a one-time enrollment token (shown only in this response)."""
        body = body or EnrollmentTokenCreate()
        return service.issue_enrollment_token(
            session, _state(request).clock(), ttl_seconds=body.ttl_seconds, note=body.note
        )

    @app.post(
        "/v1/builders/{builder_id}/approve",
        response_model=BuilderPublic,
        dependencies=[OperatorDep],
        tags=["operator"],
    )
    def approve(request: Request, builder_id: str, session: SessionDep) -> BuilderPublic:
        """Approve an enrolled builder."""
        return _builder_public(service.approve(session, builder_id, _state(request).clock()))

    @app.get("/v1/builders", response_model=list[BuilderPublic], tags=["builders"])
    def builders(
        session: SessionDep, limit: Limit = 100, offset: Offset = 0
    ) -> list[BuilderPublic]:
        """Enrolled builders by enrollment time (``limit``/``offset`` pages)."""
        rows = service.list_builders(session)[offset : offset + limit]
        return [_builder_public(b) for b in rows]

    _add_scheduling_routes(app)

    @app.get("/v1/builders/{builder_id}", response_model=BuilderPublic, tags=["builders"])
    def builder(builder_id: str, session: SessionDep) -> BuilderPublic:
        """One enrolled builder."""
        return _builder_public(service.get_builder(session, builder_id))

    _add_attestation_routes(app)
    _add_revocation_routes(app)
    _add_ledger_routes(app)

    _add_build_read_route(app)
    _add_report_routes(app)

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``FARM_COORDINATOR_*``."""
    return create_app(CoordinatorSettings())
