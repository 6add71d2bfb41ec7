"""What the two upstream files say about how the wheel was built.

Pure readers over a file path: the wheel's ``WHEEL`` file (its ``Generator:`` line),
its zip members (names, local date-times, modes, CRCs, in archive order); the sdist's
members and their mtimes (top directory stripped, as the builder extracts it) and its
``pyproject.toml`` ``[build-system]``. Nothing is extracted to disk; malformed input
raises :class:`~farm.infer.errors.InferError`.
"""

from __future__ import annotations

import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from farm.infer.errors import InferError

__all__ = [
    "BuildSystem",
    "SdistFacts",
    "WheelFacts",
    "ZipMember",
    "read_sdist",
    "read_wheel",
]

_MAX_SMALL = 4 * 2**20  # bytes of one text member read (pyproject.toml, WHEEL)
#: What pip assumes when an sdist has no [build-system] (PEP 518).
LEGACY_REQUIRES = ("setuptools>=40.8.0", "wheel")


@dataclass(frozen=True)
class ZipMember:
    """One entry of a zip archive, in archive order."""

    name: str
    date_time: tuple[int, int, int, int, int, int]
    mode: int
    crc: int
    size: int


@dataclass(frozen=True)
class WheelFacts:
    """What a wheel tells about its build."""

    filename: str
    generator: str | None
    members: tuple[ZipMember, ...]

    @property
    def dist_info(self) -> str:
        """The ``NAME-VERSION.dist-info`` directory name (empty if none)."""
        for m in self.members:
            top = m.name.split("/", 1)[0]
            if top.endswith(".dist-info"):
                return top
        return ""


@dataclass(frozen=True)
class BuildSystem:
    """An sdist's ``[build-system]`` (PEP 517/518), or pip's legacy default."""

    requires: tuple[str, ...]
    backend: str | None
    backend_path: tuple[str, ...]
    declared: bool
    """False when the sdist has no ``[build-system]`` table and the legacy default applies."""


@dataclass(frozen=True)
class SdistFacts:
    """What an sdist tells: member mtimes (top directory stripped) and its build system."""

    filename: str
    mtimes: dict[str, int]
    build_system: BuildSystem
    has_setup_py: bool

    @property
    def newest_mtime(self) -> int:
        """The newest member mtime (0 for an empty sdist)."""
        return max(self.mtimes.values(), default=0)


def read_wheel(path: Path, filename: str | None = None) -> WheelFacts:
    """Read a wheel's members and its ``Generator:`` line; InferError if it is no wheel."""
    name = filename or path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            members = tuple(
                ZipMember(
                    name=i.filename,
                    date_time=(
                        i.date_time[0],
                        i.date_time[1],
                        i.date_time[2],
                        i.date_time[3],
                        i.date_time[4],
                        i.date_time[5],
                    ),
                    mode=(i.external_attr >> 16) & 0o177777,
                    crc=i.CRC,
                    size=i.file_size,
                )
                for i in infos
            )
            generator = None
            for info in infos:
                parts = info.filename.split("/")
                if (
                    len(parts) == 2
                    and parts[0].endswith(".dist-info")
                    and parts[1] == "WHEEL"
                    and info.file_size <= _MAX_SMALL
                ):
                    text = zf.read(info).decode("utf-8", "replace")
                    for line in text.splitlines():
                        if line.lower().startswith("generator:"):
                            generator = line.split(":", 1)[1].strip()
                            break
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InferError(f"{name}: not a readable wheel ({exc})", "bad-wheel") from None
    return WheelFacts(filename=name, generator=generator, members=members)


def _parse_build_system(text: str | None, origin: str) -> BuildSystem:
    legacy = BuildSystem(LEGACY_REQUIRES, None, (), declared=False)
    if text is None:
        return legacy
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InferError(f"{origin}: pyproject.toml is not TOML ({exc})", "bad-sdist") from None
    table = doc.get("build-system")
    if not isinstance(table, dict):
        return legacy
    requires = table.get("requires", [])
    backend = table.get("build-backend")
    path = table.get("backend-path", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)):
        raise InferError(f"{origin}: [build-system] requires is not a list of strings", "bad-sdist")
    return BuildSystem(
        requires=tuple(requires),
        backend=backend if isinstance(backend, str) else None,
        backend_path=tuple(p for p in path if isinstance(p, str)) if isinstance(path, list) else (),
        declared=True,
    )


def _strip_top(name: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) < 2:
        return None
    return "/".join(parts[1:])


def read_sdist(path: Path, filename: str | None = None) -> SdistFacts:
    """Read an sdist (``.tar.gz`` or ``.zip``): member mtimes and ``[build-system]``."""
    name = filename or path.name
    mtimes: dict[str, int] = {}
    pyproject: str | None = None
    try:
        if name.endswith(".zip"):
            import calendar

            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    rel = _strip_top(info.filename)
                    if rel is None or info.is_dir():
                        continue
                    mtimes[rel] = calendar.timegm((*info.date_time, 0, 0, 0))
                    if rel == "pyproject.toml" and info.file_size <= _MAX_SMALL:
                        pyproject = zf.read(info).decode("utf-8", "replace")
        else:
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    rel = _strip_top(member.name)
                    if rel is None or not member.isfile():
                        continue
                    mtimes[rel] = int(member.mtime)
                    if rel == "pyproject.toml" and member.size <= _MAX_SMALL:
                        handle = tf.extractfile(member)
                        if handle is not None:
                            pyproject = handle.read().decode("utf-8", "replace")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InferError(f"{name}: not a readable sdist ({exc})", "bad-sdist") from None
    return SdistFacts(
        filename=name,
        mtimes=mtimes,
        build_system=_parse_build_system(pyproject, name),
        has_setup_py="setup.py" in mtimes,
    )
