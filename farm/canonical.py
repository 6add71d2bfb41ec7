"""Canonical bytes and digests.

Invariant: the same JSON value always gives the same bytes (RFC 8785, JSON
Canonicalization Scheme), so a digest names a value, not a serialization.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, BinaryIO

import rfc8785

__all__ = [
    "SHA256_RE",
    "canonical_json",
    "digest_str",
    "sha256_bytes",
    "sha256_file",
    "sha256_stream",
]

#: A digest string as farm writes it everywhere: ``sha256:`` and 64 lowercase hex digits.
SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical encoding of a JSON-compatible value."""
    return rfc8785.dumps(value)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Hex sha256 of everything readable from ``stream``."""
    h = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with path.open("rb") as f:
        return sha256_stream(f)


def digest_str(hex_digest: str) -> str:
    """``sha256:<hex>`` form of a hex digest."""
    return f"sha256:{hex_digest}"
