"""Builders: enrollment with a one-time token, heartbeats, approval, listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI, Request

from api.coordinator.deps import (
    BuilderDep,
    Limit,
    Offset,
    OperatorDep,
    SessionDep,
    builder_public,
    runtime,
)
from farm.coordinator import service
from farm.coordinator.errors import (
    PermissionDeniedError,
)
from farm.coordinator.models import (
    BuilderCreate,
    BuilderPublic,
    EnrollmentTokenCreate,
    EnrollmentTokenPublic,
)

__all__ = ["add_routes"]


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

    @app.post(
        "/v1/builders/enroll", status_code=201, response_model=BuilderPublic, tags=["builders"]
    )
    def enroll(request: Request, body: BuilderCreate, session: SessionDep) -> BuilderPublic:
        """Register a builder's key with a one-time token; it waits for approval."""
        return builder_public(service.enroll(session, body, runtime(request).clock()))

    @app.post(
        "/v1/builders/{builder_id}/heartbeat", response_model=BuilderPublic, tags=["builders"]
    )
    def heartbeat(
        request: Request, builder_id: str, caller: BuilderDep, session: SessionDep
    ) -> BuilderPublic:
        """Record that the signing builder is alive (it may only speak for itself)."""
        if caller.builder_id != builder_id:
            raise PermissionDeniedError("a builder may only send its own heartbeat")
        return builder_public(service.heartbeat(session, builder_id, runtime(request).clock()))

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
            session, runtime(request).clock(), ttl_seconds=body.ttl_seconds, note=body.note
        )

    @app.post(
        "/v1/builders/{builder_id}/approve",
        response_model=BuilderPublic,
        dependencies=[OperatorDep],
        tags=["operator"],
    )
    def approve(request: Request, builder_id: str, session: SessionDep) -> BuilderPublic:
        """Approve an enrolled builder."""
        return builder_public(service.approve(session, builder_id, runtime(request).clock()))

    @app.get("/v1/builders", response_model=list[BuilderPublic], tags=["builders"])
    def builders(
        session: SessionDep, limit: Limit = 100, offset: Offset = 0
    ) -> list[BuilderPublic]:
        """Enrolled builders by enrollment time (``limit``/``offset`` pages)."""
        rows = service.list_builders(session)[offset : offset + limit]
        return [builder_public(b) for b in rows]

    @app.get("/v1/builders/{builder_id}", response_model=BuilderPublic, tags=["builders"])
    def builder(builder_id: str, session: SessionDep) -> BuilderPublic:
        """One enrolled builder."""
        return builder_public(service.get_builder(session, builder_id))
