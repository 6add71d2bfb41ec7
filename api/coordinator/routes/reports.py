"""Diffoscope reports: listed per build, served as HTML (sandboxed) and JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path
from fastapi.responses import FileResponse

from api.coordinator.deps import (
    SessionDep,
)
from farm.coordinator import reports, service
from farm.coordinator.models import (
    DiffReportPublic,
)

__all__ = ["add_routes"]

ReportId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A diffoscope report's id.")]


REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def add_routes(app: FastAPI) -> None:
    """Register these routes on ``app``."""

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
