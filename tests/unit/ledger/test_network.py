"""The validators' transport: authenticated handshake, frames, mempool order."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.errors import ConfigError
from farm.ports import free_port as _free_port
from ledger.mempool import Mempool
from ledger.network import Network, PeerInfo, decode_frame, encode_frame
from ledger.secret_link import dial_handshake


def _mesh(
    names: list[str], keys: dict[str, Ed25519PrivateKey], got: dict[str, list[tuple[str, bytes]]]
) -> tuple[list[PeerInfo], dict[str, Network]]:
    ports = {n: _free_port() for n in names}
    # genesis lists every validator's real public key
    peers = [PeerInfo(n, "127.0.0.1", ports[n], keys[n].public_key()) for n in names]
    nets = {
        n: Network(
            "test-chain",
            n,
            keys[n],
            ("127.0.0.1", ports[n]),
            peers,
            _collector(got[n]),
            reconnect_max=0.1,
        )
        for n in names
    }
    return peers, nets


def _collector(into: list[tuple[str, bytes]]) -> Callable[[str, bytes], None]:
    """A frame handler that keeps (sender, frame) in ``into``."""
    return lambda src, raw: into.append((src, raw))


async def _until(pred: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_mesh_connects_and_delivers_with_authenticated_senders() -> None:
    names = ["a", "b", "c"]
    keys = {n: Ed25519PrivateKey.generate() for n in names}
    got: dict[str, list[tuple[str, bytes]]] = {n: [] for n in names}

    async def run() -> None:
        _, nets = _mesh(names, keys, got)
        for net in nets.values():
            await net.start()
        try:
            await _until(lambda: all(len(net.connected()) == 2 for net in nets.values()))
            nets["a"].broadcast(encode_frame({"t": "x", "n": 1}))
            nets["b"].send("c", encode_frame({"t": "x", "n": 2}))
            await _until(lambda: len(got["b"]) == 1 and len(got["c"]) == 2)
            assert got["b"] == [("a", b'{"t":"x","n":1}')]
            assert sorted(src for src, _ in got["c"]) == ["a", "b"]
            assert got["a"] == []
        finally:
            for net in nets.values():
                await net.close()

    asyncio.run(run())


def test_a_peer_with_the_wrong_key_is_refused() -> None:
    names = ["a", "b"]
    keys = {n: Ed25519PrivateKey.generate() for n in names}
    got: dict[str, list[tuple[str, bytes]]] = {n: [] for n in names}

    async def run() -> None:
        peers, nets = _mesh(names, keys, got)
        # "b" runs with a key genesis does not name for it
        impostor = Network(
            "test-chain",
            "b",
            Ed25519PrivateKey.generate(),
            (peers[1].host, peers[1].port),
            peers,
            lambda src, raw: got["b"].append((src, raw)),
            reconnect_max=0.1,
        )
        await nets["a"].start()
        await impostor.start()
        try:
            await asyncio.sleep(0.5)
            assert nets["a"].connected() == []
            assert impostor.connected() == []
            impostor.send("a", encode_frame({"t": "x"}))
            await asyncio.sleep(0.1)
            assert got["a"] == []
        finally:
            await impostor.close()
            await nets["a"].close()

    asyncio.run(run())


def test_a_silent_link_is_closed_and_dialled_again_a_busy_one_is_kept() -> None:
    """A receiving link that carries nothing for peer_timeout is dead or stuck, whatever
    TCP says (a cluster run kept one "connected" for minutes while nothing got through):
    it is closed, and the peer dials again. A link carrying frames is left alone."""
    names = ["a", "b"]
    keys = {n: Ed25519PrivateKey.generate() for n in names}
    ports = {n: _free_port() for n in names}
    peers = [PeerInfo(n, "127.0.0.1", ports[n], keys[n].public_key()) for n in names]
    connects: dict[str, list[str]] = {n: [] for n in names}
    nets = {
        n: Network(
            "test-chain",
            n,
            keys[n],
            ("127.0.0.1", ports[n]),
            peers,
            lambda _s, _r: None,
            reconnect_max=0.1,
            on_connected=connects[n].append,
            peer_timeout=0.4,
        )
        for n in names
    }

    async def run() -> None:
        for net in nets.values():
            await net.start()
        try:
            await _until(lambda: all(len(net.connected()) == 1 for net in nets.values()))
            # Busy: a frame each way every 0.1 s for 1.2 s (three peer_timeouts).
            for _ in range(12):
                nets["a"].send("b", encode_frame({"t": "status", "height": 1}))
                nets["b"].send("a", encode_frame({"t": "status", "height": 1}))
                await asyncio.sleep(0.1)
            assert connects == {"a": ["b"], "b": ["a"]}, "a busy link was dialled again"
            # Silent: each side closes its receiving link; the other dials again.
            await _until(lambda: len(connects["a"]) >= 2 and len(connects["b"]) >= 2)
        finally:
            for net in nets.values():
                await net.close()

    asyncio.run(run())


def test_a_large_frame_that_keeps_coming_outlasts_the_peer_timeout() -> None:
    """Silence is what closes a link, not a slow frame: a proposal of megabytes may take
    longer than peer_timeout on a slow link, and closing it then would resend it forever."""
    keys = {n: Ed25519PrivateKey.generate() for n in ("a", "b")}
    port = _free_port()
    peers = [PeerInfo(n, "127.0.0.1", port, keys[n].public_key()) for n in keys]
    got: list[tuple[str, bytes]] = []
    net = Network(
        "test-chain",
        "a",
        keys["a"],
        ("127.0.0.1", port),
        peers,
        _collector(got),
        reconnect_max=60,  # "a" dialling "b" (nobody listens) stays out of the way
        peer_timeout=0.3,
    )
    body = encode_frame({"t": "x", "pad": "0" * 200_000})

    async def run() -> None:
        await net.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sealer = await dial_handshake(
                reader, writer, "test-chain", "b", keys["b"], "a", keys["a"].public_key()
            )
            # 200 kB in 20 pieces, one every 0.1 s: 2 s in all, never 0.3 s of silence.
            raw = sealer.seal(body)
            step = len(raw) // 20 + 1
            for k in range(0, len(raw), step):
                writer.write(raw[k : k + step])
                await writer.drain()
                await asyncio.sleep(0.1)
            await _until(lambda: got == [("b", body)])
            writer.close()
        finally:
            await net.close()

    asyncio.run(run())


def _framed(obj: dict[str, object]) -> bytes:
    raw = encode_frame(obj)
    return struct.pack(">I", len(raw)) + raw


def test_a_port_in_use_is_a_clear_error() -> None:
    key = Ed25519PrivateKey.generate()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        peers = [PeerInfo("a", "127.0.0.1", port, key.public_key())]
        net = Network("c", "a", key, ("127.0.0.1", port), peers, lambda _s, _r: None)
        with pytest.raises(ConfigError, match="cannot listen for peers"):
            asyncio.run(net.start())


@pytest.mark.parametrize("raw", [b"[]", b"{}", b'{"t": 1}', b"not json"])
def test_malformed_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_frame(raw)


def test_mempool_keeps_order_bounds_and_batches() -> None:
    pool = Mempool(max_txs=3)
    assert pool.add("a", b"1" * 10) and pool.add("b", b"2" * 10) and pool.add("c", b"3" * 10)
    assert not pool.add("d", b"4")  # full
    assert not pool.add("a", b"1" * 10)  # already there
    assert [t for t, _ in pool.batch(2, 1000)] == ["a", "b"]
    assert [t for t, _ in pool.batch(10, 25)] == ["a", "b"]
    pool.remove(["a", "zz"])
    assert len(pool) == 2 and "a" not in pool and "b" in pool
    assert [t for t, _ in pool.batch(10, 1000)] == ["b", "c"]
