"""The validators' transport: asyncio TCP, a full mesh, authenticated peers.

Every validator listens on its genesis p2p address and dials every other validator.
A connection carries length-prefixed frames (4-byte big-endian length, then one JSON
object, at most :data:`MAX_FRAME` bytes). The dialled connection is used to *send*
to that peer and the accepted one to *receive* from it, so a pair of validators holds
two connections and never has to decide which one wins.

Handshake (both directions of every connection, before any other frame)::

    dialer   → {"t": "hello", "chain": C, "from": A, "nonce": nA}
    listener → {"t": "hello", "chain": C, "from": B, "nonce": nB,
                "sig": sign_B(hello_bytes(C, "listener", B, nA))}
    dialer   → {"t": "auth", "sig": sign_A(hello_bytes(C, "dialer", A, nB))}

Each side signs the other's fresh nonce with the validator key genesis names for it,
so the transport sender of every later frame is authenticated (a peer cannot claim
another validator's name). Consensus messages are signed on their own as well and are
checked by the state machine, so a relayed message needs no trust in the relayer.

Liveness: every validator tells its peers its height every ``status_interval``
(:mod:`ledger.node`), so a receiving connection on which no byte arrived for
``peer_timeout`` is dead or stuck, whatever TCP says: it is closed (the peer sees its
sending connection end and dials again, then sends what we missed: ADR 0018). The
dialled connection gets ``TCP_USER_TIMEOUT`` of the same length, so frames that stay
unacknowledged that long end it too and we dial again. Without this, a link whose path
stopped carrying packets stayed "connected" for as long as the kernel keeps retrying
(many minutes), and ``/readyz`` counted it (ADR 0033).

Invariants: a frame larger than :data:`MAX_FRAME` closes the connection; each peer has
a bounded send queue, used only while the peer is connected (a frame for a peer that is
down, or whose queue is full, is dropped: consensus copes with loss through timeouts,
relays and catch-up); dialling backs off exponentially up to a maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from farm.errors import ConfigError

__all__ = [
    "MAX_FRAME",
    "Network",
    "PeerInfo",
    "decode_frame",
    "encode_frame",
    "hello_bytes",
    "split_hostport",
]

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024 * 1024
"""Largest frame accepted, in bytes (a full block proposal fits well inside)."""

SEND_QUEUE = 20_000
HANDSHAKE_TIMEOUT = 5.0
_HEADER = struct.Struct(">I")

FrameHandler = Callable[[str, bytes], None]
"""Called with (authenticated peer name, raw JSON bytes of the frame)."""


def split_hostport(value: str) -> tuple[str, int]:
    """``"host:port"`` → (host, port); raises ConfigError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{value!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class PeerInfo:
    """A validator as genesis names it: its p2p address and public key."""

    name: str
    host: str
    port: int
    public_key: Ed25519PublicKey


def hello_bytes(chain_id: str, role: str, name: str, nonce: str) -> bytes:
    """What a side of the handshake signs: the peer's nonce, bound to chain and role."""
    return f"farm-ledger/p2p-hello/v1\n{chain_id}\n{role}\n{name}\n{nonce}\n".encode()


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


async def _read_frame(reader: asyncio.StreamReader, idle: float | None = None) -> bytes:
    """One frame; TimeoutError if ``idle`` seconds pass with no byte arriving (a frame
    of megabytes may take longer than that on a slow link, as long as it keeps coming)."""
    header = await asyncio.wait_for(reader.readexactly(_HEADER.size), idle)
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is larger than {MAX_FRAME}")
    if idle is None:
        return await reader.readexactly(length)
    parts: list[bytes] = []
    got = 0
    while got < length:
        chunk = await asyncio.wait_for(reader.read(length - got), idle)
        if not chunk:
            raise asyncio.IncompleteReadError(b"".join(parts), length)
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _write_frame(writer: asyncio.StreamWriter, raw: bytes) -> None:
    writer.write(_HEADER.pack(len(raw)) + raw)


class _Outbound:
    """One peer's send side: a queue drained into the dialled connection."""

    def __init__(self, peer: PeerInfo) -> None:
        self.peer = peer
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(SEND_QUEUE)
        self.connected = False
        self.dropped = 0


class Network:
    """The full mesh of one validator (see the module docstring).

    Args:
        chain_id: the genesis chain id (peers of another chain are refused).
        name: this validator's name.
        key: its Ed25519 key (the one genesis names).
        listen: (host, port) to accept peers on.
        peers: every other validator.
        on_frame: called for every frame received from an authenticated peer.
        reconnect_max: the longest pause between dial attempts, in seconds.
        on_connected: called with a peer's name each time the connection we send on is
            (re)established, so the caller can send what the peer missed meanwhile.
        peer_timeout: close a peer's receiving connection that carried nothing for this
            long, and end a sending one whose frames stay unacknowledged this long
            (seconds; None: never). It must exceed the interval at which peers send
            something anyway (their status frames).
    """

    def __init__(
        self,
        chain_id: str,
        name: str,
        key: Ed25519PrivateKey,
        listen: tuple[str, int],
        peers: list[PeerInfo],
        on_frame: FrameHandler,
        *,
        reconnect_max: float = 2.0,
        on_connected: Callable[[str], None] | None = None,
        peer_timeout: float | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.name = name
        self._key = key
        self._listen = listen
        self._peers = {p.name: p for p in peers if p.name != name}
        self._on_frame = on_frame
        self._reconnect_max = reconnect_max
        self._on_connected = on_connected
        self._peer_timeout = peer_timeout
        self._out = {n: _Outbound(p) for n, p in self._peers.items()}
        self._inbound: dict[str, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.frames_sent = 0
        self.bytes_sent = 0
        """Frames (and their bytes) queued to peers so far (not those dropped)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen, then dial every peer in the background.

        Raises:
            ConfigError: the p2p address cannot be bound (for example, in use).
        """
        host, port = self._listen
        try:
            self._server = await asyncio.start_server(
                self._accept, host, port, limit=MAX_FRAME + _HEADER.size, reuse_address=True
            )
        except OSError as exc:
            why = str(exc).rsplit(": ", 1)[-1]  # asyncio prefixes the address it tried
            raise ConfigError(f"cannot listen for peers on {host}:{port}: {why}") from None
        for out in self._out.values():
            self._tasks.append(asyncio.create_task(self._dial_loop(out)))

    async def close(self) -> None:
        """Stop dialling, close every connection and the listener."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in list(self._inbound.values()):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # ------------------------------------------------------------------ sending

    def connected(self) -> list[str]:
        """Peers we can send to and receive from right now."""
        return sorted(n for n, o in self._out.items() if o.connected and n in self._inbound)

    def send(self, name: str, raw: bytes) -> None:
        """Queue a frame for one peer; dropped if the peer is not connected (it would
        be stale by the time it reconnects: catch-up covers the gap) or its queue is
        full."""
        out = self._out.get(name)
        if out is None or not out.connected:
            return
        try:
            out.queue.put_nowait(raw)
        except asyncio.QueueFull:
            out.dropped += 1
            return
        self.frames_sent += 1
        self.bytes_sent += len(raw)

    def broadcast(self, raw: bytes, exclude: tuple[str, ...] = ()) -> None:
        """Queue a frame for every peer not in ``exclude``."""
        for name in self._out:
            if name not in exclude:
                self.send(name, raw)

    # ------------------------------------------------------------------ dialling

    async def _dial_loop(self, out: _Outbound) -> None:
        delay = 0.05
        peer = out.peer
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(
                    peer.host, peer.port, limit=MAX_FRAME + _HEADER.size
                )
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            try:
                await asyncio.wait_for(
                    self._dial_handshake(reader, writer, peer), HANDSHAKE_TIMEOUT
                )
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.info("handshake with %s failed: %s", peer.name, exc)
                writer.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            self._set_user_timeout(writer)
            delay = 0.05
            out.connected = True
            log.info("connected to %s", peer.name)
            if self._on_connected is not None:
                self._on_connected(peer.name)
            watcher = asyncio.create_task(self._watch_eof(reader))
            try:
                await self._pump(out, writer, watcher)
            except (OSError, ConnectionError) as exc:
                log.info("lost %s: %s", peer.name, exc)
            finally:
                out.connected = False
                while not out.queue.empty():
                    out.queue.get_nowait()
                watcher.cancel()
                writer.close()

    def _set_user_timeout(self, writer: asyncio.StreamWriter) -> None:
        """Frames unacknowledged for ``peer_timeout`` end the dialled connection."""
        sock = writer.get_extra_info("socket")
        if self._peer_timeout is None or sock is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self._peer_timeout * 1000)
            )

    async def _dial_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: PeerInfo
    ) -> None:
        nonce = os.urandom(16).hex()
        _write_frame(
            writer,
            encode_frame({"t": "hello", "chain": self.chain_id, "from": self.name, "nonce": nonce}),
        )
        await writer.drain()
        reply = decode_frame(await _read_frame(reader))
        if reply.get("t") != "hello" or reply.get("chain") != self.chain_id:
            raise ValueError(f"peer at {peer.host}:{peer.port} is not on chain {self.chain_id}")
        if reply.get("from") != peer.name:
            raise ValueError(f"{peer.host}:{peer.port} says it is {reply.get('from')!r}")
        sig = bytes.fromhex(str(reply.get("sig", "")))
        try:
            peer.public_key.verify(sig, hello_bytes(self.chain_id, "listener", peer.name, nonce))
        except InvalidSignature:
            raise ValueError(f"{peer.name} did not prove its key") from None
        their_nonce = str(reply.get("nonce", ""))
        if len(their_nonce) < 32:
            raise ValueError("short nonce")
        mine = self._key.sign(hello_bytes(self.chain_id, "dialer", self.name, their_nonce))
        _write_frame(writer, encode_frame({"t": "auth", "sig": mine.hex()}))
        await writer.drain()

    async def _pump(
        self, out: _Outbound, writer: asyncio.StreamWriter, watcher: asyncio.Task[None]
    ) -> None:
        """Write queued frames until the connection fails."""
        while True:
            getter = asyncio.ensure_future(out.queue.get())
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                raise ConnectionError("closed by peer")
            chunks = [getter.result()]
            while not out.queue.empty() and len(chunks) < 256:
                chunks.append(out.queue.get_nowait())
            writer.write(b"".join(_HEADER.pack(len(c)) + c for c in chunks))
            await writer.drain()

    @staticmethod
    async def _watch_eof(reader: asyncio.StreamReader) -> None:
        """Finish when the peer closes the dialled connection (it never sends on it)."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.read(4096):
                pass

    # ------------------------------------------------------------------ accepting

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name: str | None = None
        try:
            name = await asyncio.wait_for(self._accept_handshake(reader, writer), HANDSHAKE_TIMEOUT)
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.info("refused a peer: %s", exc)
            writer.close()
            return
        old = self._inbound.get(name)
        if old is not None:
            old.close()
        self._inbound[name] = writer
        try:
            while True:
                try:
                    raw = await _read_frame(reader, self._peer_timeout)
                except TimeoutError:
                    log.warning(
                        "nothing from %s for %.1f s: closing its link, it will dial again",
                        name,
                        self._peer_timeout,
                    )
                    break
                try:
                    self._on_frame(name, raw)
                except Exception:
                    log.exception("handling a frame from %s failed", name)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            log.info("inbound from %s closed: %s", name, exc)
        finally:
            if self._inbound.get(name) is writer:
                del self._inbound[name]
            writer.close()

    async def _accept_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        hello = decode_frame(await _read_frame(reader))
        if hello.get("t") != "hello" or hello.get("chain") != self.chain_id:
            raise ValueError(f"a peer on chain {hello.get('chain')!r}, not {self.chain_id!r}")
        name = str(hello.get("from"))
        peer = self._peers.get(name)
        if peer is None:
            raise ValueError(f"{name!r} is not a validator of {self.chain_id}")
        their_nonce = str(hello.get("nonce", ""))
        if len(their_nonce) < 32:
            raise ValueError("short nonce")
        nonce = os.urandom(16).hex()
        sig = self._key.sign(hello_bytes(self.chain_id, "listener", self.name, their_nonce))
        _write_frame(
            writer,
            encode_frame(
                {
                    "t": "hello",
                    "chain": self.chain_id,
                    "from": self.name,
                    "nonce": nonce,
                    "sig": sig.hex(),
                }
            ),
        )
        await writer.drain()
        auth = decode_frame(await _read_frame(reader))
        try:
            peer.public_key.verify(
                bytes.fromhex(str(auth.get("sig", ""))),
                hello_bytes(self.chain_id, "dialer", name, nonce),
            )
        except InvalidSignature:
            raise ValueError(f"{name} did not prove its key") from None
        return name
