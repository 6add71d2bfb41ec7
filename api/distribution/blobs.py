"""The node's content-addressed blob store on disk.

It is a :class:`farm.content_store.ContentStore` (``root/sha256/ab/abcdef…``,
read-only files; downloads in progress in ``root/tmp`` on the same file system, left
over ones removed when the store opens). A blob is published only by
:meth:`BlobWriter.commit`: the bytes hashed while written equal the digest and are
exactly as long as the builders signed, they are fsynced, then renamed into place
(replacing a damaged copy), so a file at a blob's path is always complete and checked.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from api.distribution.errors import MirrorError
from farm.content_store import ContentStore, ContentWriter, is_sha256_hex

__all__ = ["BlobStore", "BlobWriter"]


class BlobWriter:
    """A blob being written: hashes as it goes; :meth:`commit` publishes it."""

    def __init__(self, store: BlobStore, digest: str, limit: int) -> None:
        self.digest = digest
        self.limit = limit
        self._writer: ContentWriter = store.new_writer(f"sha256:{digest}")

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._writer.size

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise :class:`MirrorError` past the declared size."""
        if self.size + len(chunk) > self.limit:
            raise MirrorError(
                f"sha256:{self.digest[:12]}…: more than the {self.limit} bytes the builders signed"
            )
        self._writer.write(chunk)

    def commit(self) -> Path:
        """Check the digest and size, fsync, rename into place; return the blob's path."""
        actual = self._writer.hexdigest()
        if actual != self.digest:
            raise MirrorError(f"bytes for sha256:{self.digest[:12]}… hash to {actual[:12]}…")
        if self.size != self.limit:
            raise MirrorError(
                f"sha256:{self.digest[:12]}… is {self.size} bytes, the builders signed {self.limit}"
            )
        return self._writer.commit(self.digest, replace=True)

    def abort(self) -> None:
        """Drop the partial file."""
        self._writer.abort()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.__exit__(kind, exc, tb)


class BlobStore(ContentStore):
    """Blobs by sha256 under one directory."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.clear_tmp()  # downloads a crash interrupted

    def path_for(self, digest: str) -> Path:
        """Where the blob with this digest is (or would be) kept."""
        if not is_sha256_hex(digest):
            raise MirrorError(f"{digest[:80]!r} is not a sha256 hex digest")
        return super().path_for(digest)

    def writer(self, digest: str, size: int) -> BlobWriter:
        """A writer for the blob ``digest`` of exactly ``size`` bytes."""
        self.path_for(digest)
        return BlobWriter(self, digest, size)
