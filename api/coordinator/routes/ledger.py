"""The ledger's checkpoint, proofs and status, relayed from its validators."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request

from api.coordinator.deps import (
    runtime,
)
from farm.coordinator.errors import (
    BadRequestError,
    ConflictError,
)
from farm.coordinator.ledger_client import LedgerClient
from farm.coordinator.models import (
    ConsistencyProofPublic,
    InclusionProofPublic,
    LedgerCheckpointPublic,
    LedgerStatusPublic,
)

__all__ = ["add_routes"]

LogIndex = Annotated[int, Query(ge=0, le=2**53, description="Log index.")]


LogSize = Annotated[int, Query(ge=0, le=2**53, description="Tree size.")]


def _ledger(request: Request) -> LedgerClient:
    client = runtime(request).ledger
    if client is None:
        raise ConflictError("this coordinator has no ledger (farm serve --ledger)")
    return client


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

    @app.get("/v1/ledger/checkpoint", response_model=LedgerCheckpointPublic, tags=["ledger"])
    def checkpoint(request: Request) -> LedgerCheckpointPublic:
        """The latest checkpoint co-signed by the validators (a signed note)."""
        return _ledger(request).read("/v1/checkpoint", LedgerCheckpointPublic)

    @app.get("/v1/ledger/proofs/inclusion", response_model=InclusionProofPublic, tags=["ledger"])
    def inclusion(request: Request, index: LogIndex, size: LogSize) -> InclusionProofPublic:
        """Inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        if not index < size:
            raise BadRequestError(f"need index < size (index {index}, size {size})")
        params = {"index": index, "size": size}
        return _ledger(request).read("/v1/proofs/inclusion", InclusionProofPublic, params)

    @app.get(
        "/v1/ledger/proofs/consistency", response_model=ConsistencyProofPublic, tags=["ledger"]
    )
    def consistency(request: Request, old: LogSize, new: LogSize) -> ConsistencyProofPublic:
        """Consistency proof between the trees of ``old`` and ``new`` entries."""
        if not old <= new:
            raise BadRequestError(f"need old <= new (old {old}, new {new})")
        params = {"old": old, "new": new}
        return _ledger(request).read("/v1/proofs/consistency", ConsistencyProofPublic, params)

    @app.get("/v1/ledger/status", response_model=LedgerStatusPublic, tags=["ledger"])
    def ledger_status(request: Request) -> LedgerStatusPublic:
        """The ledger's height and log size, as the first validator to answer sees them."""
        return _ledger(request).read("/v1/status", LedgerStatusPublic)
