"""A real application's dependency closure served by a real farm: pip installs it from the
distribution node alone, and ``farm coverage`` says what the node covers.

The shipped recipes of webargs 8.7.1's closure for the builder image's Python (webargs,
marshmallow, packaging; written by ``farm recipe new webargs==8.7.1 --deps``, each
matching upstream's wheel bit for bit) are submitted to the whole farm ``farm up`` runs
(:func:`farm.localfarm.local_farm`: four validators, Redis, three builders building in
Docker, the coordinator, the distribution node, each its own process). Once every one
is verified, committed and served, real pip installs webargs into a fresh virtual
environment with the node's index as its only index, dependencies included, and imports
it; ``farm coverage`` against the same node (the genesis its only trust root) exits 0
when everything listed is covered and 1 naming what is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.localfarm import LocalFarm, local_farm
from tests.support.served import farm_cli, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.network,
    pytest.mark.slow,
]

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
CLOSURE = [("webargs", "8.7.1"), ("marshmallow", "4.4.0"), ("packaging", "26.4")]


def _submit(running: LocalFarm, name: str, version: str) -> subprocess.Popen[str]:
    """``farm submit RECIPE --wait`` as a process (the three run side by side)."""
    argv = [
        sys.executable, "-m", "farm.cli", "submit", str(RECIPES / name / f"{version}.yaml"),
        "--coordinator", running.coordinator_url, "--operator-token", running.operator_token,
        "--wait", "--timeout", "200",
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[LocalFarm]:
    """A local farm that serves the closure, verified."""
    root = tmp_path_factory.mktemp("closure") / "farm"
    with local_farm(root, validators=4, builders=3) as running:
        submits = [_submit(running, name, version) for name, version in CLOSURE]
        for (name, version), proc in zip(CLOSURE, submits, strict=True):
            out, _ = proc.communicate(timeout=240)
            assert proc.returncode == 0, f"{name}=={version}: {out}"
        for name, version in CLOSURE:

            def served(n: str = name, v: str = version) -> dict[str, object] | None:
                return running.dist_serves(n, v)

            wait_for(f"{name}=={version} on the node", served, 90)
        yield running


def test_pip_installs_the_application_with_its_dependencies_from_the_node_alone(
    farm: LocalFarm, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [
            python, "-m", "pip", "install", "--no-cache-dir",
            "--index-url", f"{farm.dist_url}/simple/", "webargs==8.7.1",
        ],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Successfully installed marshmallow-4.4.0 packaging-26.4 webargs-8.7.1" in (
        install.stdout
    )
    used = subprocess.run(
        [
            python, "-c",
            "import marshmallow, webargs; from webargs import fields; "
            "print(webargs.__name__, marshmallow.__name__, fields.Int)",
        ],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert used.returncode == 0, used.stderr
    assert used.stdout.startswith("webargs marshmallow")


def _coverage(farm: LocalFarm, tmp_path: Path, lines: str, *extra: str) -> tuple[int, str]:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(lines, encoding="utf-8")
    proc = farm_cli(
        "coverage", "-r", str(reqs), "--node", farm.dist_url, "--genesis", str(farm.genesis),
        "--state-dir", str(tmp_path / "state"), *extra,
        timeout=180,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


def test_coverage_of_what_the_node_serves(farm: LocalFarm, tmp_path: Path) -> None:
    pinned = "".join(f"{name}=={version}\n" for name, version in CLOSURE)
    code, out = _coverage(farm, tmp_path, pinned, "--json")
    assert code == 0, out
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["ok"] is True and report["missing"] == []
    assert report["covered"] == report["total"] == 3
    for row, (name, version) in zip(report["rows"], CLOSURE, strict=True):
        assert row["requirement"] == f"{name}=={version}"
        assert (row["served"], row["verified"]) == ("yes", "yes")
        # The builders reproduced upstream's wheel: the served file is PyPI's, bit for bit.
        assert row["matches_upstream"] == "yes", row
        assert row["files"][0]["builders"] == 3

    code, out = _coverage(farm, tmp_path, "webargs==8.7.1\nattrs==23.1.0\n")
    assert code == 1, out
    table = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if "==" in line[:30]}
    assert table["webargs==8.7.1"] == ["yes", "yes", "yes"]
    assert table["attrs==23.1.0"] == ["no", "-", "-"]
    assert "1/2 requirement(s) served and verified; missing or failing: attrs==23.1.0" in out

    code, out = _coverage(farm, tmp_path, "webargs==8.7.1\nmarshmallow>=3\n")
    assert code == 1
    assert "requirements.txt:2: 'marshmallow>=3' is not pinned" in out
