"""The builder's store of outputs and logs: a :class:`farm.content_store.ContentStore`.

Layout and invariants are the shared store's (``root/sha256/ab/abcdef…``, files hashed
while copied in, published by an atomic link, read-only once published, stored once).
This wrapper only says what a refusal means here: an output the builder cannot keep,
so :class:`OutputError`.
"""

from __future__ import annotations

from pathlib import Path

from builders.errors import OutputError
from farm import content_store
from farm.errors import ContentError

__all__ = ["ContentStore"]


class ContentStore(content_store.ContentStore):
    """Files stored by their sha256, under one root directory."""

    def put(self, source: Path, expected: str | None = None) -> str:
        """Copy a regular file into the store and return its sha256 hex digest.

        ``expected`` (hex), when given, must match the content, else
        :class:`OutputError` and nothing is stored. A symlink or a special file is
        refused with :class:`OutputError`; a malformed ``expected`` with ``ValueError``.
        """
        try:
            return self.put_file(source, expected)
        except ContentError as exc:
            raise OutputError(str(exc)) from None

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` and return its sha256 hex digest (see :meth:`put`)."""
        try:
            return super().put_bytes(data, expected)
        except ContentError as exc:
            raise OutputError(str(exc)) from None
