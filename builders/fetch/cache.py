"""The fetcher's cache directory: verified downloads, index records and git mirrors.

Layout (a stored format, shared by every fetcher process on one host)::

    blobs/sha256/<hex>                       a verified download, read-only
    pypi/<project>/<version>/<hex>           what the index called that file
    git/<sha256 of url>.git (+ .lock)        a bare mirror per URL, fetched under a lock
    tmp/                                     files being written

Every file is written to ``tmp`` and renamed into place; a cached blob is re-hashed
before use, so a damaged cache is refetched, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from builders.errors import FetchError

__all__ = ["FIXED_MTIME", "FetchCache", "mirror_name"]

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Time given to cached blobs and dependency files (1980-01-01, the zip epoch).
FIXED_MTIME = 315532800


def mirror_name(url: str) -> str:
    """Directory name of the cached bare mirror of ``url``."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + ".git"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if absent), across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".rec-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class FetchCache:
    """The cache under ``root`` (its directories are made if absent)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        for sub in ("blobs/sha256", "pypi", "git", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this sha256 is (or would be) kept; :class:`FetchError`
        for a malformed digest."""
        if not _HEX64.match(sha256):
            raise FetchError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / "blobs" / "sha256" / sha256

    def cached_blob(self, sha256: str) -> Path | None:
        """The cached blob if it is there and still has its digest (a damaged one is
        removed), else None."""
        path = self.blob_path(sha256)
        if not path.is_file():
            return None
        actual = _sha256_path(path)
        if actual != sha256:
            log.warning("cached blob %s has sha256 %s; removing it", path, actual)
            path.unlink(missing_ok=True)
            return None
        return path

    def publish_blob(self, tmp: Path, sha256: str) -> Path:
        """Make the verified download ``tmp`` (in :attr:`tmp_dir`) the blob ``sha256``."""
        path = self.blob_path(sha256)
        tmp.chmod(0o444)
        os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
        tmp.replace(path)
        return path

    def write_record(self, path: Path, data: bytes) -> None:
        """Write a small record file atomically."""
        _write_atomic(path, data, self.tmp_dir)

    def mirror_path(self, url: str) -> Path:
        """Where the bare git mirror of ``url`` is (or would be) kept."""
        return self.root / "git" / mirror_name(url)

    @staticmethod
    def locked(path: Path) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on ``path`` across processes, for the ``with`` block."""
        return _locked(path)
