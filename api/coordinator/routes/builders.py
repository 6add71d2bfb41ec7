"""Builders: enrollment with a one-time token, heartbeats, approval, retirement, listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI, Query, Request

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
    LedgerUnavailableError,
    PermissionDeniedError,
)
from farm.coordinator.models import (
    BuilderCreate,
    BuilderPublic,
    EnrollmentTokenCreate,
    EnrollmentTokenPublic,
)
from farm.errors import LedgerError, TransactionError
from farm.transactions import make_retire

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

    @app.post(
        "/v1/builders/{builder_id}/retire",
        response_model=BuilderPublic,
        dependencies=[OperatorDep],
        tags=["operator"],
    )
    def retire(
        request: Request,
        builder_id: str,
        session: SessionDep,
        reason: Annotated[str, Query(max_length=500)] = "retired by the operator",
    ) -> BuilderPublic:
        """Retire a builder: it is no longer scheduled and its results are refused; on a
        coordinator with a ledger, a builder enrolled there is retired there too (the
        answer comes once the retire transaction is committed)."""
        state = runtime(request)
        builder = service.retire(session, builder_id)
        publisher = state.publisher
        if publisher is not None and builder.ledger_index is not None:
            tx = make_retire(publisher.operator_key, builder.id, reason, chain=publisher.chain)
            try:
                # A refusal counts only from validators that have its enrollment.
                publisher.client.submit(tx, after=builder.ledger_index + 1)
            except TransactionError:
                raise
            except LedgerError as exc:
                raise LedgerUnavailableError(f"retire of {builder.id[:12]}: {exc}") from None
        return builder_public(builder)

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
