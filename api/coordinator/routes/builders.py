"""Builders: enrollment with a one-time token, heartbeats, approval, retirement, listing.

Approval and retirement on a coordinator with a ledger relay the operator's own signed
transactions (:mod:`farm.coordinator.operator_txs`); the coordinator holds no operator
key."""

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
    BadRequestError,
    LedgerUnavailableError,
    PermissionDeniedError,
)
from farm.coordinator.models import (
    BuilderApproval,
    BuilderCreate,
    BuilderPublic,
    BuilderRetirement,
    EnrollmentTokenCreate,
    EnrollmentTokenPublic,
)
from farm.coordinator.operator_txs import check_relayed
from farm.errors import LedgerError, TransactionError
from farm.transactions import EnrollTx, RetireTx

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
    def approve(
        request: Request, builder_id: str, body: BuilderApproval, session: SessionDep
    ) -> BuilderPublic:
        """Approve an enrolled builder in an independence domain. On a coordinator with a
        ledger the body carries the enroll transaction the operator signed for it
        (``farm operator approve``); it is checked against the genesis operators and
        relayed to the validators as it is. The coordinator signs nothing for it."""
        state = runtime(request)
        enroll: EnrollTx | None = None
        data: bytes | None = None
        if state.publisher is not None:
            if body.enroll_tx is None:
                raise BadRequestError(
                    "this coordinator has a ledger: approval needs the enroll transaction "
                    "the operator signed (farm operator approve --key --genesis)"
                )
            enroll, data = check_relayed(body.enroll_tx, EnrollTx, state.publisher.operators)
        builder = service.approve(
            session, builder_id, state.clock(), body.domain, enroll_tx=enroll, enroll_bytes=data
        )
        if state.publisher is not None:
            state.publisher.wake()
        return builder_public(builder)

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
        body: Annotated[BuilderRetirement | None, Body()] = None,
    ) -> BuilderPublic:
        """Retire a builder: it is no longer scheduled and its results are refused; a
        builder enrolled on the ledger is retired there too by the retire transaction
        the operator signed (``farm operator retire``), relayed as it is (the answer
        comes once it is committed)."""
        state = runtime(request)
        body = body or BuilderRetirement()
        publisher = state.publisher
        builder = service.get_builder(session, builder_id)
        tx: bytes | None = None
        if publisher is not None and builder.ledger_index is not None:
            if body.retire_tx is None:
                raise BadRequestError(
                    f"builder {builder_id[:12]} is enrolled on the ledger: retiring it needs "
                    "the retire transaction the operator signed (farm operator retire --key)"
                )
            retire_tx, tx = check_relayed(body.retire_tx, RetireTx, publisher.operators)
            if retire_tx.builder != builder.id:
                raise BadRequestError(
                    f"the retire transaction is for builder {retire_tx.builder[:12]}, "
                    f"not {builder_id[:12]}"
                )
        builder = service.retire(session, builder_id)
        if publisher is not None and tx is not None and builder.ledger_index is not None:
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
