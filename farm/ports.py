"""Free TCP ports on 127.0.0.1 for the servers a local farm, a bench or a test starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from farm.errors import ConfigError

__all__ = ["free_port", "free_port_range"]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
"""Ports this process has already handed out: two callers never get the same one."""


def _listen_ports() -> range:
    """Ports to listen on: above 10000 and below the kernel's ephemeral range.

    Outgoing connections take their local port from the ephemeral range
    (``ip_local_port_range``), so a port chosen there can be taken by any client between
    the check and the server's bind; that lost a validator its port in CI. Below the range
    only listeners compete.
    """
    try:
        low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10_000, max(low, 12_000))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1, outside the ephemeral range."""
    return free_port_range(1)


def free_port_range(count: int) -> int:
    """A port P such that P .. P+count-1 are free on 127.0.0.1 right now.

    Chosen below the ephemeral range (see :func:`_listen_ports`) and never handed out
    twice by this process.
    """
    ports = _listen_ports()
    for _ in range(500):
        base = random.randrange(ports.start, ports.stop - count)
        wanted = range(base, base + count)
        if any(p in _handed_out for p in wanted):
            continue
        socks: list[socket.socket] = []
        try:
            for port in wanted:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        _handed_out.update(wanted)
        return base
    raise ConfigError("found no free range of ports on 127.0.0.1")
