"""End to end: a shipped recipe built by three real builders, verified, committed to
four real validators, followed and mirrored by ``farm dist serve``, and installed by
real pip in a fresh virtual environment through the node's index.

The whole farm is the coordinator-ledger test's (Redis, three Celery builder workers
running Docker, ``farm serve --ledger``, ``farm ledger run`` x4); the node trusts only
the genesis file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_coordinator_ledger import Farm, _farm, farm  # noqa: F401
from tests.integration.test_dist_node import Proc, base, dist_proc, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "tomli" / "2.2.1.yaml"
WHEEL = "tomli-2.2.1-py3-none-any.whl"
UPSTREAM = "cb55c73c5f4408779d0cf3eef9f762b9c9f147a77de7b258bef0a5628adc85cc"


@pytest.fixture(scope="module")
def node(farm: Farm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:  # noqa: F811
    root = tmp_path_factory.mktemp("distpip")
    urls = [farm.net.url(i) for i in range(farm.net.n)]
    p = dist_proc(root, farm.net.genesis, urls, farm.url)
    p.start(timeout=60)
    try:
        yield p
    finally:
        p.stop()


def test_pip_installs_a_verified_wheel_through_the_node(
    farm: Farm,  # noqa: F811
    node: Proc,
    tmp_path: Path,
) -> None:
    wait_for(
        "three enroll transactions",
        lambda: all(b["ledger_index"] is not None for b in farm.get("/v1/builders")) or None,
        90,
    )
    proc = _farm(
        "submit", str(RECIPE), "--coordinator", farm.url, "--operator-token", farm.token,
        "--wait", "--timeout", "900",
        timeout=960,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout

    def listed() -> dict[str, Any] | None:
        r = httpx.get(
            f"{base(node)}/simple/tomli/",
            headers={"accept": "application/vnd.pypi.simple.v1+json"},
        )
        return r.json() if r.status_code == 200 else None

    page = wait_for("tomli on the node's index", listed, 120)
    (entry,) = page["files"]
    assert entry["filename"] == WHEEL
    # The builders reproduced upstream's wheel bit for bit, and that is what is served.
    assert entry["hashes"]["sha256"] == UPSTREAM
    release = httpx.get(f"{base(node)}/v1/packages/tomli/2.2.1").json()
    assert [a["artifact"]["sha256"] for a in release["artifacts"]] == [UPSTREAM]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    install = subprocess.run(
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
            "--index-url", f"{base(node)}/simple/", "tomli==2.2.1",
        ],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Successfully installed tomli-2.2.1" in install.stdout
    used = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tomli; print(tomli.loads('a = 1')['a'])"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert used.returncode == 0 and used.stdout.strip() == "1", used.stderr
    # What pip fetched is the mirrored blob, whose digest the ledger committed.
    served = httpx.get(f"{base(node)}/artifacts/sha256/{UPSTREAM}/{WHEEL}")
    assert hashlib.sha256(served.content).hexdigest() == UPSTREAM
