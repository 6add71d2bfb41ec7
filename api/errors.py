"""The one error body of farm's HTTP APIs (coordinator and distribution node)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = ["ERROR_RESPONSES", "ErrorBody", "ErrorDetail", "error_response"]


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine-readable ``code`` and a message for people."""

    code: str = Field(examples=["not_found", "invalid_request", "unauthorized"])
    message: str


class ErrorBody(BaseModel):
    """The body of every error the API answers (4xx and 5xx), whatever the route."""

    error: ErrorDetail


#: Declared on every operation (``FastAPI(responses=...)``), so the OpenAPI names the one
#: error body, and FastAPI's own 422 schema, which these APIs never send, is not published.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused (see error.code)."},
    "5XX": {"model": ErrorBody, "description": "The server or a service it needs failed."},
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error answer in :class:`ErrorBody`'s shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)
