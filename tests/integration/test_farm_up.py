"""``farm up``, the README's first command: the whole farm on this machine, for real.

Four validators, Redis, three builders in Docker, the coordinator and the distribution
node run as their own processes; the shipped recipe is rebuilt, verified, committed to
the ledger and served. A second run on the same root reuses the chain and the builders.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from farm.localfarm import local_farm

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "iniconfig" / "2.0.0.yaml"


def test_farm_up_takes_a_recipe_to_a_served_verified_artifact(
    tmp_path: Path, builder_image: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "up", str(RECIPE), "--root", str(tmp_path / "farm")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "verified and served: iniconfig 2.0.0" in out, out
    assert "pip install --index-url" in out, out
    genesis = json.loads((tmp_path / "farm" / "ledger" / "genesis.json").read_text())
    assert len(genesis["validators"]) == 4


def test_a_second_start_reuses_the_chain_and_the_builders(
    tmp_path: Path, builder_image: str
) -> None:
    root = tmp_path / "farm"
    with local_farm(root, validators=4, builders=3) as first:
        ids = sorted(b.builder_id for b in first.cluster.builders)
        approved = httpx.get(f"{first.coordinator_url}/v1/builders", timeout=10).json()
        assert sorted(b["id"] for b in approved if b["approved"]) == ids
        # farm up approved them as the operator, each in its own domain; the coordinator
        # was given no operator key (ADR 34, 35).
        assert sorted(b["domain"] for b in approved) == ["local-1", "local-2", "local-3"]
        serve = next(p for p in first.processes if p.name == "coordinator")
        assert not any("operator" in arg for arg in serve.argv), serve.argv
        assert first.profile()["FARM_OPERATOR_KEY"] == str(root / "ledger" / "operator.key")
        size_before = httpx.get(f"{first.ledger_urls[0]}/v1/status", timeout=10).json()["size"]
        assert size_before >= 3  # the three enroll transactions
    with local_farm(root, validators=4, builders=3) as second:
        assert sorted(b.builder_id for b in second.cluster.builders) == ids
        status = httpx.get(f"{second.ledger_urls[0]}/v1/status", timeout=10).json()
        # Nothing enrolled twice: the log kept its entries and grew by none.
        assert status["size"] == size_before
