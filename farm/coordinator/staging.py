"""The coordinator's staging store: uploaded outputs, content-addressed on disk.

It is a :class:`farm.content_store.ContentStore` (``root/sha256/ab/abcdef…``, partial
uploads in ``root/tmp``, published atomically only once their sha256 equals the digest
they were uploaded under). A stored blob is re-hashed when a result names it
(:meth:`Staging.verify`), so a blob changed on disk is caught, not trusted. Refusals
are the coordinator's errors (:class:`StagingError`, :class:`NotFoundError`).
"""

from __future__ import annotations

from pathlib import Path

from farm.content_store import ContentStore, is_sha256_hex
from farm.coordinator.errors import NotFoundError, StagingError
from farm.errors import DigestMismatchError

__all__ = ["Staging", "check_digest"]


def check_digest(digest: str) -> str:
    """``digest`` if it is 64 lowercase hex characters; else :class:`StagingError`."""
    if not is_sha256_hex(digest):
        raise StagingError(f"{digest[:80]!r} is not a sha256 hex digest")
    return digest


class Staging(ContentStore):
    """Blobs stored by sha256 under one root directory."""

    def path_for(self, digest: str) -> Path:
        """Where the blob with this digest is (or would be) stored."""
        return super().path_for(check_digest(digest))

    def put(self, digest: str, data: bytes) -> int:
        """Store ``data`` under ``digest``; refuse it unless its sha256 is ``digest``."""
        try:
            self.put_bytes(data, expected=check_digest(digest))
        except DigestMismatchError as exc:
            raise StagingError(f"uploaded bytes have sha256 {exc.actual}, not {digest}") from None
        return len(data)

    def verify(self, digest: str) -> int:
        """Re-hash the stored blob; return its size, or raise if absent or changed."""
        try:
            return super().verify(check_digest(digest))
        except KeyError:
            raise NotFoundError(f"sha256:{digest} was not uploaded to staging") from None
        except DigestMismatchError:
            raise StagingError(f"staged blob sha256:{digest} no longer has that digest") from None
