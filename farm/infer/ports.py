"""What inference needs from the outside world: the index, verified downloads, rebuilds.

Small Protocols so the core runs against real PyPI and the real builder image in the
command line, and against plain functions in unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from farm.infer.index import IndexFile, ProjectIndex
from farm.recipe import Recipe

__all__ = ["Downloader", "IndexSource", "Rebuild", "Rebuilder"]


class Downloader(Protocol):
    """Fetch ``url`` and return a local path whose content has ``sha256`` (or raise)."""

    def __call__(self, url: str, sha256: str, label: str, size: int | None) -> Path: ...


class IndexSource(Protocol):
    """A package index: project pages and the core metadata of one file."""

    def project(self, name: str) -> ProjectIndex:
        """Every file of project ``name``; :class:`~farm.infer.errors.InferError` if unknown."""
        ...

    def metadata(self, file: IndexFile) -> str:
        """The core metadata (``METADATA``) of a wheel, verified by digest."""
        ...


@dataclass(frozen=True)
class Rebuild:
    """One hermetic rebuild of a candidate recipe."""

    ok: bool
    failure: str | None
    wheel: Path | None
    """The built wheel (valid until the next rebuild), when the build succeeded."""
    sha256: str | None
    seconds: float
    log_tail: str = ""


class Rebuilder(Protocol):
    """Build ``recipe`` hermetically under ``work`` and report what came out."""

    def __call__(self, recipe: Recipe, work: Path) -> Rebuild: ...
