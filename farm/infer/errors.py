"""Errors of recipe inference, rooted at :class:`farm.errors.FarmError`.

The tree::

    FarmError
    └── InferError            inference cannot go on (bad request, index, download, input)
        └── NoMatchError      every candidate was rebuilt and none matched upstream
"""

from __future__ import annotations

from farm.errors import FarmError

__all__ = ["InferError", "NoMatchError"]


class InferError(FarmError):
    """Inference cannot go on; the message names the package and the reason.

    ``cause`` is a short stable tag for the coverage benchmark's counts
    (e.g. ``no-sdist``, ``no-wheel``, ``not-pure``, ``unknown-backend``, ``resolve``).
    """

    def __init__(self, message: str, cause: str = "error") -> None:
        super().__init__(message)
        self.cause = cause


class NoMatchError(InferError):
    """Every candidate was rebuilt and none gave upstream's wheel bit for bit."""
