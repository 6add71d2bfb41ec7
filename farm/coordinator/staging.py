"""The coordinator's staging store: uploaded outputs, content-addressed on disk.

Layout: ``root/sha256/ab/abcdef…``; partial uploads live in ``root/tmp`` on the same
file system and are published by an atomic rename only once their sha256 equals the
digest they were uploaded under. A stored blob is re-hashed when a result names it
(:meth:`Staging.verify`), so a blob changed on disk is caught, not trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from farm.coordinator.errors import NotFoundError, StagingError

__all__ = ["Staging", "check_digest"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """``digest`` if it is 64 lowercase hex characters; else :class:`StagingError`."""
    if not _HEX64.match(digest):
        raise StagingError(f"{digest[:80]!r} is not a sha256 hex digest")
    return digest


class Staging:
    """Blobs stored by sha256 under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        """Where the blob with this digest is (or would be) stored."""
        check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        return self.path_for(digest).is_file()

    def put(self, digest: str, data: bytes) -> int:
        """Store ``data`` under ``digest``; refuse it unless its sha256 is ``digest``."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != check_digest(digest):
            raise StagingError(f"uploaded bytes have sha256 {actual}, not {digest}")
        target = self.path_for(digest)
        if target.is_file():
            return len(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).chmod(0o444)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(data)

    def verify(self, digest: str) -> int:
        """Re-hash the stored blob; return its size, or raise if absent or changed."""
        path = self.path_for(digest)
        h = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise NotFoundError(f"sha256:{digest} was not uploaded to staging") from None
        if h.hexdigest() != digest:
            raise StagingError(f"staged blob sha256:{digest} no longer has that digest")
        return size
