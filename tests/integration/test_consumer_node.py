"""``farm pull`` and ``farm verify`` as real processes against a real distribution node.

Four ``farm ledger run`` validators, a ``farm serve`` coordinator whose staging store
holds the bytes, and ``farm dist serve`` following the ledger (the same world as
tests/integration/test_dist_node.py). The consumer trusts only the genesis file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.coordinator.staging import Staging
from farm.keys import generate_key
from farm.transactions import make_enroll, make_revoke
from ledger.genesis import load_genesis
from tests.integration.test_dist_node import (
    Proc,
    World,
    base,
    coordinator_proc,
    dist_proc,
    served,
    wait_for,
    wheel_bytes,
)
from tests.support.ledger_testnet import LedgerTestnet

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

FARM = [sys.executable, "-m", "farm.cli"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Proc]]:
    root = tmp_path_factory.mktemp("consumer")
    net = LedgerTestnet(root / "ledger", 4)
    coordinator, staging_dir = coordinator_proc(root)
    dist: Proc | None = None
    try:
        net.start_all()
        coordinator.start()
        builders = [generate_key() for _ in range(3)]
        w = World(root, net, load_genesis(net.genesis), coordinator, Staging(staging_dir), builders)
        for i, b in enumerate(builders):
            w.submit(
                make_enroll(
                    net.operator,
                    b.public_dict(),
                    ["amd64"],
                    f"host{i}",
                    domain=f"host{i}",
                    chain=net.chain_id,
                )
            )
        dist = dist_proc(root, net.genesis, w.ledger_urls, w.coordinator_url)
        dist.start()
        yield w, dist
    finally:
        if dist is not None:
            dist.stop()
        coordinator.stop()
        net.close()


def farm(world: World, tmp: Path, *args: str, node: str | None = None) -> tuple[int, str]:
    """Run the `farm` command line as a process; (exit status, stdout + stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env["FARM_GENESIS"] = str(world.net.genesis)
    env["FARM_STATE_DIR"] = str(tmp / "state")
    if node is not None:
        env["FARM_DIST_URL"] = node
    done = subprocess.run(
        [*FARM, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_pull_and_verify_against_the_real_node(node: tuple[World, Proc], tmp_path: Path) -> None:
    world, dist = node
    whl = wheel_bytes("consumed", "1.0")
    filename = "consumed-1.0-py3-none-any.whl"
    digest = hashlib.sha256(whl).hexdigest()
    world.attest("consumed", "1.0", {filename: whl})
    served(dist, digest)

    status, out = farm(
        world, tmp_path, "pull", "consumed==1.0", "-o", str(tmp_path / "dl"), node=base(dist)
    )
    assert status == 0, out
    assert "3 builders agree" in out, out
    pulled = tmp_path / "dl" / filename
    assert pulled.read_bytes() == whl
    saved = json.loads((tmp_path / "dl" / (filename + ".farm-evidence.json")).read_text())
    assert saved["artifact"]["revoked"] is None and saved["not_revoked"]["count"] >= 0
    assert list((tmp_path / "state" / "ledgers").glob("*.json"))

    status, out = farm(world, tmp_path, "verify", str(pulled), "--offline")
    assert status == 0, out
    assert "from evidence file" in out

    loose = tmp_path / filename  # no evidence beside it: the node is asked by digest
    loose.write_bytes(whl)
    status, out = farm(world, tmp_path, "verify", str(loose), node=base(dist))
    assert status == 0, out
    assert base(dist) in out

    # Freeze: the saved evidence ages; an idle ledger's validators re-cosign their latest
    # checkpoint with the current time, and the node passes that on.
    time.sleep(20)  # the validators re-cosign every 5 s when idle
    status, out = farm(world, tmp_path, "verify", str(pulled), "--offline", "--max-age", "15")
    assert status == 1, out
    assert "old, more than the allowed 15 s" in out and "--allow-stale" in out
    status, out = farm(
        world, tmp_path, "verify", str(pulled), "--online", "--max-age", "15", node=base(dist)
    )
    assert status == 0, out

    world.submit(
        make_revoke(
            world.net.operator, digest, "CVE-2026-0002: bad build", chain=world.net.chain_id
        )
    )

    def refused() -> str | None:
        code, text = farm(
            world, tmp_path, "pull", "consumed==1.0", "-o", str(tmp_path / "again"), node=base(dist)
        )
        return text if code == 1 and "CVE-2026-0002" in text else None

    text = wait_for("the pull to be refused as revoked", refused, timeout=60)
    assert "revoked" in text
    assert not (tmp_path / "again" / filename).exists()
