"""Builds: requests (operator), results (builders), and their reads, at once or
long-polled until the build changes.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

import yaml
from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.coordinator._changes import commits_of
from api.coordinator.deps import (
    BuilderDep,
    Limit,
    Offset,
    OperatorDep,
    SessionDep,
    runtime,
)
from api.coordinator.runtime import Runtime, result_arrived
from farm.coordinator import service
from farm.coordinator.models import (
    BuildCreate,
    BuildPage,
    BuildPublic,
    BuildResultPublic,
)
from farm.coordinator.report_worker import needs_reports
from farm.coordinator.scheduler import request_build
from farm.errors import RecipeError
from farm.recipe import Recipe, parse_recipe

__all__ = ["add_routes"]


def _recipe_of(body: BuildCreate) -> Recipe:
    if isinstance(body.recipe, dict):
        return parse_recipe(body.recipe, "request body")
    try:
        data = yaml.safe_load(body.recipe)  # YAML text, or JSON (which is YAML)
    except yaml.YAMLError as exc:
        raise RecipeError(f"request body: recipe is not YAML: {exc}") from None
    return parse_recipe(data, "request body")


MAX_BUILD_WAIT = 60.0


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
    state: Runtime, build_id: str, since: str | None, wait: float
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


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

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
        state = runtime(request)
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
        state = runtime(request)
        row = service.record_result(
            session, state.staging, build_id, caller.builder_id, envelope, state.clock()
        )
        view = service.build_public(session, build_id)
        result_arrived(state, view.status)
        if needs_reports(view.status, (view.verdict or {}).get("upstream_matches")):
            state.reports.submit(build_id)
        return next(r for r in view.results if r.id == row.id)

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
        view, etag = await _build_when_changed(runtime(request), build_id, since, wait)
        response.headers["ETag"] = f'"{etag}"'
        return view
