"""Errors of the coordinator, rooted at :class:`farm.errors.FarmError`.

The tree::

    CoordinatorError
    ├── NotFoundError            no such builder, build or blob
    ├── AuthenticationError      no credentials, or credentials that do not verify
    ├── PermissionDeniedError    valid credentials that may not do this (builder not approved)
    ├── EnrollmentError          an enrollment token that is unknown, used or expired
    ├── ConflictError            the request contradicts what is already recorded
    ├── StagingError             an upload whose bytes are not what its digest says
    ├── ResultRefusedError       a builder result refused; the reason is recorded
    ├── BadRequestError          a well-formed request that cannot be answered as asked
    └── LedgerUnavailableError   no ledger validator answered a read

The API maps each to one HTTP status (``api.coordinator.app``), the CLI to one line.
"""

from __future__ import annotations

from farm.errors import FarmError

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CoordinatorError",
    "EnrollmentError",
    "LedgerUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResultRefusedError",
    "StagingError",
]


class CoordinatorError(FarmError):
    """Root of the coordinator's errors."""


class NotFoundError(CoordinatorError):
    """No such builder, build or staged blob."""


class AuthenticationError(CoordinatorError):
    """Missing credentials, or credentials that do not verify."""


class PermissionDeniedError(CoordinatorError):
    """Valid credentials that may not do this, e.g. a builder not yet approved."""


class EnrollmentError(CoordinatorError):
    """An enrollment token that is unknown, already used or expired."""


class ConflictError(CoordinatorError):
    """A request that contradicts what is already recorded."""


class StagingError(CoordinatorError):
    """An upload whose bytes do not match its digest, or that is too large."""


class ResultRefusedError(CoordinatorError):
    """A builder result that was refused; the refusal and its reason are recorded."""

    def __init__(self, reason: str, result_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result_id = result_id


class BadRequestError(CoordinatorError):
    """A well-formed request that cannot be answered as asked (e.g. a proof past the log)."""


class LedgerUnavailableError(CoordinatorError):
    """No ledger validator answered (unreachable, busy, or answering nonsense)."""
