"""The node's content-addressed blob store on disk.

Layout: ``root/sha256/ab/abcdef…`` (read-only files); downloads in progress live in
``root/tmp`` on the same file system. A blob is published only by :meth:`BlobStore.
writer`'s commit: the bytes hashed while written equal the digest, they are fsynced,
then renamed into place, so a file at a blob's path is always complete and checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType

from api.dist.errors import MirrorError

__all__ = ["BlobStore", "BlobWriter"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobWriter:
    """A blob being written: hashes as it goes; :meth:`commit` publishes it."""

    def __init__(self, store: BlobStore, digest: str, limit: int) -> None:
        self.digest = digest
        self.limit = limit
        self.size = 0
        self._store = store
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix=digest[:16] + ".")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._done = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise :class:`MirrorError` past the declared size."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise MirrorError(
                f"sha256:{self.digest[:12]}…: more than the {self.limit} bytes the builders signed"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> Path:
        """Check the digest and size, fsync, rename into place; return the blob's path."""
        actual = self._hash.hexdigest()
        if actual != self.digest:
            raise MirrorError(f"bytes for sha256:{self.digest[:12]}… hash to {actual[:12]}…")
        if self.size != self.limit:
            raise MirrorError(
                f"sha256:{self.digest[:12]}… is {self.size} bytes, the builders signed {self.limit}"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._store.path_for(self.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.chmod(0o444)
        self._tmp.replace(target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._done = True
        return target

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class BlobStore:
    """Blobs by sha256 under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp_dir.iterdir():  # downloads a crash interrupted
            stale.unlink(missing_ok=True)

    def path_for(self, digest: str) -> Path:
        """Where the blob with this digest is (or would be) kept."""
        if not _HEX64.match(digest):
            raise MirrorError(f"{digest[:80]!r} is not a sha256 hex digest")
        return self.root / "sha256" / digest[:2] / digest

    def size_of(self, digest: str) -> int | None:
        """The stored blob's size, or None if it is not here."""
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return None

    def writer(self, digest: str, size: int) -> BlobWriter:
        """A writer for the blob ``digest`` of exactly ``size`` bytes."""
        self.path_for(digest)
        return BlobWriter(self, digest, size)
