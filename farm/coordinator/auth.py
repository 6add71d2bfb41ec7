"""Credentials of the coordinator's API: operator tokens and signed builder requests.

*Operators* send ``Authorization: Bearer <token>``. Tokens are random (32 bytes,
URL-safe) and stored only as their sha256; comparing hashes in constant time means a
leaked database does not leak a usable token.

*Builders* sign every write with their enrolled Ed25519 key. The signed message is
these lines joined by ``\\n``::

    farm-request-v1
    METHOD
    PATH?QUERY
    TIMESTAMP
    NONCE
    SHA256(BODY), hex
    BUILDER-ID

sent as the headers ``X-Farm-Builder`` (the builder id), ``X-Farm-Timestamp`` (Unix
seconds), ``X-Farm-Nonce`` (random, so two identical requests in one second have
different signatures — Ed25519 is deterministic) and ``X-Farm-Signature`` (base64
Ed25519 signature). The server recomputes the
body's sha256 itself, so a signature covers exactly the bytes received. A request is
accepted only within ``window`` seconds of the server's clock, and
:class:`farm.coordinator.replay.ReplayGuard` refuses the same (builder, nonce) twice
inside that window, in the database that every coordinator replica shares.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from farm.coordinator.errors import AuthenticationError
from farm.errors import SigningKeyError
from farm.keys import KeyPair, public_key_from_dict

__all__ = [
    "HEADER_BUILDER",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SignedRequest",
    "hash_secret",
    "new_secret",
    "request_message",
    "secret_matches",
    "sign_request",
    "verify_request",
]

HEADER_BUILDER = "X-Farm-Builder"
HEADER_TIMESTAMP = "X-Farm-Timestamp"
HEADER_NONCE = "X-Farm-Nonce"
HEADER_SIGNATURE = "X-Farm-Signature"
_DOMAIN = b"farm-request-v1"


def new_secret() -> str:
    """A fresh random secret for a token (shown once, stored hashed)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Whether ``secret`` hashes to ``stored_sha256`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def request_message(
    method: str, target: str, timestamp: str, nonce: str, body: bytes, builder: str
) -> bytes:
    """The exact bytes a builder signs for one request."""
    parts = [
        _DOMAIN,
        method.upper().encode(),
        target.encode("utf-8"),
        timestamp.encode(),
        nonce.encode("utf-8"),
        hashlib.sha256(body).hexdigest().encode(),
        builder.encode(),
    ]
    return b"\n".join(parts)


def sign_request(key: KeyPair, method: str, target: str, body: bytes, now: float) -> dict[str, str]:
    """The headers that authenticate one request as the builder owning ``key``."""
    ts = str(int(now))
    nonce = secrets.token_hex(16)
    sig = key.private.sign(request_message(method, target, ts, nonce, body, key.keyid))
    return {
        HEADER_BUILDER: key.keyid,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: base64.b64encode(sig).decode(),
    }


@dataclass(frozen=True)
class SignedRequest:
    """The authentication headers of one request, as received."""

    builder_id: str
    timestamp: str
    nonce: str
    signature: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> SignedRequest:
        """Read the three headers; raise :class:`AuthenticationError` if one is missing."""
        names = (HEADER_BUILDER, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
        values = {h: headers.get(h) for h in names}
        absent = [h for h, v in values.items() if not v]
        if absent:
            raise AuthenticationError(
                "builder request is not signed (missing " + ", ".join(absent) + ")"
            )
        return cls(
            str(values[HEADER_BUILDER]),
            str(values[HEADER_TIMESTAMP]),
            str(values[HEADER_NONCE])[:128],
            str(values[HEADER_SIGNATURE]),
        )


def _public(public_key: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    try:
        key = public_key_from_dict(public_key)
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))
    except (SigningKeyError, KeyError, ValueError) as exc:
        raise AuthenticationError(f"enrolled key cannot be used: {exc}") from None


def verify_request(
    req: SignedRequest,
    public_key: dict[str, Any],
    method: str,
    target: str,
    body: bytes,
    now: float,
    window: float,
) -> None:
    """Check the signature of a request against the enrolled ``public_key``.

    Raises :class:`AuthenticationError` if the timestamp is outside ``window`` seconds
    of ``now`` or the signature does not verify over this method, target and body.
    """
    try:
        ts = int(req.timestamp)
    except ValueError:
        raise AuthenticationError(f"{HEADER_TIMESTAMP} is not Unix seconds") from None
    if abs(now - ts) > window:
        raise AuthenticationError(
            f"request timestamp is {int(now - ts)}s away from the coordinator's clock "
            f"(window {window:g}s)"
        )
    try:
        sig = base64.b64decode(req.signature, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError(f"{HEADER_SIGNATURE} is not base64") from None
    message = request_message(method, target, req.timestamp, req.nonce, body, req.builder_id)
    try:
        _public(public_key).verify(sig, message)
    except InvalidSignature:
        raise AuthenticationError(
            f"request signature does not verify with builder {req.builder_id[:12]}'s enrolled key"
        ) from None
