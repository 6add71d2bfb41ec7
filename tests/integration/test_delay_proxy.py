"""The delay proxy of the cluster tests' network faults (:mod:`tests.support.delay_proxy`).

A connection made straight to the proxy's port (not redirected to it by iptables, as a
readiness probe's is) is closed at once. Forwarding it connected the proxy to itself,
hop after hop: in the first cluster runs each validator's proxy held 20,000 such
connections (its open-file limit) seconds after it started, and stopped forwarding the
validators' links it was there to delay: consensus stalled for minutes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.cluster import free_port_range
from tests.support.netfault import MARK

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SO_MARK needs CAP_NET_ADMIN")


@pytest.fixture
def proxy() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port_range(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.delay_proxy", "--port", str(port),
         "--delay", "0.05", "--mark", str(MARK)],
        cwd=ROOT, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "the proxy did not listen within 10 s"
                time.sleep(0.05)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(10)


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_a_direct_connection_is_closed_not_forwarded_to_itself(
    proxy: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = proxy
    before = _open_fds(proc.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert s.recv(1) == b"", "the proxy kept a connection that was not redirected to it"
    time.sleep(0.5)  # a forwarding loop would have made hundreds of hops by now
    assert _open_fds(proc.pid) <= before + 2, "the proxy connected to itself"
    assert proc.poll() is None, "the proxy exited"
