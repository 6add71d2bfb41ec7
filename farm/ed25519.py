"""Ed25519 signature checks on the hot paths, through libsodium (PyNaCl).

Keys are made, stored and used to sign with ``cryptography`` (:mod:`farm.keys`); only
checking goes through libsodium's ``crypto_sign_open``, which on this class of
machine takes about half of OpenSSL's time (68 µs against 131 µs for a 2 kB message): a
validator checks four signatures per attestation and 3n per height, and these checks
were the largest single cost of the ledger.

libsodium is the stricter of the two: it also refuses small-order public keys and
non-canonical encodings of R and S, which no honest signer produces. So every signature
it accepts OpenSSL accepts too; a forged edge case is refused by every validator alike.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

__all__ = ["KEY_SIZE", "SIGNATURE_SIZE", "raw_key", "verify"]

KEY_SIZE = 32
SIGNATURE_SIZE = 64


def raw_key(key: Ed25519PublicKey | bytes) -> bytes:
    """The 32 raw bytes of ``key``."""
    return key if isinstance(key, bytes) else key.public_bytes_raw()


def verify(key: Ed25519PublicKey | bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature of ``message``; never raises
    (a key or signature of the wrong size is simply not valid)."""
    public = raw_key(key)
    if len(public) != KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        crypto_sign_open(signature + message, public)
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
