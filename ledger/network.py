"""The validators' transport: asyncio TCP, a full mesh, authenticated peers.

Every validator listens on its genesis p2p address and dials every other validator.
The dialled connection is used to *send* to that peer and the accepted one to *receive*
from it, so a pair of validators holds two connections and never has to decide which one
wins. Each connection is a secret link (:mod:`ledger.secret_link`): a handshake in which
both sides sign the exchange with the keys genesis names for them and agree on a fresh
key, then frames sealed under it, so the sender of every frame is authenticated, nobody
on the path can read, inject or alter one, and nothing larger than a hello is read from
a peer that has not proved its key. Consensus messages are signed on their own as well
and are checked by the state machine, so a relayed message needs no trust in the relayer.

Liveness: every validator tells its peers its height every ``status_interval``
(:mod:`ledger.node`), so a receiving connection on which no byte arrived for
``peer_timeout`` is dead or stuck, whatever TCP says: it is closed (the peer sees its
sending connection end and dials again, then sends what we missed: ADR 0018). The
dialled connection gets ``TCP_USER_TIMEOUT`` of the same length, so frames that stay
unacknowledged that long end it too and we dial again. Without this, a link whose path
stopped carrying packets stayed "connected" for as long as the kernel keeps retrying
(many minutes), and ``/readyz`` counted it (ADR 0033).

Invariants: a frame larger than :data:`MAX_FRAME` (:data:`PREAUTH_MAX` during the
handshake), or one that fails to open, closes the connection; each peer has
a bounded send queue, used only while the peer is connected (a frame for a peer that is
down, or whose queue is full, is dropped: consensus copes with loss through timeouts,
relays and catch-up); dialling backs off exponentially up to a maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from farm.errors import ConfigError
from ledger.secret_link import (
    MAX_FRAME,
    TAG,
    LinkAuthError,
    Sealer,
    accept_handshake,
    decode_frame,
    dial_handshake,
    encode_frame,
    read_frame,
)

__all__ = [
    "MAX_FRAME",
    "Network",
    "PeerInfo",
    "decode_frame",
    "encode_frame",
    "split_hostport",
]

log = logging.getLogger(__name__)

SEND_QUEUE = 20_000
_BUFFER = 1024 * 1024
"""Bytes a connection's reader buffers ahead of what was asked for (twice this at most,
then reading pauses): what a peer that has not proved its key can make us hold."""
HANDSHAKE_TIMEOUT = 5.0

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
        self._keys = {n: p.public_key for n, p in self._peers.items()}
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
                self._accept, host, port, limit=_BUFFER, reuse_address=True
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
                reader, writer = await asyncio.open_connection(peer.host, peer.port, limit=_BUFFER)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            try:
                handshake = dial_handshake(
                    reader, writer, self.chain_id, self.name, self._key, peer.name, peer.public_key
                )
                sealer = await asyncio.wait_for(handshake, HANDSHAKE_TIMEOUT)
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.log(
                    logging.WARNING if isinstance(exc, LinkAuthError) else logging.INFO,
                    "handshake with %s failed: %s", peer.name, exc,
                )  # fmt: skip
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
                await self._pump(out, writer, watcher, sealer)
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

    async def _pump(
        self,
        out: _Outbound,
        writer: asyncio.StreamWriter,
        watcher: asyncio.Task[None],
        sealer: Sealer,
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
            writer.write(b"".join(sealer.seal(c) for c in chunks))
            await writer.drain()

    @staticmethod
    async def _watch_eof(reader: asyncio.StreamReader) -> None:
        """Finish when the peer closes the dialled connection (it never sends on it)."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.read(4096):
                pass

    # ------------------------------------------------------------------ accepting

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            name, opener = await asyncio.wait_for(
                accept_handshake(reader, writer, self.chain_id, self.name, self._key, self._keys),
                HANDSHAKE_TIMEOUT,
            )
        except LinkAuthError as exc:
            log.warning("refused a peer from %s: %s", writer.get_extra_info("peername"), exc)
            writer.close()
            return
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.info("refused a peer from %s: %s", writer.get_extra_info("peername"), exc)
            writer.close()
            return
        old = self._inbound.get(name)
        if old is not None:
            old.close()
        self._inbound[name] = writer
        try:
            while True:
                try:
                    header, sealed = await read_frame(reader, MAX_FRAME + TAG, self._peer_timeout)
                except TimeoutError:
                    log.warning(
                        "nothing from %s for %.1f s: closing its link, it will dial again",
                        name,
                        self._peer_timeout,
                    )
                    break
                raw = opener.open(header, sealed)  # LinkAuthError: closed below
                try:
                    self._on_frame(name, raw)
                except Exception:
                    log.exception("handling a frame from %s failed", name)
        except LinkAuthError as exc:
            log.warning("closing the link from %s: %s (injected or altered on the wire)", name, exc)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            log.info("inbound from %s closed: %s", name, exc)
        finally:
            if self._inbound.get(name) is writer:
                del self._inbound[name]
            writer.close()
