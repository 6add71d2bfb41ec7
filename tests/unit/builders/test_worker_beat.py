"""A builder keeps beating to the coordinator while its broker is silent.

The heartbeat announces itself in Redis, then beats to the coordinator, in one loop: a
Redis that accepts connections and never answers (a host cut off from it, packets
dropped) must not hold the coordinator's beat up, or the coordinator gives the builder's
build up as lost (:mod:`farm.coordinator.scheduler`). Real sockets, no Redis.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from builders.worker import _heartbeat, beat_client
from farm.registry import BuilderInfo


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP server that accepts and never answers: a Redis behind a black hole."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _info() -> BuilderInfo:
    now = datetime.now(UTC)
    return BuilderInfo(
        builder_id="b" * 64, public_key={}, arches=("amd64",), hostname="h", pid=1,
        queue="farm.builder." + "b" * 64, started_at=now, seen_at=now,
    )  # fmt: skip


def test_the_coordinator_beat_goes_on_while_redis_is_silent(silent_redis: str) -> None:
    beats: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=_heartbeat,
        args=(beat_client(silent_redis, 0.2), _info(), 0.2, stop),
        kwargs={"beat": lambda: beats.append(time.monotonic())},
        daemon=True,
    )
    t0 = time.monotonic()
    thread.start()
    time.sleep(4.5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    # One announce waits at most its 1 s timeout (one try): a beat every ~1.2 s.
    assert len(beats) >= 3, [round(b - t0, 1) for b in beats]
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) < 2.5, gaps
