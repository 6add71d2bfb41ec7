"""One validator link: framing, the authenticated key exchange, and sealed frames.

A link is a TCP connection one validator (the *dialer*) opens to another (the
*listener*) to send it frames; the listener never sends on it after the handshake.
Every frame is a 4-byte big-endian length and a body.

Handshake (plain frames of at most :data:`PREAUTH_MAX` bytes, so a stranger cannot make
a validator buffer more than that before it has proved a genesis key)::

    dialer   → {"t": "hello", "chain": C, "from": A, "nonce": nA, "eph": XA}
    listener → {"t": "hello", "chain": C, "from": B, "nonce": nB, "eph": XB,
                "sig": sign_B(signed_bytes(C, "listener", B, T))}
    dialer   → {"t": "auth", "sig": sign_A(signed_bytes(C, "dialer", A, T))}

``XA``/``XB`` are fresh X25519 public keys and ``T`` the SHA-256 of the transcript
(chain, both names, both nonces, both ephemeral keys), so each side's genesis Ed25519
key signs this very exchange: a peer cannot claim another validator's name, replay an
old handshake or swap in its own ephemeral key. Both sides then derive, with HKDF-SHA256
over the X25519 shared secret and ``T``, the key of the dialer → listener direction.
Every later frame's body is ChaCha20-Poly1305 ciphertext under that key, the nonce a
frame counter and the length header the associated data: a frame injected, altered,
dropped, replayed or reordered on the wire fails to open and the listener closes the
link (the dialer dials again). This is CometBFT's "secret connection" design, with
the transcript signed instead of a challenge, on `cryptography`'s primitives (ADR 0039).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "PREAUTH_MAX",
    "PROTOCOL",
    "LinkAuthError",
    "Opener",
    "Sealer",
    "accept_handshake",
    "decode_frame",
    "dial_handshake",
    "encode_frame",
    "read_frame",
    "signed_bytes",
    "transcript_hash",
]

PROTOCOL = "farm-ledger/p2p/v2"
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame body accepted after the handshake (a full block proposal fits)."""
PREAUTH_MAX = 4096
"""Largest frame read before the peer has proved its genesis key (a hello is ~300 B)."""
TAG = 16
HEADER = struct.Struct(">I")


class LinkAuthError(ValueError):
    """A peer did not prove a genesis key, or a sealed frame failed to open."""


def encode_frame(obj: dict[str, Any]) -> bytes:
    """Compact JSON bytes of a frame body (without the length prefix), keys in the
    order given (orjson: frames carry megabytes of hex, the standard library's encoder
    costs several times as much)."""
    return orjson.dumps(obj)


def decode_frame(raw: bytes) -> dict[str, Any]:
    """Parse a frame body; raises ValueError unless it is a JSON object with "t"."""
    obj = orjson.loads(raw)
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ValueError("a frame is a JSON object with a string 't'")
    return obj


async def read_frame(
    reader: asyncio.StreamReader, limit: int, idle: float | None = None
) -> tuple[bytes, bytes]:
    """One frame as (header, body); ValueError if it announces more than ``limit``
    bytes (nothing of it is read), TimeoutError if ``idle`` seconds pass with no byte
    arriving (a frame of megabytes may take longer than that on a slow link, as long as
    it keeps coming)."""
    header = await asyncio.wait_for(reader.readexactly(HEADER.size), idle)
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ValueError(f"frame of {length} bytes is larger than {limit}")
    if idle is None:
        return header, await reader.readexactly(length)
    parts: list[bytes] = []
    got = 0
    while got < length:
        chunk = await asyncio.wait_for(reader.read(length - got), idle)
        if not chunk:
            raise asyncio.IncompleteReadError(b"".join(parts), length)
        parts.append(chunk)
        got += len(chunk)
    return header, parts[0] if len(parts) == 1 else b"".join(parts)


def _write_plain(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    raw = encode_frame(obj)
    writer.write(HEADER.pack(len(raw)) + raw)


def _nonce(counter: int) -> bytes:
    return b"\0\0\0\0" + counter.to_bytes(8, "big")


class Sealer:
    """The dialer's side of a link: seals each frame under the next counter."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def seal(self, body: bytes) -> bytes:
        """Header and ciphertext of one frame, ready for the wire."""
        header = HEADER.pack(len(body) + TAG)
        sealed = self._aead.encrypt(_nonce(self._counter), body, header)
        self._counter += 1
        return header + sealed


class Opener:
    """The listener's side of a link: opens frames strictly in the order sealed."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def open(self, header: bytes, sealed: bytes) -> bytes:
        """The frame's body; LinkAuthError if it is not the next frame the dialer sealed."""
        try:
            body = self._aead.decrypt(_nonce(self._counter), sealed, header)
        except InvalidTag:
            raise LinkAuthError(f"frame {self._counter} failed authentication") from None
        self._counter += 1
        return body


def transcript_hash(
    chain_id: str, dialer: str, listener: str, nonces: tuple[str, str], ephs: tuple[str, str]
) -> bytes:
    """SHA-256 of everything both sides said in the handshake (dialer's values first)."""
    parts = [PROTOCOL, chain_id, dialer, listener, *nonces, *ephs]
    return hashlib.sha256("\n".join(parts).encode()).digest()


def signed_bytes(chain_id: str, role: str, name: str, transcript: bytes) -> bytes:
    """What a side signs with its genesis key: the transcript, bound to chain and role."""
    return f"{PROTOCOL}/hello\n{chain_id}\n{role}\n{name}\n{transcript.hex()}\n".encode()


def _ephemeral() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, raw.hex()


def _link_key(mine: X25519PrivateKey, theirs_hex: str, transcript: bytes) -> bytes:
    try:
        theirs = X25519PublicKey.from_public_bytes(bytes.fromhex(theirs_hex))
        shared = mine.exchange(theirs)  # refuses an all-zero (low-order) result
    except ValueError as exc:
        raise LinkAuthError(f"bad ephemeral key: {exc}") from None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=transcript, info=PROTOCOL.encode())
    return hkdf.derive(shared)


def _verify(key: Ed25519PublicKey, sig_hex: object, data: bytes, who: str) -> None:
    try:
        key.verify(bytes.fromhex(str(sig_hex)), data)
    except (InvalidSignature, ValueError):
        raise LinkAuthError(f"{who} did not prove its key") from None


def _fresh_nonce(value: object) -> str:
    nonce = str(value or "")
    if len(nonce) < 32:
        raise LinkAuthError("short nonce")
    return nonce


async def dial_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    chain_id: str,
    name: str,
    key: Ed25519PrivateKey,
    peer: str,
    peer_key: Ed25519PublicKey,
) -> Sealer:
    """Prove ``name`` to the listener ``peer`` and check its proof; the link's sealer."""
    nonce = os.urandom(16).hex()
    eph, eph_hex = _ephemeral()
    hello = {"t": "hello", "chain": chain_id, "from": name, "nonce": nonce, "eph": eph_hex}
    _write_plain(writer, hello)
    await writer.drain()
    reply = decode_frame((await read_frame(reader, PREAUTH_MAX))[1])
    if reply.get("t") != "hello" or reply.get("chain") != chain_id:
        raise LinkAuthError(f"the peer is not on chain {chain_id}")
    if reply.get("from") != peer:
        raise LinkAuthError(f"the peer says it is {reply.get('from')!r}, not {peer!r}")
    their_nonce, their_eph = _fresh_nonce(reply.get("nonce")), str(reply.get("eph", ""))
    transcript = transcript_hash(chain_id, name, peer, (nonce, their_nonce), (eph_hex, their_eph))
    _verify(peer_key, reply.get("sig"), signed_bytes(chain_id, "listener", peer, transcript), peer)
    link = _link_key(eph, their_eph, transcript)
    sig = key.sign(signed_bytes(chain_id, "dialer", name, transcript))
    _write_plain(writer, {"t": "auth", "sig": sig.hex()})
    await writer.drain()
    return Sealer(link)


async def accept_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    chain_id: str,
    name: str,
    key: Ed25519PrivateKey,
    peers: dict[str, Ed25519PublicKey],
) -> tuple[str, Opener]:
    """Check a dialer's proof that it is one of ``peers`` and prove ``name`` to it; the
    dialer's name and the link's opener."""
    hello = decode_frame((await read_frame(reader, PREAUTH_MAX))[1])
    if hello.get("t") != "hello" or hello.get("chain") != chain_id:
        raise LinkAuthError(f"a peer on chain {hello.get('chain')!r}, not {chain_id!r}")
    dialer = str(hello.get("from"))
    dialer_key = peers.get(dialer)
    if dialer_key is None:
        raise LinkAuthError(f"{dialer!r} is not a validator of {chain_id}")
    their_nonce, their_eph = _fresh_nonce(hello.get("nonce")), str(hello.get("eph", ""))
    nonce = os.urandom(16).hex()
    eph, eph_hex = _ephemeral()
    transcript = transcript_hash(chain_id, dialer, name, (their_nonce, nonce), (their_eph, eph_hex))
    link = _link_key(eph, their_eph, transcript)
    sig = key.sign(signed_bytes(chain_id, "listener", name, transcript))
    _write_plain(
        writer,
        {"t": "hello", "chain": chain_id, "from": name, "nonce": nonce, "eph": eph_hex,
         "sig": sig.hex()},
    )  # fmt: skip
    await writer.drain()
    auth = decode_frame((await read_frame(reader, PREAUTH_MAX))[1])
    if auth.get("t") != "auth":
        raise LinkAuthError(f"{dialer} sent {auth.get('t')!r} before proving its key")
    proof = signed_bytes(chain_id, "dialer", dialer, transcript)
    _verify(dialer_key, auth.get("sig"), proof, dialer)
    return dialer, Opener(link)
