"""Attestations committed to the ledger, with their inclusion proofs."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.coordinator.deps import (
    Limit,
    Offset,
    SessionDep,
)
from farm.coordinator import attestations
from farm.coordinator.models import (
    AttestationPage,
    AttestationPublic,
)

__all__ = ["add_routes"]


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

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
