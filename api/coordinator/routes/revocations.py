"""Revocations: an operator signs a revoke transaction, the coordinator relays it, the
ledger commits it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request

from api.coordinator.deps import (
    Limit,
    Offset,
    SessionDep,
    operator_name,
    runtime,
)
from farm.coordinator import revocations
from farm.coordinator.errors import (
    ConflictError,
)
from farm.coordinator.models import (
    RevocationCreate,
    RevocationPage,
    RevocationPublic,
)
from farm.coordinator.operator_txs import check_relayed
from farm.transactions import RevokeTx

__all__ = ["add_routes"]

Sha256 = Annotated[str, Query(pattern="^(sha256:)?[0-9a-f]{64}$", description="Artifact sha256.")]


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

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
        operator: Annotated[str, Depends(operator_name)],
    ) -> RevocationPublic:
        """Revoke an attested artifact (operator): the body carries the revoke
        transaction the operator signed (``farm revoke --key``); the coordinator checks
        it is signed by a genesis operator for this ledger and relays it. The answer is
        ``pending`` until the ledger commits (or refuses) it, see
        ``GET /v1/revocations/{id}``."""
        state = runtime(request)
        if state.publisher is None:
            raise ConflictError("this coordinator has no ledger (farm serve --ledger)")
        publisher = state.publisher
        tx, data = check_relayed(body.tx, RevokeTx, publisher.operators)
        row = revocations.request_revocation(session, tx, data, operator, state.clock())
        publisher.wake()
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
