"""Builds on a running farm of hosts, as the service fault tests (groups 4 to 6) use them.

:class:`Builds` requests a shipped recipe from the coordinator, follows it to its verdict
and ends each scenario with the closing check of issue 13 (:meth:`Builds.committed_once`):
the build is verified, the coordinator lists exactly one committed attestation of it,
the validators' log holds exactly one attest transaction for it (found by the build id
the provenance carries, ``runDetails.metadata.invocationId``) at the index the
coordinator recorded, and all four validators serve the same 2f+1 co-signed checkpoint.

Also here: :func:`blocked`, a full cut of one container's TCP traffic to some ports
(``iptables DROP`` in its own network namespace, the way :mod:`tests.support.netfault`
makes partial loss), for a link a Docker network cut would not isolate alone; and
:func:`report`, the one line of timings every scenario prints.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.cluster_ledger import ClusterValidators
from tests.support.hosts import FarmHosts, same_checkpoint
from tests.support.ledger_testnet import wait_for
from tests.support.netfault import container_pid

__all__ = ["RECIPES", "Builds", "blocked", "report"]

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DECIDED = ("verified", "disputed", "failed")
CUT_CHAIN = "FARM-CUT"


def report(name: str, **figures: float) -> None:
    """One line of timings (seconds) and counts for the closing note."""
    text = ", ".join(
        f"{k} {v}" if isinstance(v, int) else f"{k} {v:.1f} s" for k, v in figures.items()
    )
    print(f"\n[{name}] {text}", flush=True)


def attested_build(tx: bytes) -> str | None:
    """The build id an attest transaction's provenance names (None: not an attest)."""
    try:
        body = json.loads(tx)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("type") != "attest":
        return None
    payload = json.loads(base64.b64decode(body["bundle"]["envelope"]["payload"]))
    return str(payload["predicate"]["runDetails"]["metadata"]["invocationId"])


@dataclass
class Builds:
    """Requests and checks of builds on ``hosts`` (see the module docstring)."""

    hosts: FarmHosts
    vals: ClusterValidators = field(init=False)

    def __post_init__(self) -> None:
        self.vals = ClusterValidators(self.hosts.project, self.hosts.dir)

    def close(self) -> None:
        self.vals.close()

    # ------------------------------------------------------------------ requests

    def request(self, recipe: str) -> str:
        """Ask the coordinator to build ``recipes/<recipe>.yaml`` (amd64); its build id."""
        client = self.hosts.client()
        builds = client.request_build((RECIPES / f"{recipe}.yaml").read_text("utf-8"), None)
        assert [b["arch"] for b in builds] == ["amd64"], builds
        return str(builds[0]["id"])

    def build(self, build_id: str) -> dict[str, Any] | None:
        """The build as the coordinator shows it, or None while it does not answer."""
        try:
            r = httpx.get(
                f"{self.hosts.coordinator_url}/v1/builds/{build_id}",
                timeout=10,
                verify=self.hosts.verify,
            )
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        found: dict[str, Any] = r.json()
        return found

    def running(self, build_id: str, timeout: float = 600) -> dict[str, Any]:
        """Wait until a builder has started on the build (an attempt is recorded)."""

        def started() -> dict[str, Any] | None:
            b = self.build(build_id)
            return b if b is not None and (b.get("attempts") or b["status"] in DECIDED) else None

        return wait_for(f"build {build_id} started", started, timeout)

    def decided(self, build_id: str, timeout: float = 900) -> dict[str, Any]:
        """Wait for the build's verdict; assert it is verified by the three builder hosts."""

        def done() -> dict[str, Any] | None:
            b = self.build(build_id)
            return b if b is not None and b["status"] in DECIDED else None

        build = wait_for(f"build {build_id} decided", done, timeout)
        assert build["status"] == "verified", build
        assert len(set(build["verdict"]["agreed"])) >= 3, build["verdict"]
        return build

    def ready(self) -> bool:
        """The coordinator answers ``GET /readyz`` with 200."""
        try:
            url = f"{self.hosts.coordinator_url}/readyz"
            return httpx.get(url, timeout=5, verify=self.hosts.verify).status_code == 200
        except httpx.HTTPError:
            return False

    # ------------------------------------------------------------------ the ledger

    def log_size(self, i: int = 0) -> int:
        """Validator ``i``'s log size."""
        return int(wait_for(f"v{i}'s status", lambda: self.vals.status(i), 60)["size"])

    def attest_entries(self, build_id: str, start: int = 0, i: int = 0) -> list[int]:
        """Indexes of validator ``i``'s log entries at or past ``start`` that attest
        ``build_id``."""
        found = []
        for index in range(start, self.log_size(i)):
            r = self.vals.get(i, f"/v1/entries/{index}")
            assert r.status_code == 200, f"entry {index}: {r.status_code} {r.text}"
            if attested_build(base64.b64decode(r.json()["tx"])) == build_id:
                found.append(index)
        return found

    # ------------------------------------------------------------------ the check

    def attestations(self, build_id: str, name: str, version: str) -> list[dict[str, Any]]:
        """The coordinator's committed attestations of ``name`` ``version`` for the build."""
        items = self.hosts.get("/v1/attestations", name=name, version=version)["items"]
        return [a for a in items if a["build_id"] == build_id]

    def committed_once(
        self, build_id: str, name: str, version: str, *, start: int = 0, timeout: float = 180
    ) -> dict[str, Any]:
        """The closing check (see the module docstring); the coordinator's attestation.

        ``start``: a log size from before the build was requested (entries before it
        cannot attest it)."""
        self.decided(build_id)
        wait_for(
            f"build {build_id}'s attestation committed",
            lambda: [a for a in self.attestations(build_id, name, version) if a["ledger_index"]
                     is not None] or None,
            timeout,
        )  # fmt: skip
        listed = self.hosts.get("/v1/attestations", name=name, version=version)["items"]
        mine = [a for a in listed if a["build_id"] == build_id]
        assert len(mine) == 1, f"{name} {version}: build {build_id} attested {len(mine)} times"
        # Others of the release may stand from earlier tests, never from after ``start``.
        later = [a for a in listed if a["build_id"] != build_id
                 and (a["ledger_index"] is None or int(a["ledger_index"]) >= start)]  # fmt: skip
        assert later == [], f"{name} {version}: attested again by {later}"
        attestation: dict[str, Any] = mine[0]
        assert attestation["status"] == "committed"
        rejected = self.hosts.get(
            "/v1/attestations", name=name, version=version, status="rejected"
        )["items"]
        assert rejected == [], rejected
        index = int(attestation["ledger_index"])
        size = wait_for(
            "v0 past the attestation", lambda: ((s := self.log_size()) > index and s) or None, 60
        )
        on_ledger = self.attest_entries(build_id, start)
        assert on_ledger == [index], f"build {build_id} attested at {on_ledger} on the ledger"
        same_checkpoint(self.hosts, size)
        return attestation


@contextmanager
def blocked(container: str, ports: Sequence[int]) -> Iterator[None]:
    """Every TCP packet ``container`` sends to ``ports`` dropped, in its own network
    namespace (``nsenter -t PID -n iptables``), for the duration of the block; the rules
    are removed on exit (a namespace that went away with its container needs nothing)."""
    pid = container_pid(container)

    def ipt(*args: str, check: bool = True) -> None:
        cmd = ["nsenter", "-t", str(pid), "-n", "iptables", "-w", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")

    ipt("-N", CUT_CHAIN)
    try:
        ipt("-I", "OUTPUT", "1", "-j", CUT_CHAIN)
        for port in ports:
            ipt("-A", CUT_CHAIN, "-p", "tcp", "--dport", str(port), "-j", "DROP")
        yield
    finally:
        try:
            alive = container_pid(container) == pid
        except (RuntimeError, ValueError, subprocess.CalledProcessError):
            alive = False
        if alive:
            ipt("-D", "OUTPUT", "-j", CUT_CHAIN, check=False)
            ipt("-F", CUT_CHAIN, check=False)
            ipt("-X", CUT_CHAIN, check=False)


def docker(*args: str, timeout: float = 120) -> str:
    """``docker ARGS``'s stdout; raises with its stderr when it fails."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def wait_healthy(hosts: FarmHosts, service: str, timeout: float = 180) -> float:
    """Wait until ``service``'s container is healthy; the seconds it took."""
    t0 = time.monotonic()
    wait_for(f"{service} healthy", lambda: hosts.health(service) == "healthy" or None, timeout)
    return time.monotonic() - t0
