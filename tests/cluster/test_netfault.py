"""The cluster tests' network faults work: real containers on a private network.

Two containers of the builder image (it has python3) on a network of their own: one
echoes TCP, the other times round trips to it. Delay adds its time each way to new
connections and, after a reset of the links, to a program's redialled one; loss drops
packets (the rule's own counters say how many) while TCP still delivers; healing
removes every rule and the proxy.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.support.netfault import container_pid, net_faults

pytestmark = [pytest.mark.docker, pytest.mark.image, pytest.mark.cluster]

IMAGE = "farm-builder:bookworm"
PORT = 7000
ECHO = f"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT})); s.listen(64)
def serve(c):
    while (data := c.recv(65536)):
        c.sendall(data)
    c.close()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""
# Round trips on one connection, then on new ones; prints JSON of seconds.
PING = f"""
import json, socket, sys, time
def rtts(sock, n):
    out = []
    for _ in range(n):
        t = time.monotonic(); sock.sendall(b"x" * 100)
        got = b""
        while len(got) < 100:
            got += sock.recv(100 - len(got))
        out.append(time.monotonic() - t)
    return out
keep = socket.create_connection(("echo", {PORT}), timeout=30)
first = rtts(keep, 3)
fresh = []
for _ in range(3):
    c = socket.create_connection(("echo", {PORT}), timeout=30); fresh += rtts(c, 1); c.close()
try:
    later = rtts(keep, 1)
except OSError as e:
    later = [repr(e)]
print(json.dumps({{"kept": first, "fresh": fresh, "kept_later": later}}))
"""
# One kept connection: says "up", waits for a line, then tries it again.
KEEP = f"""
import socket, sys
keep = socket.create_connection(("echo", {PORT}), timeout=30)
keep.sendall(b"x"); keep.recv(1)
print("up", flush=True)
sys.stdin.readline()
try:
    keep.sendall(b"x"); print(keep.recv(1) or "EOFError")
except OSError as e:
    print(repr(e))
"""


def _docker(*args: str, timeout: float = 60) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=timeout
    ).stdout


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    net, echo, client = f"farm-nf-{tag}", f"farm-nf-echo-{tag}", f"farm-nf-client-{tag}"
    _docker("network", "create", "--internal", net)
    try:
        _docker("run", "-d", "--name", echo, "--network", net, "--network-alias", "echo",
                IMAGE, "python3", "-c", ECHO)  # fmt: skip
        _docker("run", "-d", "--name", client, "--network", net, IMAGE, "sleep", "600")
        yield echo, client
    finally:
        subprocess.run(["docker", "rm", "-f", echo, client], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)


def _ping(client: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = json.loads(_docker("exec", client, "python3", "-c", PING))
    return out


def test_delay_applies_to_new_connections_each_way(pair: tuple[str, str]) -> None:
    _echo, client = pair
    with net_faults([client]) as (fault,):
        base = _ping(client)
        assert max(base["fresh"]) < 0.05, base
        fault.delay(0.1, [PORT])
        slow = _ping(client)
    # Both ways: at least 2 x 0.1 s per round trip on a new connection.
    assert all(0.2 <= t < 1.0 for t in slow["fresh"]), slow
    healed = _ping(client)
    assert max(healed["fresh"]) < 0.05, healed
    assert _rules(client) == "", "heal left rules behind"


def test_reset_links_breaks_kept_connections_and_spares_the_proxy(
    pair: tuple[str, str],
) -> None:
    _echo, client = pair
    keeper = subprocess.Popen(
        ["docker", "exec", "-i", client, "python3", "-c", KEEP], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert keeper.stdout is not None and keeper.stdin is not None
    assert keeper.stdout.readline().strip() == "up"
    with net_faults([client]) as (fault,):
        fault.reset_links([PORT])
        out, _ = keeper.communicate("go\n", timeout=60)
        assert "Error" in out, out
        # New connections after the reset take the rules then in place.
        fault.delay(0.05, [PORT])
        slow = _ping(client)
        assert all(t >= 0.1 for t in slow["fresh"]), slow


def test_loss_drops_packets_and_tcp_still_delivers(pair: tuple[str, str]) -> None:
    _echo, client = pair
    with net_faults([client]) as (fault,):
        fault.drop(0.3, [PORT])
        result = _ping(client)
        dropped = _dropped(client)
    assert len(result["fresh"]) == 3
    assert dropped > 0, "the loss rule dropped nothing"
    assert _rules(client) == ""


def _rules(container: str) -> str:
    pid = str(container_pid(container))
    out = []
    for table in ("filter", "nat"):
        listed = subprocess.run(
            ["nsenter", "-t", pid, "-n", "iptables", "-w", "-t", table, "-S"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        out += [line for line in listed.splitlines() if "FARM-FAULT" in line]
    return "\n".join(out)


def _dropped(container: str) -> int:
    pid = str(container_pid(container))
    listed = subprocess.run(
        ["nsenter", "-t", pid, "-n", "iptables", "-w", "-L", "FARM-FAULT", "-v", "-x", "-n"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(int(line.split()[0]) for line in listed.splitlines()[2:] if "DROP" in line)
