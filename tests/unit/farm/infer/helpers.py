"""Small in-memory wheels, sdists and index pages for the inference unit tests."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

DT = tuple[int, int, int, int, int, int]


def make_wheel(
    path: Path,
    members: Sequence[tuple[str, bytes, DT]],
    *,
    generator: str | None = "flit 3.9.0",
    wheel_time: DT = (2016, 1, 1, 0, 0, 0),
    dist_info: str = "demo-1.0.dist-info",
    mode: int = 0o644,
) -> Path:
    """A wheel with ``members`` then ``dist_info``/WHEEL (and METADATA, RECORD)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, dt in members:
            info = zipfile.ZipInfo(name, dt)
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
        wheel = "Wheel-Version: 1.0\n" + (f"Generator: {generator}\n" if generator else "")
        for name, data in (
            ("WHEEL", wheel.encode()),
            ("METADATA", b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"),
            ("RECORD", b""),
        ):
            info = zipfile.ZipInfo(f"{dist_info}/{name}", wheel_time)
            info.external_attr = (0o100000 | 0o644) << 16
            zf.writestr(info, data)
    return path


def make_sdist(
    path: Path,
    members: Sequence[tuple[str, bytes, int]],
    *,
    pyproject: str | None = None,
    top: str = "demo-1.0",
) -> Path:
    """A .tar.gz with ``members`` (relative names, mtimes) under ``top/``."""
    with tarfile.open(path, "w:gz") as tf:
        entries = list(members)
        if pyproject is not None:
            entries.append(("pyproject.toml", pyproject.encode(), 1_700_000_000))
        for name, data, mtime in entries:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mtime = mtime
            tf.addfile(info, io.BytesIO(data))
    return path


def file_entry(
    filename: str,
    *,
    sha: str = "a" * 64,
    uploaded: str | None = "2024-01-01T00:00:00.000000Z",
    requires_python: str | None = None,
    metadata_sha: str | None = "b" * 64,
    yanked: bool = False,
    url: str | None = None,
) -> dict[str, object]:
    """One PEP 691 ``files`` entry."""
    entry: dict[str, object] = {
        "filename": filename,
        "url": url or f"https://files.example/{filename}",
        "hashes": {"sha256": sha},
        "yanked": yanked,
    }
    if uploaded is not None:
        entry["upload-time"] = uploaded
    if requires_python is not None:
        entry["requires-python"] = requires_python
    if metadata_sha is not None and filename.endswith(".whl"):
        entry["core-metadata"] = {"sha256": metadata_sha}
    return entry
