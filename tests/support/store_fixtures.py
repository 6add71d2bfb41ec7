"""A content store written the way every release before the shared store wrote one."""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_old_layout(root: Path, data: bytes) -> str:
    """Store ``data`` under ``root`` by hand, in the ``sha256/ab/abcdef…`` layout."""
    digest = hashlib.sha256(data).hexdigest()
    path = root / "sha256" / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o444)
    return digest
