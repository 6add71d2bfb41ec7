"""How farm's errors become HTTP answers: one body shape, ``{"error": {"code", "message"}}``,
and :data:`ERROR_STATUS`, the one map from farm's errors to statuses.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import error_response
from farm.coordinator.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EnrollmentError,
    LedgerUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.errors import ConfigError, FarmError, QuorumError, RecipeError, SignatureError

log = logging.getLogger(__name__)

__all__ = ["ERROR_STATUS", "install_error_handlers", "status_of"]

ERROR_STATUS: dict[type[FarmError], tuple[int, str]] = {
    NotFoundError: (404, "not_found"),
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    EnrollmentError: (403, "enrollment_refused"),
    ConflictError: (409, "conflict"),
    StagingError: (400, "staging_refused"),
    ResultRefusedError: (422, "result_refused"),
    SignatureError: (422, "bad_signature"),
    RecipeError: (422, "bad_recipe"),
    QuorumError: (409, "no_quorum"),
    BadRequestError: (400, "bad_request"),
    LedgerUnavailableError: (503, "ledger_unavailable"),
    ConfigError: (500, "misconfigured"),
    FarmError: (400, "bad_request"),
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, code, message, headers)


def status_of(exc: FarmError) -> tuple[int, str]:
    """The HTTP status and code of a farm error (by its nearest listed class)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400, "bad_request"


def install_error_handlers(app: FastAPI) -> None:
    async def farm_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FarmError)
        status, code = status_of(exc)
        return _error(status, code, str(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg')}")

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return _error(500, "internal", "internal server error")

    app.add_exception_handler(FarmError, farm_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
