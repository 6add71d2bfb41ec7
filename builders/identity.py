"""A builder's identity: its Ed25519 key; the builder id is the key's id."""

from __future__ import annotations

from pathlib import Path

from farm.keys import KeyPair, generate_key, load_key, save_key

__all__ = ["init_identity", "load_identity"]


def init_identity(key_path: Path, *, force: bool = False) -> KeyPair:
    """Create the builder's key at ``key_path`` (mode 0600); refuse to replace one unless forced."""
    key = generate_key()
    save_key(key, key_path, overwrite=force)
    return key


def load_identity(key_path: Path) -> KeyPair:
    """The builder's key; raises :class:`farm.errors.SigningKeyError` if absent or unsafe."""
    return load_key(key_path)
