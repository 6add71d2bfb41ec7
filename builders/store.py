"""A content-addressed store of files on local disk.

Layout: ``root/sha256/ab/abcdef…`` (the full hex digest, fanned out by its first two
characters); temporary files live in ``root/tmp`` on the same file system.

Invariants: a file under ``root/sha256`` has exactly the content its name says (it is
hashed while copied in, checked against an expected digest when one is given, and
published by an atomic link, never written in place); it is read-only once
published; putting the same content twice stores it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from farm.errors import OutputError

__all__ = ["ContentStore"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def _check_hex(digest: str) -> str:
    if not _HEX64.match(digest):
        raise ValueError(f"{digest!r} is not a sha256 hex digest (64 lowercase hex characters)")
    return digest


class ContentStore:
    """Files stored by their sha256, under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "sha256"
        self._tmp = root / "tmp"

    def path_for(self, digest: str) -> Path:
        """Where the file with this sha256 hex digest is (or would be) stored."""
        _check_hex(digest)
        return self._objects / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """Whether content with this sha256 hex digest is stored."""
        return self.path_for(digest).is_file()

    def get(self, digest: str) -> Path:
        """The path of the stored file; raise ``KeyError`` if it is not stored."""
        path = self.path_for(digest)
        if not path.is_file():
            raise KeyError(f"sha256:{digest} is not in the store at {self.root}")
        return path

    def put(self, source: Path, expected: str | None = None) -> str:
        """Copy a regular file into the store and return its sha256 hex digest.

        ``expected`` (hex), when given, must match the content, else
        :class:`OutputError` and nothing is stored. A symlink or a special file is
        refused with :class:`OutputError`.
        """
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise OutputError(f"{source}: cannot open for the store: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise OutputError(f"{source}: not a regular file; the store takes only files")
            return self._ingest(iter(lambda: src.read(_CHUNK), b""), expected, str(source))

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` and return its sha256 hex digest (see :meth:`put`)."""
        return self._ingest(iter((data,)), expected, "<bytes>")

    def _ingest(self, chunks: Iterator[bytes], expected: str | None, what: str) -> str:
        if expected is not None:
            _check_hex(expected)
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp_path = Path(name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    h.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            digest = h.hexdigest()
            if expected is not None and digest != expected:
                raise OutputError(f"{what}: content is sha256:{digest}, expected sha256:{expected}")
            tmp_path.chmod(0o444)
            final = self.path_for(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            # link, not rename: an object already stored is never replaced
            with contextlib.suppress(FileExistsError):
                os.link(tmp_path, final)
        finally:
            tmp_path.unlink(missing_ok=True)
        return digest
