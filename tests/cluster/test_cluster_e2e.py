"""Cluster test group 1 (issue 13, "End to end"): a farm of hosts takes a shipped recipe
from submission to ``pip install``, and the operator adds and retires a builder host.

One farm of containers (``deploy/cluster``, the ``farm_hosts`` fixture): four validators,
Redis, PostgreSQL, the coordinator, three builder hosts each with its own Docker Engine,
a distribution node and a client that reaches nothing but the distribution node.

1. ``recipes/iniconfig/2.0.0.yaml`` is submitted to the coordinator; it is rebuilt on
   the three builder hosts (the verified build's agreeing builders are exactly b1..b3's
   ids), attested on the ledger, mirrored by the distribution node; in the client,
   ``pip install --index-url https://dist:8700/simple/`` installs it and ``farm pull``
   verifies it against the genesis alone.
2. ``add-builder b4``: a fifth host enrolls with its one-time token and is approved (its
   enroll transaction committed); ``retire-builder b4``: no longer approved (so no longer
   scheduled), its retire transaction committed, its container stopped.

Each part ends with every validator serving the same checkpoint, co-signed by 2f+1.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.coordinator.client import CoordinatorClient
from farm.hosts.operate import add_builder, retire_builder
from farm.keys import load_key
from tests.support.hosts import FarmHosts, same_checkpoint
from tests.support.ledger_testnet import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker]

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "iniconfig" / "2.0.0.yaml"
NAME, VERSION = "iniconfig", "2.0.0"


def _say(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _client(hosts: FarmHosts) -> CoordinatorClient:
    return hosts.client()


def _ledger_entry(hosts: FarmHosts, index: int) -> dict[str, Any]:
    """Entry ``index`` as v0 serves it, its transaction decoded."""
    out = hosts.exec(
        "v0", "/opt/farm/bin/python", "-c",
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        f"'http://v0:26657/v1/entries/{index}', timeout=10).read().decode())",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    entry: dict[str, Any] = json.loads(out.stdout)
    entry["tx_json"] = json.loads(base64.b64decode(entry["tx"]))
    return entry


def _builder(hosts: FarmHosts, builder_id: str) -> dict[str, Any]:
    found: dict[str, Any] = hosts.get(f"/v1/builders/{builder_id}")
    return found


def test_a_recipe_goes_from_the_coordinator_to_pip_in_the_client(farm_hosts: FarmHosts) -> None:
    hosts = farm_hosts
    assert sorted(hosts.builders) == ["b1", "b2", "b3"]
    operator = load_key(hosts.dir / "operator" / "operator.key").keyid
    for name, builder_id in hosts.builders.items():
        # Approved in a domain of its own, by the operator on this host (the coordinator
        # container has no operator key: ADR 34, 35).
        row = wait_for(
            f"{name}'s enroll transaction committed",
            lambda b=builder_id: (
                ((r := _builder(hosts, b))["ledger_index"] is not None and r) or None
            ),
            120,
        )
        assert row["approved"] is True and row["domain"] == f"site-{name}"
        enroll = _ledger_entry(hosts, int(row["ledger_index"]))["tx_json"]
        assert enroll["domain"] == f"site-{name}" and enroll["operator"] == operator
    listed = hosts.exec("coordinator", "ls", "-A", "/run/farm-secrets")
    assert listed.returncode == 0, listed.stderr
    coordinator_files = listed.stdout.split()
    assert sorted(coordinator_files) == [
        "coordinator.key", "postgres-password", "redis-password", "tls.key", "tls.pem",
    ]  # fmt: skip

    start = time.monotonic()
    builds = _client(hosts).request_build(RECIPE.read_text(encoding="utf-8"), None)
    assert [b["arch"] for b in builds] == ["amd64"]
    build_id = builds[0]["id"]

    def decided() -> dict[str, Any] | None:
        b: dict[str, Any] = hosts.get(f"/v1/builds/{build_id}")
        return b if b["status"] in ("verified", "disputed", "failed") else None

    build = wait_for(f"build {build_id} decided", decided, 900)
    built = time.monotonic() - start
    assert build["status"] == "verified", build
    assert set(build["verdict"]["agreed"]) == set(hosts.builders.values())
    attempts = {a["builder_id"] for a in build.get("attempts") or []}
    assert attempts == set(hosts.builders.values()), build.get("attempts")

    def attested() -> dict[str, Any] | None:
        items = hosts.get("/v1/attestations", name=NAME, version=VERSION)["items"]
        done = [a for a in items if a.get("ledger_index") is not None]
        return done[0] if done else None

    attestation = wait_for("the attestation committed", attested, 120)
    committed = time.monotonic() - start
    index = int(attestation["ledger_index"])
    assert '"attest"' in json.dumps(_ledger_entry(hosts, index)["tx_json"])
    same_checkpoint(hosts, wait_for("v0 past the attestation", lambda: _size_past(hosts, index)))

    def mirrored() -> bool | None:
        try:
            r = httpx.get(
                f"{hosts.dist_url}/v1/packages/{NAME}/{VERSION}", timeout=5, verify=hosts.verify
            )
        except httpx.HTTPError:
            return None
        return (r.status_code == 200 and bool(r.json().get("artifacts"))) or None

    wait_for("the distribution node serves it", mirrored, 180)
    served = time.monotonic() - start

    venv = hosts.exec("client", "python3", "-m", "venv", "/home/farm/venv")
    assert venv.returncode == 0, venv.stderr
    pip = hosts.exec(
        "client", "/home/farm/venv/bin/pip", "install", "--disable-pip-version-check",
        "--index-url", "https://dist:8700/simple/", "--cert", "/etc/farm/ca.pem",
        f"{NAME}=={VERSION}",
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    imported = hosts.exec(
        "client", "/home/farm/venv/bin/python", "-c",
        "import importlib.metadata as m; print(m.version('iniconfig'))",
    )  # fmt: skip
    assert imported.stdout.strip() == VERSION, imported.stderr

    pull = hosts.exec(
        "client", "farm", "pull", f"{NAME}=={VERSION}", "--dest", "/home/farm/pulled",
        "--genesis", "/etc/farm/genesis.json", "--node", "https://dist:8700",
    )  # fmt: skip
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert "3 builders agree" in pull.stdout, pull.stdout
    wheel = f"/home/farm/pulled/{NAME}-{VERSION}-py3-none-any.whl"
    listed = hosts.exec("client", "ls", wheel, f"{wheel}.farm-evidence.json")
    assert listed.returncode == 0, listed.stderr
    _say(f"verified in {built:.0f} s, committed at {committed:.0f} s, served at {served:.0f} s")


def _size_past(hosts: FarmHosts, index: int) -> int | None:
    out = hosts.exec(
        "v0", "/opt/farm/bin/python", "-c",
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        "'http://v0:26657/v1/status', timeout=10).read().decode())",
    )  # fmt: skip
    if out.returncode != 0:
        return None
    size = int(json.loads(out.stdout)["size"])
    return size if size > index else None


def test_a_builder_host_is_added_and_retired(farm_hosts: FarmHosts) -> None:
    hosts = farm_hosts
    start = time.monotonic()
    b4 = add_builder(hosts.dir, "b4", _say)
    joined = time.monotonic() - start
    assert b4 not in hosts.builders.values()
    row = _builder(hosts, b4)
    assert row["approved"] is True and row["hostname"] == "b4" and row["domain"] == "site-b4"
    row = wait_for(
        "b4's enroll transaction committed",
        lambda: ((r := _builder(hosts, b4))["ledger_index"] is not None and r) or None,
        120,
    )
    enroll = _ledger_entry(hosts, int(row["ledger_index"]))["tx_json"]
    assert "enroll" in json.dumps(enroll) and b4 in json.dumps(enroll)
    assert hosts.health("b4") == "healthy"

    retire_builder(hosts.dir, "b4", _say)
    row = _builder(hosts, b4)
    assert row["approved"] is False
    approved = {b["id"] for b in hosts.get("/v1/builders") if b["approved"]}
    assert approved == set(hosts.builders.values())
    size = wait_for("v0's status", lambda: _size_past(hosts, int(row["ledger_index"])), 60)
    retire = _ledger_entry(hosts, size - 1)["tx_json"]
    assert "retire" in json.dumps(retire) and b4 in json.dumps(retire), retire
    assert hosts.state("b4") == "exited"
    same_checkpoint(hosts, size)
    _say(f"b4 joined in {joined:.0f} s; retired at {time.monotonic() - start:.0f} s")
