"""The staging store: builders upload outputs by digest; anyone reads them back."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse

from api.coordinator.deps import (
    BuilderDep,
    SessionDep,
    approved,
    runtime,
)
from farm.coordinator import service
from farm.coordinator.errors import (
    NotFoundError,
)

__all__ = ["add_routes"]


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

    @app.put("/v1/staging/sha256/{digest}", status_code=201, tags=["staging"])
    def upload(
        request: Request, digest: str, caller: BuilderDep, session: SessionDep
    ) -> dict[str, Any]:
        """Stage an output; the body's sha256 must equal ``digest``."""
        approved(caller)
        state = runtime(request)
        blob = service.record_upload(
            session, state.staging, caller.builder_id, digest, caller.body, state.clock()
        )
        return {"sha256": blob.sha256, "size": blob.size}

    @app.get("/v1/staging/sha256/{digest}", response_class=FileResponse, tags=["staging"])
    def download(request: Request, digest: str) -> FileResponse:
        """A staged blob's bytes (public: readers check them against the digest)."""
        staging = runtime(request).staging
        if not staging.has(digest):
            raise NotFoundError(f"sha256:{digest} is not in staging")
        return FileResponse(staging.path_for(digest), media_type="application/octet-stream")
