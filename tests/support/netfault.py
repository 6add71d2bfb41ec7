"""Network faults on one container's links, made from the host: loss and delay.

This kernel has no ``tc netem``, so the cluster tests make the faults CometBFT's e2e
tests make with netem another way, inside the container's own network namespace
(entered with ``nsenter -t PID -n``, so the image needs no iptables and no capability):

- **loss**: ``iptables -m statistic --mode random --probability P -j DROP`` on the
  namespace's INPUT and OUTPUT for the given TCP ports (both directions of a link), or
  on OUTPUT alone (``ingress=False``): what ``netem loss`` on every host does, when
  every container of a link has the rule (each packet then meets one rule, not two:
  5 % on both ends would lose 1 - 0.95² ≈ 9.75 % of the packets);
- **delay**: the namespace's new outgoing TCP connections to the given ports are
  redirected (``nat OUTPUT ... REDIRECT``) to a small proxy running in the same
  namespace (:mod:`tests.support.delay_proxy`), which connects to the original
  destination (``SO_ORIGINAL_DST``) and forwards every chunk, in order, ``delay``
  seconds after it arrived, in both directions. The proxy marks its own sockets
  (``SO_MARK``), and marked traffic is not redirected again. Connections that already
  exist are not redirected: :meth:`NetFault.reset_links` destroys them (``ss -K``), so
  the program dials again, through the proxy.

Every rule lives in chains of its own (``FARM-FAULT``, ``FARM-FAULT-OUT``) that
:meth:`NetFault.heal` removes, and a namespace disappears with its container, so
nothing outlives a test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MARK", "NetFault", "container_pid", "net_faults"]

#: The fwmark the delay proxy puts on its own connections.
MARK = 0x7E
CHAIN = "FARM-FAULT"
PROXY_PORT = 15999
ROOT = Path(__file__).resolve().parents[2]


def container_pid(container: str) -> int:
    """The host PID of ``container``'s main process (its namespaces are that process's)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", container],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    pid = int(out)
    if pid <= 0:
        raise RuntimeError(f"container {container} is not running")
    return pid


@dataclass
class NetFault:
    """Faults in one container's network namespace (see the module docstring)."""

    container: str
    pid: int
    proxy: subprocess.Popen[bytes] | None = None
    _chains: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    """(table, chain) → the built-in chains that jump to it."""

    def _ipt(self, table: str, *args: str, check: bool = True) -> int:
        cmd = ["nsenter", "-t", str(self.pid), "-n", "iptables", "-w", "-t", table, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        return done.returncode

    def _chain(self, table: str, hooks: Sequence[str], name: str = CHAIN) -> str:
        """Make chain ``name`` of ``table`` once, jumped to from ``hooks``; its name."""
        if (table, name) not in self._chains:
            self._ipt(table, "-N", name)
            for hook in hooks:
                self._ipt(table, "-I", hook, "1", "-j", name)
            self._chains[(table, name)] = tuple(hooks)
        return name

    def drop(self, probability: float, ports: Sequence[int], *, ingress: bool = True) -> None:
        """Drop each packet to or from ``ports`` (TCP) with ``probability``: packets
        leaving the namespace and, if ``ingress``, those entering it."""
        if not 0 < probability < 1:
            raise ValueError(f"probability must be in (0, 1), not {probability}")
        chain = (
            self._chain("filter", ["INPUT", "OUTPUT"])
            if ingress
            else self._chain("filter", ["OUTPUT"], f"{CHAIN}-OUT")
        )
        rand = ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
        for port in ports:
            for way in ("--dport", "--sport"):
                self._ipt("filter", "-A", chain, "-p", "tcp", way, str(port), *rand, "-j", "DROP")

    def dropped(self) -> int:
        """Packets the loss rules dropped so far (0 without rules)."""
        total = 0
        for table, chain in self._chains:
            if table != "filter":
                continue
            cmd = ["nsenter", "-t", str(self.pid), "-n", "iptables", "-w", "-t", table,
                   "-L", chain, "-n", "-v", "-x"]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
            total += sum(
                int(line.split()[0]) for line in done.stdout.splitlines() if "DROP" in line.split()
            )
        return total

    def delay(self, seconds: float, ports: Sequence[int]) -> None:
        """Delay new outgoing TCP connections to ``ports`` by ``seconds`` each way."""
        if seconds <= 0:
            raise ValueError(f"delay must be positive, not {seconds}")
        if self.proxy is None:
            self.proxy = subprocess.Popen(
                ["nsenter", "-t", str(self.pid), "-n", sys.executable, "-m",
                 "tests.support.delay_proxy", "--port", str(PROXY_PORT),
                 "--delay", str(seconds), "--mark", str(MARK)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
            )  # fmt: skip
            self._wait_proxy()
        self._chain("nat", ["OUTPUT"])
        self._ipt("nat", "-A", CHAIN, "-m", "mark", "--mark", str(MARK), "-j", "RETURN")
        for port in ports:
            self._ipt(
                "nat", "-A", CHAIN, "-p", "tcp", "--dport", str(port),
                "-j", "REDIRECT", "--to-ports", str(PROXY_PORT),
            )  # fmt: skip

    def _wait_proxy(self) -> None:
        assert self.proxy is not None
        deadline = time.monotonic() + 10
        probe = ["nsenter", "-t", str(self.pid), "-n", "bash", "-c",
                 f"exec 3<>/dev/tcp/127.0.0.1/{PROXY_PORT}"]  # fmt: skip
        while time.monotonic() < deadline:
            if self.proxy.poll() is not None:
                err = self.proxy.stderr.read().decode() if self.proxy.stderr else ""
                raise RuntimeError(f"delay proxy in {self.container} exited: {err.strip()}")
            if subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"delay proxy in {self.container} did not listen within 10 s")

    def reset_links(self, ports: Sequence[int]) -> None:
        """Destroy this namespace's TCP sockets to or from ``ports`` (``ss -K``).

        The program sees its links fail and dials again; new connections go through
        the rules in place (the delay proxy). The proxy's own sockets are spared."""
        for port in ports:
            for way in ("dport", "sport"):
                cmd = ["nsenter", "-t", str(self.pid), "-n", "ss", "-K", "-tn",
                       f"{way} = :{port}", "and", "not", "fwmark", f"{MARK:#x}/0xffffffff"]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")

    def heal(self) -> None:
        """Remove every rule and stop the proxy (a gone namespace needs nothing)."""
        try:
            alive = container_pid(self.container) == self.pid
        except (RuntimeError, ValueError, subprocess.CalledProcessError):
            alive = False
        if alive:
            for (table, chain), hooks in sorted(self._chains.items()):
                for hook in hooks:
                    self._ipt(table, "-D", hook, "-j", chain, check=False)
                self._ipt(table, "-F", chain, check=False)
                self._ipt(table, "-X", chain, check=False)
        self._chains.clear()
        if self.proxy is not None:
            self.proxy.terminate()
            try:
                self.proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait()
            self.proxy = None


@contextmanager
def net_faults(containers: Sequence[str]) -> Iterator[list[NetFault]]:
    """One :class:`NetFault` per container, all healed on exit (even on failure)."""
    faults = [NetFault(c, container_pid(c)) for c in containers]
    try:
        yield faults
    finally:
        for fault in faults:
            fault.heal()
