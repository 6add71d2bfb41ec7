"""Validator links against someone on the path: nothing read, injected, altered or
replayed gets through, and a stranger cannot make a validator buffer a large frame."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.ports import free_port
from ledger.network import Network, PeerInfo, encode_frame
from ledger.secret_link import LinkAuthError, Opener, Sealer

DIALS: list[str] = []
"""Peers b's links were (re)established to, in order (b's on_connected)."""


class _OnPath:
    """A TCP relay between dialer and listener that records what the dialer sends and
    can inject or alter bytes on their way to the listener."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self.seen = bytearray()
        self.inject: list[bytes] = []
        self.flip_next = False
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self._target)

        async def upstream() -> None:
            while data := await reader.read(65536):
                self.seen += data
                if self.flip_next and len(data) > 40:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                    self.flip_next = False
                up_w.write(data)
                while self.inject:
                    up_w.write(self.inject.pop(0))
                await up_w.drain()
            up_w.close()

        async def downstream() -> None:
            while data := await up_r.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


def _pair(
    got: list[tuple[str, bytes]], via: Callable[[int], int]
) -> tuple[dict[str, Ed25519PrivateKey], Network, Network]:
    """Validators a (listening) and b, b dialling a at ``via(a's port)``."""
    keys = {n: Ed25519PrivateKey.generate() for n in ("a", "b")}
    port_a, port_b = free_port(), free_port()
    a = Network(
        "test-chain", "a", keys["a"], ("127.0.0.1", port_a),
        [PeerInfo("a", "127.0.0.1", port_a, keys["a"].public_key()),
         PeerInfo("b", "127.0.0.1", port_b, keys["b"].public_key())],
        lambda src, raw: got.append((src, raw)), reconnect_max=0.1,
    )  # fmt: skip
    b = Network(
        "test-chain", "b", keys["b"], ("127.0.0.1", port_b),
        [PeerInfo("a", "127.0.0.1", via(port_a), keys["a"].public_key()),
         PeerInfo("b", "127.0.0.1", port_b, keys["b"].public_key())],
        lambda _s, _r: None, reconnect_max=0.1, on_connected=DIALS.append,
    )  # fmt: skip
    return keys, a, b


async def _until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _run_on_path(
    scenario: Callable[[_OnPath, Network, Network, list[tuple[str, bytes]]], object],
) -> None:
    got: list[tuple[str, bytes]] = []
    relay: list[_OnPath] = []
    DIALS.clear()

    def via(port: int) -> int:
        relay.append(_OnPath(port))
        return relay[0].port

    _, a, b = _pair(got, via)

    async def run() -> None:
        await relay[0].start()
        await a.start()
        await b.start()
        try:
            await _until(lambda: a.connected() == ["b"] and b.connected() == ["a"])
            await scenario(relay[0], a, b, got)  # type: ignore[misc]
        finally:
            await b.close()
            await a.close()
            await relay[0].close()

    asyncio.run(run())


def test_frames_cross_the_wire_encrypted() -> None:
    async def scenario(path: _OnPath, a: Network, b: Network, got: list[tuple[str, bytes]]) -> None:
        b.send("a", encode_frame({"t": "x", "secret": "operator-token-1234567890"}))
        await _until(lambda: len(got) == 1)
        assert got == [("b", b'{"t":"x","secret":"operator-token-1234567890"}')]
        assert b"operator-token" not in path.seen and b'"t":"x"' not in path.seen

    _run_on_path(scenario)


def test_an_injected_frame_is_refused_and_the_link_closed() -> None:
    async def scenario(path: _OnPath, a: Network, b: Network, got: list[tuple[str, bytes]]) -> None:
        forged = encode_frame({"t": "status", "height": 10**9})
        path.inject.append(struct.pack(">I", len(forged)) + forged)
        b.send("a", encode_frame({"t": "x", "n": 1}))  # carries the injection behind it
        await _until(lambda: len(got) == 1)
        # a closes the link; b sees it end and dials again
        await _until(lambda: DIALS == ["a", "a"] and a.connected() == ["b"], timeout=10)
        assert all(b"10000000" not in raw for _, raw in got)
        b.send("a", encode_frame({"t": "x", "n": 2}))
        await _until(lambda: len(got) == 2)
        assert [raw for _, raw in got] == [b'{"t":"x","n":1}', b'{"t":"x","n":2}']

    _run_on_path(scenario)


def test_an_altered_frame_is_refused() -> None:
    async def scenario(path: _OnPath, a: Network, b: Network, got: list[tuple[str, bytes]]) -> None:
        path.flip_next = True
        b.send("a", encode_frame({"t": "x", "pad": "p" * 100}))
        await _until(lambda: not path.flip_next)
        await asyncio.sleep(0.3)
        assert got == []

    _run_on_path(scenario)


def test_a_huge_frame_before_the_handshake_is_refused_unread() -> None:
    """A stranger announcing a 64 MiB frame is cut off after its 4-byte header: the
    validator never buffers more than a hello's worth of an unauthenticated peer."""
    got: list[tuple[str, bytes]] = []
    _, a, _b = _pair(got, lambda p: p)

    async def run() -> None:
        await a.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", a._listen[1])
            writer.write(struct.pack(">I", 64 * 1024 * 1024))
            sent = 0
            with pytest.raises((ConnectionError, OSError)):
                for _ in range(4096):  # up to 64 MiB, 16 KiB at a time
                    writer.write(b"\0" * 16384)
                    await writer.drain()
                    sent += 16384
                    await asyncio.sleep(0)
            assert sent < 8 * 1024 * 1024, f"the validator took {sent} bytes before refusing"
            assert got == []
            del reader
        finally:
            await a.close()

    asyncio.run(run())


def test_a_recorded_handshake_replayed_is_refused() -> None:
    """Someone who recorded b's handshake and first frames cannot pose as b: the
    listener's fresh nonce and ephemeral key make the recorded proof worthless."""

    async def scenario(path: _OnPath, a: Network, b: Network, got: list[tuple[str, bytes]]) -> None:
        b.send("a", encode_frame({"t": "x", "n": 1}))
        await _until(lambda: len(got) == 1)
        recorded = bytes(path.seen)
        reader, writer = await asyncio.open_connection("127.0.0.1", a._listen[1])
        writer.write(recorded)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) != b""  # a's own hello, then EOF
        await asyncio.sleep(0.2)
        assert len(got) == 1, "a replayed frame was delivered"
        assert a.connected() == ["b"], "the honest link was disturbed"
        writer.close()

    _run_on_path(scenario)


def test_sealed_frames_open_only_in_order_and_only_unaltered() -> None:
    key = b"k" * 32
    sealer, opener = Sealer(key), Opener(key)
    first, second = sealer.seal(b"one"), sealer.seal(b"two")
    with pytest.raises(LinkAuthError):
        opener.open(second[:4], second[4:])  # replayed out of order
    assert opener.open(first[:4], first[4:]) == b"one"
    with pytest.raises(LinkAuthError):
        opener.open(first[:4], first[4:])  # replayed
    assert Opener(key).open(first[:4], first[4:]) == b"one"
    other = Opener(b"x" * 32)
    with pytest.raises(LinkAuthError):
        other.open(first[:4], first[4:])  # another link's key
    tampered_header = struct.pack(">I", 99)
    with pytest.raises(LinkAuthError):
        Opener(key).open(tampered_header, first[4:])
