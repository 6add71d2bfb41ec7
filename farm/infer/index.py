"""The package index as values: PEP 691 JSON project pages, with PEP 700 upload times.

Pure: takes decoded JSON, returns frozen values. The index *as of* a moment is the
files whose ``upload-time`` is not later than it (files without an upload time are
treated as unknown and left out of an as-of view, fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from farm.infer.errors import InferError

__all__ = [
    "IndexFile",
    "ProjectIndex",
    "parse_project",
    "parse_upload_time",
]


def parse_upload_time(value: object) -> datetime | None:
    """PEP 700 ``upload-time`` (ISO 8601, ``Z`` suffix) as an aware UTC datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class IndexFile:
    """One file of a project as the simple API lists it."""

    filename: str
    url: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    yanked: bool
    requires_python: str | None
    metadata_sha256: str | None
    """sha256 of the PEP 658 core metadata file (``url + '.metadata'``), if served."""
    version: Version
    kind: str
    """``wheel`` or ``sdist``."""
    tags: frozenset[str] = frozenset()
    """Wheel tags as ``interpreter-abi-platform`` strings (empty for an sdist)."""

    @property
    def pure(self) -> bool:
        """A wheel any Python 3 on any platform can install."""
        return self.kind == "wheel" and any(
            t.split("-")[0] in ("py3", "py2.py3") or t.startswith("py3")
            for t in self.tags
            if t.endswith("-none-any")
        )


def _classify(filename: str) -> tuple[str, Version, frozenset[str]] | None:
    try:
        if filename.endswith(".whl"):
            _name, version, _build, tags = parse_wheel_filename(filename)
            return "wheel", version, frozenset(str(t) for t in tags)
        if filename.endswith((".tar.gz", ".zip")):
            _name, version = parse_sdist_filename(filename)
            return "sdist", version, frozenset()
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def _metadata_hash(entry: dict[str, object]) -> str | None:
    for key in ("core-metadata", "data-dist-info-metadata"):
        value = entry.get(key)
        if isinstance(value, dict):
            sha = value.get("sha256")
            if isinstance(sha, str):
                return sha.lower()
    return None


@dataclass(frozen=True)
class ProjectIndex:
    """Every (well-formed, wheel or sdist) file of one project."""

    name: str
    files: tuple[IndexFile, ...]

    def release(self, version: str) -> tuple[IndexFile, ...]:
        """The files of exactly ``version`` (compared as PEP 440 versions)."""
        try:
            wanted = Version(version)
        except InvalidVersion:
            raise InferError(f"{version!r} is not a PEP 440 version", "bad-request") from None
        return tuple(f for f in self.files if f.version == wanted)

    def as_of(self, moment: datetime) -> ProjectIndex:
        """The index as it was at ``moment``: files uploaded by then, not yanked now."""
        return ProjectIndex(
            self.name,
            tuple(
                f
                for f in self.files
                if f.upload_time is not None and f.upload_time <= moment and not f.yanked
            ),
        )

    def versions(self) -> list[Version]:
        """Distinct versions, newest first."""
        return sorted({f.version for f in self.files}, reverse=True)


def parse_project(doc: object, page_url: str) -> ProjectIndex:
    """A PEP 691 project page (decoded JSON) as a :class:`ProjectIndex`.

    Relative file URLs are resolved against ``page_url``; entries without a sha256, or
    whose file names are neither a wheel nor an sdist, are skipped (only files pinned
    by digest are ever used).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InferError(f"{page_url}: not a PEP 691 project page", "index")
    name = doc.get("name")
    base = httpx.URL(page_url)
    files: list[IndexFile] = []
    for entry in doc["files"]:
        if not isinstance(entry, dict):
            continue
        filename, url, hashes = entry.get("filename"), entry.get("url"), entry.get("hashes")
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if not (isinstance(filename, str) and isinstance(url, str) and isinstance(sha, str)):
            continue
        kind = _classify(filename)
        if kind is None:
            continue
        size = entry.get("size")
        rp = entry.get("requires-python")
        files.append(
            IndexFile(
                filename=filename,
                url=str(base.join(url)),
                sha256=sha.lower(),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                upload_time=parse_upload_time(entry.get("upload-time")),
                yanked=bool(entry.get("yanked", False)),
                requires_python=rp if isinstance(rp, str) and rp.strip() else None,
                metadata_sha256=_metadata_hash(entry),
                version=kind[1],
                kind=kind[0],
                tags=kind[2],
            )
        )
    return ProjectIndex(
        canonicalize_name(name if isinstance(name, str) else page_url.rstrip("/").rsplit("/")[-1]),
        tuple(files),
    )


def newest_first(files: Iterable[IndexFile]) -> Sequence[IndexFile]:
    """Files sorted by version, newest first (stable for equal versions)."""
    return sorted(files, key=lambda f: f.version, reverse=True)
