"""Safe extraction of tar (plain, gz, bz2, xz) and zip archives into a fresh directory.

Invariants, whatever the archive holds:

- nothing is written outside ``root``: member names that are absolute or contain ``..``
  are refused, parents are created by us and must be real directories (never a
  symlink), and every file is created with ``O_EXCL | O_NOFOLLOW``, so no member can
  write through an earlier symlink or overwrite an earlier member;
- the tree holds only regular files, directories and symlinks; a symlink whose target
  is absolute or resolves outside ``root`` (checked lexically when made and again on
  the finished tree), a hardlink to anything but an earlier regular file of the tree,
  and device, fifo or unknown members are refused, naming the member;
- total bytes written and the number of members are capped, counted as written (a
  zip or tar bomb stops at the cap, whatever it declares);
- permission bits are normalized to 0o755 (anything executable, and directories) or
  0o644; modification times are the archive's (or ``mtime`` when given), so a tree
  extracted twice is the same tree. Directories the archive does not list get the
  newest member time (the root: the time of the directory stripped into it, if listed).

Every refusal raises :class:`builders.errors.FetchError`. The caller owns ``root`` and
removes it on error.
"""

from __future__ import annotations

import calendar
import os
import posixpath
import stat
import struct
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from builders.errors import FetchError

__all__ = ["ExtractLimits", "extract_archive", "extract_tar_stream", "normalized_parts"]

_CHUNK = 1 << 20
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_DIR_MODE = 0o755
_ZIP_UNIX = 3  # ZipInfo.create_system for Unix
_ZIP_EXT_TIME = 0x5455  # "UT" extra field: Unix times in UTC


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on one extraction."""

    max_bytes: int = 4 * 2**30
    """Total bytes of file content written."""
    max_members: int = 200_000
    """Files, directories and links together."""


def normalized_parts(name: str, what: str = "member") -> tuple[str, ...]:
    """Split an archive path into components; refuse absolute paths and ``..``.

    Empty and ``.`` components are dropped. Raises :class:`FetchError` naming ``name``.
    """
    if "\x00" in name:
        raise FetchError(f"{what} {name!r}: NUL in name refused")
    if name.startswith("/"):
        raise FetchError(f"{what} {name!r}: absolute path refused")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise FetchError(f"{what} {name!r}: '..' in path refused")
    return parts


@dataclass
class _Writer:
    """Creates the tree member by member, enforcing the invariants of this module."""

    root: Path
    strip: int
    limits: ExtractLimits
    mtime: int | None
    written: int = 0
    members: int = 0
    newest: int = 0
    root_time: int | None = None
    dir_times: dict[tuple[str, ...], int] = field(default_factory=dict)
    made_dirs: set[tuple[str, ...]] = field(default_factory=set)
    links: list[tuple[str, Path]] = field(default_factory=list)

    def target(self, name: str) -> tuple[str, ...] | None:
        """Components of ``name`` after stripping, or None when nothing is left."""
        parts = normalized_parts(name)
        parts = parts[self.strip :]
        return parts or None

    def _count(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise FetchError(
                f"member {name!r}: archive has more than {self.limits.max_members} members"
            )

    def _time(self, mtime: float) -> int:
        t = self.mtime if self.mtime is not None else max(0, int(mtime))
        self.newest = max(self.newest, t)
        return t

    def _parent(self, name: str, parts: tuple[str, ...]) -> Path:
        """Make every parent of ``parts`` as a real directory; return the parent path."""
        path = self.root
        for i, part in enumerate(parts[:-1]):
            path = path / part
            try:
                st = path.lstat()
            except FileNotFoundError:
                path.mkdir(mode=_DIR_MODE)
                self.made_dirs.add(parts[: i + 1])
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise FetchError(
                    f"member {name!r}: parent {'/'.join(parts[: i + 1])} is not a directory"
                )
        return path

    def directory(self, name: str, mtime: float) -> None:
        parts = self.target(name)
        if parts is None:
            if len(normalized_parts(name)) == self.strip:  # the directory that becomes root
                self.root_time = self._time(mtime)
            return
        self._count(name)
        path = self._parent(name, parts) / parts[-1]
        try:
            st = path.lstat()
        except FileNotFoundError:
            path.mkdir(mode=_DIR_MODE)
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise FetchError(f"member {name!r}: a non-directory of that name exists")
        self.made_dirs.add(parts)
        self.dir_times[parts] = self._time(mtime)

    def file(self, name: str, data: IO[bytes], mode: int, mtime: float) -> None:
        parts = self.target(name)
        if parts is None:
            return
        self._count(name)
        path = self._parent(name, parts) / parts[-1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, _FILE_MODE)
        except FileExistsError:
            raise FetchError(f"member {name!r}: appears twice in the archive") from None
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(_CHUNK):
                self.written += len(chunk)
                if self.written > self.limits.max_bytes:
                    raise FetchError(
                        f"member {name!r}: archive expands beyond {self.limits.max_bytes} bytes"
                    )
                out.write(chunk)
        path.chmod(_EXEC_MODE if mode & 0o111 else _FILE_MODE)
        t = self._time(mtime)
        os.utime(path, (t, t), follow_symlinks=False)

    def symlink(self, name: str, link_target: str, mtime: float) -> None:
        parts = self.target(name)
        if parts is None:
            return
        self._count(name)
        if not link_target or link_target.startswith("/") or "\x00" in link_target:
            raise FetchError(f"member {name!r}: symlink to {link_target!r} refused (absolute)")
        resolved = posixpath.normpath(
            posixpath.join(*parts[:-1], link_target) if parts[:-1] else link_target
        )
        if resolved == ".." or resolved.startswith("../"):
            raise FetchError(f"member {name!r}: symlink to {link_target!r} points outside the tree")
        path = self._parent(name, parts) / parts[-1]
        try:
            path.symlink_to(link_target)
        except FileExistsError:
            raise FetchError(f"member {name!r}: appears twice in the archive") from None
        t = self._time(mtime)
        os.utime(path, (t, t), follow_symlinks=False)
        self.links.append((name, path))

    def hardlink(self, name: str, link_target: str, mtime: float) -> None:
        parts = self.target(name)
        if parts is None:
            return
        self._count(name)
        source = normalized_parts(link_target, f"hardlink target of {name!r}")[self.strip :]
        if not source:
            raise FetchError(f"member {name!r}: hardlink to {link_target!r} outside the tree")
        src = self.root.joinpath(*source)
        # The source must be a regular file we wrote, reached through real directories.
        for i in range(1, len(source)):
            if source[:i] not in self.made_dirs:
                raise FetchError(f"member {name!r}: hardlink to {link_target!r} refused")
        try:
            st = src.lstat()
        except FileNotFoundError:
            raise FetchError(
                f"member {name!r}: hardlink to {link_target!r}, which is not in the tree"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise FetchError(f"member {name!r}: hardlink to {link_target!r}, not a regular file")
        path = self._parent(name, parts) / parts[-1]
        try:
            os.link(src, path, follow_symlinks=False)
        except FileExistsError:
            raise FetchError(f"member {name!r}: appears twice in the archive") from None
        self._time(mtime)

    def finish(self) -> None:
        """Check every symlink on the finished tree; set directory modes and times."""
        real_root = os.path.realpath(self.root)
        for name, path in self.links:
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(real_root + os.sep):
                raise FetchError(f"member {name!r}: symlink resolves outside the tree")
        # Deepest first, so setting a directory's time is not undone by its children.
        for parts in sorted(self.made_dirs, key=len, reverse=True):
            path = self.root.joinpath(*parts)
            path.chmod(_DIR_MODE)
            t = self.dir_times.get(parts, self.mtime if self.mtime is not None else self.newest)
            os.utime(path, (t, t), follow_symlinks=False)
        self.root.chmod(_DIR_MODE)
        t = self.root_time if self.root_time is not None else self.newest
        os.utime(self.root, (t, t), follow_symlinks=False)


def _tar_members(tf: tarfile.TarFile, writer: _Writer) -> None:
    for member in tf:
        if member.isdir():
            writer.directory(member.name, member.mtime)
        elif member.isreg():
            data = tf.extractfile(member)
            if data is None:  # pragma: no cover - isreg() members always have data
                raise FetchError(f"member {member.name!r}: unreadable")
            with data:
                writer.file(member.name, data, member.mode, member.mtime)
        elif member.issym():
            writer.symlink(member.name, member.linkname, member.mtime)
        elif member.islnk():
            writer.hardlink(member.name, member.linkname, member.mtime)
        elif member.ischr() or member.isblk():
            raise FetchError(f"member {member.name!r}: device file refused")
        elif member.isfifo():
            raise FetchError(f"member {member.name!r}: fifo refused")
        else:
            raise FetchError(f"member {member.name!r}: unknown member type {member.type!r} refused")


def extract_tar_stream(
    stream: BinaryIO,
    root: Path,
    *,
    strip_components: int = 0,
    limits: ExtractLimits | None = None,
    mtime: int | None = None,
) -> None:
    """Extract a (possibly compressed) tar read sequentially from ``stream`` into ``root``.

    ``root`` must exist and be empty. ``mtime``, when given, replaces every member's
    time. Raises :class:`FetchError` on any refused member or unreadable archive.
    """
    writer = _Writer(root, strip_components, limits or ExtractLimits(), mtime)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            _tar_members(tf, writer)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"cannot extract tar archive: {exc}") from None
    writer.finish()


def _zip_mtime(info: zipfile.ZipInfo) -> int:
    """A zip member's time: the UTC ``UT`` extra field if present, else the DOS time as UTC."""
    extra = info.extra
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + size]
        if tag == _ZIP_EXT_TIME and len(body) >= 5 and body[0] & 1:
            return int(struct.unpack_from("<i", body, 1)[0])
        i += 4 + size
    return calendar.timegm((*info.date_time, 0, 0, 0))


def _zip_members(zf: zipfile.ZipFile, writer: _Writer) -> None:
    for info in zf.infolist():
        unix_mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
        kind = stat.S_IFMT(unix_mode)
        mtime = _zip_mtime(info)
        if info.is_dir() or kind == stat.S_IFDIR:
            writer.directory(info.filename, mtime)
        elif kind == stat.S_IFLNK:
            if info.file_size > 4096:
                raise FetchError(f"member {info.filename!r}: symlink target too long")
            target = zf.read(info).decode("utf-8", "surrogateescape")
            writer.symlink(info.filename, target, mtime)
        elif kind in (0, stat.S_IFREG):
            with zf.open(info) as data:
                writer.file(info.filename, data, unix_mode, mtime)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            raise FetchError(f"member {info.filename!r}: device file refused")
        else:
            raise FetchError(f"member {info.filename!r}: special file (mode {kind:o}) refused")


def _sniff(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise FetchError(f"{path.name}: zstd-compressed archives are not supported")
    raise FetchError(f"{path.name}: not a tar (gz, bz2, xz) or zip archive")


def extract_archive(
    archive: Path,
    root: Path,
    *,
    strip_components: int = 0,
    limits: ExtractLimits | None = None,
    mtime: int | None = None,
) -> None:
    """Extract the tar or zip file ``archive`` into the existing, empty ``root``.

    The format is recognised from the content, not the name. Raises
    :class:`FetchError` naming the member on any refusal.
    """
    kind = _sniff(archive)
    if kind == "tar":
        with archive.open("rb") as f:
            extract_tar_stream(
                f, root, strip_components=strip_components, limits=limits, mtime=mtime
            )
        return
    writer = _Writer(root, strip_components, limits or ExtractLimits(), mtime)
    try:
        with zipfile.ZipFile(archive) as zf:
            _zip_members(zf, writer)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise FetchError(f"cannot extract zip archive {archive.name}: {exc}") from None
    writer.finish()
