"""Signing keys: Ed25519, stored as PKCS#8 PEM with 0600 permissions.

A key's id is the securesystemslib key id (sha256 of its canonical public form), so
an id names exactly one public key; a builder's id is its key's id.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

from farm.errors import SigningKeyError

__all__ = [
    "KeyPair",
    "generate_key",
    "load_key",
    "load_public_key",
    "public_key_from_dict",
    "save_key",
]


@dataclass(frozen=True)
class KeyPair:
    """A private key with its signer and public key."""

    private: ed25519.Ed25519PrivateKey

    @property
    def signer(self) -> CryptoSigner:
        """A securesystemslib signer over this key."""
        return CryptoSigner(self.private)

    @property
    def public(self) -> SSlibKey:
        """The public key as securesystemslib models it."""
        key: SSlibKey = self.signer.public_key
        return key

    @property
    def keyid(self) -> str:
        """Hex key id derived from the public key."""
        return str(self.public.keyid)

    def public_dict(self) -> dict[str, Any]:
        """JSON form of the public key (what is enrolled and published)."""
        return {"keyid": self.keyid, **self.public.to_dict()}


def generate_key() -> KeyPair:
    """A fresh Ed25519 key."""
    return KeyPair(ed25519.Ed25519PrivateKey.generate())


def save_key(key: KeyPair, path: Path, *, overwrite: bool = False) -> None:
    """Write the private key to ``path`` with mode 0600; never replace one unless told."""
    if path.exists() and not overwrite:
        raise SigningKeyError(f"{path}: a key is already there; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def load_key(path: Path) -> KeyPair:
    """Read a private key written by :func:`save_key`; refuse one others can read."""
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"{path}: no key there (create one with `farm builder init`)"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read key: {exc.strerror}") from None
    if mode & 0o077:
        raise SigningKeyError(f"{path}: key is readable by others (mode {mode:o}); chmod 600 it")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path}: not a usable private key: {exc}") from None
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: farm keys are Ed25519")
    return KeyPair(private)


def public_key_from_dict(data: dict[str, Any]) -> SSlibKey:
    """Rebuild a public key from :meth:`KeyPair.public_dict`; check that its id matches."""
    try:
        keyid = str(data["keyid"])
        key = SSlibKey.from_dict(keyid, {k: v for k, v in data.items() if k != "keyid"})
    except (KeyError, TypeError, ValueError) as exc:
        raise SigningKeyError(f"not a public key: {exc}") from None
    if key.keytype != "ed25519":
        raise SigningKeyError(f"key {keyid}: farm keys are ed25519, not {key.keytype}")
    expected = SSlibKey(keyid, key.keytype, key.scheme, key.keyval)
    computed = hashlib.sha256(
        encode_canonical(expected.to_dict()).encode()  # type: ignore[union-attr]
    ).hexdigest()
    if computed != keyid:
        raise SigningKeyError(f"key id {keyid} does not match its public key ({computed})")
    return key


def load_public_key(path: Path) -> SSlibKey:
    """Read a public key file: the JSON of :meth:`KeyPair.public_dict` (such as a
    cluster's ``public/coordinator.pub``), or a private key file, whose public half is
    taken. Raises :class:`SigningKeyError` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read public key: {exc.strerror}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        return load_key(path).public
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path}: not a public key file: {exc}") from None
    if not isinstance(value, dict):
        raise SigningKeyError(f"{path}: not a public key file")
    try:
        return public_key_from_dict(value)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc}") from None
