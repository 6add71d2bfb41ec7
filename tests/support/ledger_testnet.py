"""A testnet of real ``farm ledger run`` processes on 127.0.0.1, for tests and benches.

``LedgerTestnet(tmp, n)`` makes the validator keys, an operator and a coordinator key and
the genesis with ``farm ledger testnet`` on free ports; then each validator can be
started, stopped (SIGTERM), killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT)
by its index. ``groups`` may give a validator's process its own group id (a test can
then match its sockets with iptables ``-m owner --gid-owner``). Every wait polls with a deadline; nothing sleeps for a fixed time.
Each validator logs to ``<dir>/v<i>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from farm.cluster import free_port_range
from farm.keys import KeyPair, load_key
from ledger.genesis import load_genesis
from ledger.network import Network, PeerInfo

T = TypeVar("T")

FARM = [sys.executable, "-m", "farm.cli"]
LEDGER = [sys.executable, "-m", "ledger"]
"""``farm ledger`` without importing every other farm command first: the same app,
and a validator (re)starts in about a third of the CPU time on a busy machine."""

START_TIMEOUT = 60.0
"""How long a (re)started validator may take to serve and to connect: the machine
running the tests may be shared and busy."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


class ValidatorReads:
    """The HTTP reads every fault test makes of validator ``i``, over ``self.client`` at
    ``self.url(i)``: shared by the loopback testnet and the validators of a farm of
    hosts (:mod:`tests.support.cluster_ledger`)."""

    n: int
    client: httpx.Client

    def url(self, i: int) -> str:
        raise NotImplementedError

    def get(self, i: int, path: str, **params: Any) -> httpx.Response:
        """GET ``path`` from validator ``i``."""
        return self.client.get(self.url(i) + path, params=params)

    def status(self, i: int) -> dict[str, Any] | None:
        """Validator ``i``'s /v1/status, or None if it does not answer."""
        try:
            r = self.client.get(self.url(i) + "/v1/status", timeout=2.0)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def checkpoint(self, i: int) -> dict[str, Any] | None:
        """Validator ``i``'s latest co-signed checkpoint ({size, note}), if any."""
        try:
            r = self.get(i, "/v1/checkpoint")
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def checkpoint_body(self, i: int) -> str | None:
        """The checkpoint text (origin, size, root) without the signatures."""
        cp = self.checkpoint(i)
        return None if cp is None else str(cp["note"]).split("\n\n", 1)[0]

    def wait_same_checkpoint(
        self, validators: list[int] | None = None, size: int | None = None, timeout: float = 20.0
    ) -> str:
        """Wait until the validators serve the same checkpoint (of ``size`` if given)."""
        who = list(range(self.n)) if validators is None else validators

        def probe() -> str | None:
            bodies = {self.checkpoint_body(i) for i in who}
            if len(bodies) != 1:
                return None
            body = bodies.pop()
            if body is None or (size is not None and body.split("\n")[1] != str(size)):
                return None
            return body

        return wait_for(f"the same checkpoint on {who}", probe, timeout)


class LedgerTestnet(ValidatorReads):
    """N validators of one chain as separate processes (see the module docstring)."""

    def __init__(
        self, root: Path, n: int = 4, *, env: dict[str, str] | None = None, quorum: int = 3
    ) -> None:
        self.root = root
        self.n = n
        self.base_port = free_port_range(2 * n)
        self.env = {
            **os.environ,
            "FARM_LEDGER_TIMEOUT_PROPOSE": "0.6",
            "FARM_LEDGER_TIMEOUT_PREVOTE": "0.3",
            "FARM_LEDGER_TIMEOUT_PRECOMMIT": "0.3",
            "FARM_LEDGER_TIMEOUT_DELTA": "0.2",
            "FARM_LEDGER_STATUS_INTERVAL": "0.3",
            "FARM_LEDGER_SYNC_AFTER": "0.5",
            "FARM_LEDGER_RECONNECT_MAX": "0.5",
            "FARM_LEDGER_COSIGN_INTERVAL": "1.0",
            **(env or {}),
        }
        subprocess.run(
            [
                *LEDGER,
                "testnet",
                str(n),
                "--dir",
                str(root),
                "--base-port",
                str(self.base_port),
                "--quorum",
                str(quorum),
            ],
            check=True,
            capture_output=True,
            env=self.env,
        )
        self.genesis = root / "genesis.json"
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.groups: dict[int, int] = {}
        """Validator index → the group id its process runs with (default: ours)."""
        self.client = httpx.Client(timeout=30.0)

    # ------------------------------------------------------------------ keys

    @property
    def operator(self) -> KeyPair:
        """The genesis operator's key."""
        return load_key(self.root / "operator.key")

    @property
    def coordinator(self) -> KeyPair:
        """The genesis coordinator's key."""
        return load_key(self.root / "coordinator.key")

    @property
    def chain_id(self) -> str:
        """The chain id its genesis names (operator transactions are signed for it)."""
        chain: str = json.loads(self.genesis.read_text())["chain_id"]
        return chain

    def url(self, i: int) -> str:
        """Base URL of validator ``i``'s HTTP API."""
        return f"http://127.0.0.1:{self.http_port(i)}"

    def p2p_port(self, i: int) -> int:
        """Validator ``i``'s p2p listening port."""
        return self.base_port + 2 * i

    def http_port(self, i: int) -> int:
        """Validator ``i``'s HTTP port."""
        return self.base_port + 2 * i + 1

    # ------------------------------------------------------------------ processes

    def start(self, i: int, *, wait: bool = True) -> None:
        """Start validator ``i`` (appending to its log); wait until it answers HTTP."""
        assert i not in self.procs or self.procs[i].poll() is not None, f"v{i} is running"
        log = (self.root / f"v{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(
            [
                *LEDGER,
                "run",
                "--dir",
                str(self.root / f"v{i}"),
                "--genesis",
                str(self.genesis),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            group=self.groups.get(i),
        )
        log.close()
        if wait:
            wait_for(f"v{i} to serve HTTP", lambda: self.status(i) is not None, START_TIMEOUT)

    def start_all(self) -> None:
        """Start every validator, then wait until each sees all its peers."""
        for i in range(self.n):
            self.start(i, wait=False)
        for i in range(self.n):

            def connected(i: int = i) -> bool:
                s = self.status(i)
                return s is not None and len(s["peers"]) == self.n - 1

            try:
                wait_for(f"v{i} to connect to its peers", connected, START_TIMEOUT)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{self.describe()}") from None

    def describe(self) -> str:
        """Each validator's process state and the end of its log (for a failed wait)."""
        lines = []
        for i in range(self.n):
            p = self.procs.get(i)
            state = (
                "not started"
                if p is None
                else f"exit {p.poll()}"
                if p.poll() is not None
                else "running"
            )
            log = self.root / f"v{i}.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            lines.append(f"--- v{i} ({state}, ports {self.p2p_port(i)}/{self.http_port(i)}):")
            lines += [f"    {t}" for t in tail]
        return "\n".join(lines)

    def running(self, i: int) -> bool:
        """Whether validator ``i``'s process is alive (paused counts as alive)."""
        p = self.procs.get(i)
        return p is not None and p.poll() is None

    def stop(self, i: int, timeout: float = 10.0) -> int:
        """SIGTERM validator ``i`` and wait for it to exit; return its exit status."""
        p = self.procs[i]
        p.send_signal(signal.SIGTERM)
        return p.wait(timeout)

    def kill(self, i: int) -> None:
        """SIGKILL validator ``i``."""
        p = self.procs[i]
        p.kill()
        p.wait(10)

    def pause(self, i: int) -> None:
        """SIGSTOP validator ``i``."""
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT validator ``i``."""
        self.procs[i].send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill whatever still runs."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(10)
        self.client.close()

    def log(self, i: int) -> str:
        """Validator ``i``'s log so far."""
        return (self.root / f"v{i}.log").read_text(errors="replace")

    # ------------------------------------------------------------------ HTTP

    def submit(self, i: int, tx: bytes, timeout: float = 30.0) -> httpx.Response:
        """POST a transaction's bytes to validator ``i``."""
        return self.client.post(
            self.url(i) + "/v1/tx",
            content=tx,
            headers={"content-type": "application/octet-stream"},
            timeout=timeout,
        )


@contextlib.asynccontextmanager
async def speak_as(net: LedgerTestnet, name: str, target: int = 0) -> AsyncIterator[Network]:
    """The p2p transport of validator ``name`` (its genesis key, its listen port),
    connected to validator ``target`` only: a test speaks for a validator whose
    process is not running, e.g. to send what a Byzantine one would."""
    genesis = load_genesis(net.genesis)
    peer_info = genesis.validator(f"v{target}")
    assert peer_info is not None
    index = int(name.removeprefix("v"))
    me = Network(
        genesis.chain_id,
        name,
        load_key(net.root / name / "validator.key").private,
        ("127.0.0.1", net.p2p_port(index)),
        [PeerInfo(peer_info.name, "127.0.0.1", net.p2p_port(target), peer_info.ed25519_key())],
        lambda _peer, _raw: None,
        reconnect_max=0.2,
    )
    await me.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while me.connected() != [peer_info.name]:
            assert time.monotonic() < deadline, f"v{target} never connected to {name}"
            await asyncio.sleep(0.05)
        yield me
    finally:
        await me.close()
