"""The content-addressed store of files on local disk that builders, the coordinator's
staging area and the distribution node's mirror all keep.

Layout: ``root/sha256/ab/abcdef…`` (the full lowercase hex sha256, fanned out by its
first two characters); files being written live in ``root/tmp`` on the same file
system. That layout is a stored format: stores written by earlier releases are read
as they are.

Invariants: a file under ``root/sha256`` has exactly the content its name says (it is
hashed while written, checked against an expected digest when one is given, fsynced,
and only then published by an atomic link or rename, never written in place); it is
read-only (0444) once published; a digest that is not 64 lowercase hex characters
never becomes a path, so no name can reach outside ``root``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from farm.errors import ContentError, DigestMismatchError

__all__ = ["ContentStore", "ContentWriter", "is_sha256_hex"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def is_sha256_hex(digest: str) -> bool:
    """Whether ``digest`` is a sha256 hex digest (64 lowercase hex characters)."""
    return _HEX64.match(digest) is not None


def _check_hex(digest: str) -> str:
    if not is_sha256_hex(digest):
        raise ValueError(
            f"{digest[:80]!r} is not a sha256 hex digest (64 lowercase hex characters)"
        )
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentWriter:
    """Content being written into a store: hashed as it goes, published by :meth:`commit`.

    Used as a context manager, an uncommitted writer drops its partial file on exit.
    """

    def __init__(self, store: ContentStore, what: str) -> None:
        self.size = 0
        self._store = store
        self._what = what
        self._hash = hashlib.sha256()
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="put-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._done = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        """The sha256 hex digest of what was written so far."""
        return self._hash.hexdigest()

    def commit(self, expected: str | None = None, *, replace: bool = False) -> Path:
        """Publish the content under its sha256 and return the stored file's path.

        An object already stored is kept as it is, unless ``replace``: then it is
        atomically replaced (for a caller that found it damaged).

        Raises:
            ValueError: ``expected`` is not a sha256 hex digest.
            DigestMismatchError: the content's sha256 is not ``expected``; nothing is
                stored and the partial file is gone.
        """
        try:
            digest = self.hexdigest()
            if expected is not None and _check_hex(expected) != digest:
                raise DigestMismatchError(self._what, expected, digest)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._tmp.chmod(0o444)
            final = self._store.path_for(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            if replace:
                self._tmp.replace(final)
            else:
                # link, not rename: an object already stored is never replaced
                with contextlib.suppress(FileExistsError):
                    os.link(self._tmp, final)
            _fsync_dir(final.parent)
        finally:
            self.abort()
        self._done = True
        return final

    def abort(self) -> None:
        """Drop the partial file (a no-op once committed)."""
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class ContentStore:
    """Files stored by their sha256, under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects_dir = root / "sha256"
        self.tmp_dir = root / "tmp"

    def path_for(self, digest: str) -> Path:
        """Where the file with this sha256 hex digest is (or would be) stored.

        Raises:
            ValueError: ``digest`` is not 64 lowercase hex characters.
        """
        _check_hex(digest)
        return self.objects_dir / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """Whether content with this sha256 hex digest is stored."""
        return self.path_for(digest).is_file()

    def size_of(self, digest: str) -> int | None:
        """The stored file's size, or None if it is not stored."""
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return None

    def get(self, digest: str) -> Path:
        """The path of the stored file; raise ``KeyError`` if it is not stored."""
        path = self.path_for(digest)
        if not path.is_file():
            raise KeyError(f"sha256:{digest} is not in the store at {self.root}")
        return path

    def open(self, digest: str) -> BinaryIO:
        """The stored file, open for reading; raise ``KeyError`` if it is not stored."""
        try:
            return self.path_for(digest).open("rb")
        except FileNotFoundError:
            raise KeyError(f"sha256:{digest} is not in the store at {self.root}") from None

    def verify(self, digest: str) -> int:
        """Re-hash the stored file and return its size.

        Raises:
            KeyError: it is not stored.
            DigestMismatchError: its content no longer has that digest.
        """
        h = hashlib.sha256()
        size = 0
        with self.open(digest) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        if h.hexdigest() != digest:
            raise DigestMismatchError(f"stored sha256:{digest}", digest, h.hexdigest())
        return size

    def new_writer(self, what: str = "<bytes>") -> ContentWriter:
        """A writer for content whose digest is known once written (``what`` names it
        in errors)."""
        return ContentWriter(self, what)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` and return its sha256 hex digest.

        Raises:
            ValueError: ``expected`` is not a sha256 hex digest.
            DigestMismatchError: ``expected`` is given and is not the sha256 of
                ``data``; nothing is stored.
        """
        if expected is not None:
            _check_hex(expected)
        digest = hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise DigestMismatchError("<bytes>", expected, digest)
        if self.has(digest):  # these very bytes hash to it: nothing to write
            return digest
        with self.new_writer() as writer:
            writer.write(data)
            writer.commit(digest)
        return digest

    def put_file(self, source: Path, expected: str | None = None) -> str:
        """Copy a regular file into the store and return its sha256 hex digest.

        Raises:
            ValueError: ``expected`` is not a sha256 hex digest.
            ContentError: ``source`` cannot be opened, is a symlink, or is not a
                regular file.
            DigestMismatchError: ``expected`` is given and is not the content's
                sha256; nothing is stored.
        """
        if expected is not None:
            _check_hex(expected)
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise ContentError(f"{source}: cannot open for the store: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise ContentError(f"{source}: not a regular file; the store takes only files")
            with self.new_writer(str(source)) as writer:
                while chunk := src.read(_CHUNK):
                    writer.write(chunk)
                writer.commit(expected)
                return writer.hexdigest()

    def clear_tmp(self) -> None:
        """Remove partial files a crash left in ``root/tmp`` (only while no writer runs)."""
        if self.tmp_dir.is_dir():
            for stale in self.tmp_dir.iterdir():
                stale.unlink(missing_ok=True)
