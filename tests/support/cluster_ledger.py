"""The validators of a farm of hosts (``deploy/cluster``), as the ledger checks see them.

:class:`ClusterValidators` answers :class:`tests.support.ledger_checks.Validators` for
the containers ``v0``..``v3`` of one compose project, so the checks the loopback fault
tests end with (same checkpoint everywhere, 2f+1 co-signed, proofs a consumer checks)
run unchanged against real hosts. The test reaches each validator at its address on the
project's ``ledger`` network (the host has a leg on every bridge network, internal ones
included), read again after every (re)start. Faults are Docker's own: ``pause``,
``kill -s KILL``, ``stop``, ``network disconnect``; the operator key comes from the
cluster directory, where ``farm cluster up`` keeps it (the test runs as root).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from farm.keys import KeyPair, load_key
from tests.support.ledger_testnet import ValidatorReads, wait_for

__all__ = ["ClusterValidators", "docker"]


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``docker ARGS``; its stdout (raises with stderr when ``check`` and it fails)."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class ClusterValidators(ValidatorReads):
    """Validators ``v0``..``v{n-1}`` of compose project ``project`` (see the module)."""

    def __init__(self, project: str, cluster_dir: Path) -> None:
        self.project = project
        self.dir = cluster_dir
        self.genesis = cluster_dir / "genesis.json"
        data = json.loads(self.genesis.read_text())
        self._chain: str = data["chain_id"]
        self._ports = [int(v["http"].rsplit(":", 1)[1]) for v in data["validators"]]
        self.n = len(self._ports)
        self.network = f"{project}_ledger"
        self.client = httpx.Client(timeout=10.0)
        self._ips: dict[int, str] = {}

    # ------------------------------------------------------------------ who

    def container(self, i: int) -> str:
        """Validator ``i``'s container name (docker-compose 1.29's naming)."""
        return f"{self.project}_v{i}_1"

    @property
    def operator(self) -> KeyPair:
        return load_key(self.dir / "operator" / "operator.key")

    @property
    def chain_id(self) -> str:
        return self._chain

    def ip(self, i: int) -> str:
        """Validator ``i``'s address on the ledger network ('' while it has none)."""
        if i not in self._ips:
            fmt = f'{{{{with index .NetworkSettings.Networks "{self.network}"}}}}{{{{.IPAddress}}}}{{{{end}}}}'
            self._ips[i] = docker("inspect", "-f", fmt, self.container(i)).strip()
        return self._ips[i]

    def url(self, i: int) -> str:
        return f"http://{self.ip(i)}:{self._ports[i]}"

    # ------------------------------------------------------------------ faults

    def state(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            docker("inspect", "-f", "{{json .State}}", self.container(i))
        )
        return out

    def running(self, i: int) -> bool:
        """Whether its container runs (paused counts as running)."""
        return bool(self.state(i)["Running"])

    def start(self, i: int, *, wait: bool = True) -> None:
        """Start its container (a no-op if it runs) and wait until it answers."""
        docker("start", self.container(i))
        self._ips.pop(i, None)
        if wait:
            wait_for(f"v{i} to answer", lambda: self.status(i), timeout=90)

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i, wait=False)
        self.wait_answering()

    def kill(self, i: int) -> None:
        """SIGKILL its process tree (``docker kill``); it stays down until started."""
        docker("kill", "-s", "KILL", self.container(i))
        self._ips.pop(i, None)

    def stop(self, i: int) -> None:
        docker("stop", "-t", "20", self.container(i))
        self._ips.pop(i, None)

    def pause(self, i: int) -> None:
        docker("pause", self.container(i))

    def resume(self, i: int) -> None:
        docker("unpause", self.container(i))

    def disconnect(self, i: int) -> None:
        """Take it off the ledger network (its peers and the test lose it)."""
        docker("network", "disconnect", self.network, self.container(i))
        self._ips.pop(i, None)

    def connect(self, i: int) -> None:
        """Put it back on the ledger network, under its hostname."""
        docker("network", "connect", "--alias", f"v{i}", self.network, self.container(i))
        self._ips.pop(i, None)

    def heal(self) -> None:
        """Every validator unpaused, on its network and running."""
        for i in range(self.n):
            st = self.state(i)
            if st.get("Paused"):
                self.resume(i)
            if not self.ip(i):
                self._ips.pop(i, None)
                self.connect(i)
            if not st["Running"]:
                self.start(i, wait=False)
        self.wait_answering()

    def wait_answering(self, timeout: float = 90.0) -> None:
        """Wait until every validator answers its status."""
        for i in range(self.n):
            self._ips.pop(i, None)
            wait_for(f"v{i} to answer", lambda: self.status(i), timeout=timeout)  # noqa: B023

    def close(self) -> None:
        self.client.close()
