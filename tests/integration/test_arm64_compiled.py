"""A compiled wheel per architecture, for real: markupsafe on amd64 and arm64 (issue 16).

The whole farm ``farm up`` runs (:func:`farm.localfarm.local_farm`: four validators,
Redis, three builders in Docker, the coordinator, the distribution node) takes the
shipped markupsafe 3.0.2 recipe through on both architectures: each architecture's
build is decided by its own quorum of three builders (the arm64 ones run under QEMU)
and yields its own wheel, ``linux_x86_64`` and ``linux_aarch64`` (ADR 42); the two are
not compared across architectures (compiled code differs by design). Both are
attested, committed and served: the node's simple index lists both, pip inside an
arm64 container of the builder image (under QEMU) installs the ``linux_aarch64`` wheel
from the node, and ``farm pull markupsafe==3.0.2 --arch arm64`` verifies it against
nothing but the genesis.

Needs Docker, the builder images of both architectures (``deploy/setup.sh``) and the
kernel's qemu-aarch64 binfmt handler with the F flag (skipped, saying so, without it).
On a loaded 2-core host: 128 to 214 s from submission to both verdicts; each arm64
build (three at once under QEMU) 79 to 188 s, each amd64 build 21 to 31 s; the whole
module about 4 minutes. ADR 42 has the figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.localfarm import LocalFarm, local_farm
from farm.recipe import Recipe, load_recipe
from farm.result import envelope_payload, parse_statement
from tests.integration.conftest import NEEDS_ARM64, REPO
from tests.support.served import farm_cli, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    NEEDS_ARM64,
]

RECIPE = REPO / "recipes" / "markupsafe" / "3.0.2.yaml"
WHEELS = {
    "amd64": "MarkupSafe-3.0.2-cp311-cp311-linux_x86_64.whl",
    "arm64": "MarkupSafe-3.0.2-cp311-cp311-linux_aarch64.whl",
}
#: Seconds for both architectures' builds: three arm64 builds of a C extension under
#: QEMU share two cores with everything else.
BUILD_TIMEOUT = 2400


def _submit(running: LocalFarm, recipe: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", "submit", str(recipe),
         "--coordinator", running.coordinator_url, "--operator-token", running.operator_token,
         "--wait", "--timeout", str(BUILD_TIMEOUT)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT + 120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def _served_arches(running: LocalFarm) -> dict[str, Any] | None:
    release = running.dist_serves("markupsafe", "3.0.2")
    if release is None:
        return None
    arches = {a["artifact"]["arch"] for a in release["artifacts"]}
    return release if arches == set(WHEELS) else None


@dataclass(frozen=True)
class Served:
    running: LocalFarm
    recipe: Recipe
    """The shipped recipe, or its copy re-pinned to this host's images."""
    builds: dict[str, dict[str, Any]]
    """The coordinator's build of each architecture."""
    attestations: list[dict[str, Any]]
    """The coordinator's committed attestations of the release."""


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A local farm that has verified and serves markupsafe on both architectures."""
    from farm.cli.up_cmd import recipe_for_this_host

    root = tmp_path_factory.mktemp("compiled")
    recipe = recipe_for_this_host(RECIPE, root / "pins")
    with local_farm(root / "farm", validators=4, builders=3) as running:
        started = time.monotonic()
        proc = _submit(running, recipe)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        print(f"markupsafe on amd64 and arm64 verified in {time.monotonic() - started:.0f}s")
        wait_for("both wheels on the node", lambda: _served_arches(running), 300)
        builds = {}
        for summary in running.builds("markupsafe", "3.0.2") or []:
            if summary["arch"] not in builds:
                with running.http() as client:
                    builds[summary["arch"]] = client.get(f"/v1/builds/{summary['id']}").json()
        attested = running.committed_attestations("markupsafe", "3.0.2")
        yield Served(running, load_recipe(recipe), builds, attested)


def _agreed(build: dict[str, Any]) -> dict[str, str]:
    """Output name → the sha256 the build's builders agreed on."""
    return {d["name"]: d["sha256"] for d in build["verdict"]["digests"]}


def _seconds(build: dict[str, Any]) -> list[float]:
    """Each accepted result's build time (the container run its builder signed)."""
    times = []
    for r in build["results"]:
        p = parse_statement(envelope_payload(r["envelope"])).predicate
        times.append((p.finished_at - p.started_at).total_seconds())
    return sorted(times)


def test_each_architecture_verifies_its_own_platform_wheel_by_its_own_quorum(
    farm: Served,
) -> None:
    running, builds, recipe = farm.running, farm.builds, farm.recipe
    assert set(builds) == set(WHEELS)
    builders = set()
    for arch, build in builds.items():
        verdict = build["verdict"]
        assert build["status"] == "verified", (arch, build["note"], verdict)
        assert len(verdict["agreed"]) == recipe.quorum == 3
        assert list(_agreed(build)) == [WHEELS[arch]]
        # Compared with its own architecture's upstream wheel only (manylinux: differs).
        assert [(o["name"], o["upstream"]) for o in verdict["outputs"]] == [
            (WHEELS[arch], "differ")
        ]
        # Compiled wheels are never compared across architectures.
        assert verdict["cross_arch"]["verdict"] == "not_applicable"
        builders |= set(verdict["agreed"])
        print(f"{arch}: {_agreed(build)}; build seconds per builder: {_seconds(build)}")
    assert len(builders) == 3  # one host's three builders build both architectures

    # One attestation per architecture; the one decided second carries what the
    # coordinator compared across architectures (nothing pure: not applicable).
    assert sorted(a["arch"] for a in farm.attestations) == ["amd64", "arm64"]
    carried = []
    for a in farm.attestations:
        statement = json.loads(base64.b64decode(a["bundle"]["envelope"]["payload"]))
        internal = statement["predicate"]["buildDefinition"]["internalParameters"]
        assert internal["quorum"] == 3
        if "crossArch" in internal:
            carried.append(internal["crossArch"])
    assert carried, farm.attestations
    for cross in carried:
        assert cross["verdict"] == "not_applicable" and cross["arches"] == ["amd64", "arm64"]
        assert cross["builds"] == {arch: b["id"] for arch, b in builds.items()}

    page = httpx.get(
        f"{running.dist_url}/simple/markupsafe/",
        headers={"accept": "application/vnd.pypi.simple.v1+json"},
        timeout=10,
    ).json()
    listed = {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}
    assert set(listed) == set(WHEELS.values())
    for arch, build in builds.items():
        assert listed[WHEELS[arch]] == _agreed(build)[WHEELS[arch]]


def test_pip_in_an_arm64_container_installs_the_aarch64_wheel_and_farm_pull_verifies_it(
    farm: Served, tmp_path: Path
) -> None:
    running = farm.running
    agreed = _agreed(farm.builds["arm64"])[WHEELS["arm64"]]
    image = farm.recipe.image_for("arm64")
    # A fresh virtual environment inside the arm64 builder image (python3 and pip under
    # QEMU), the node its only index; pip chooses the wheel by this machine's platform.
    script = (
        "set -eu; uname -m; python3 -m venv /tmp/v; "
        "/tmp/v/bin/pip install --no-cache-dir --disable-pip-version-check "
        f"--index-url {running.dist_url}/simple/ --report /tmp/report.json "
        "markupsafe==3.0.2; "
        "/tmp/v/bin/python -c 'import markupsafe, markupsafe._speedups as s, platform; "
        'print("machine", platform.machine()); print("speedups", s.__file__); '
        'print("escaped", markupsafe.escape("<a>"))\'; '
        "cat /tmp/v/lib/python3.11/site-packages/MarkupSafe-3.0.2.dist-info/WHEEL; "
        "echo REPORT; cat /tmp/report.json"
    )
    name = f"farm-test-pip-arm64-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            ["docker", "run", "--rm", "--name", name, "--network", "host",
             "--platform", "linux/arm64", "--entrypoint", "/bin/sh", image, "-c", script],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    head, _, report_text = out.partition("REPORT\n")
    assert head.splitlines()[0] == "aarch64"
    assert "machine aarch64" in head
    assert "_speedups.cpython-311-aarch64-linux-gnu.so" in head
    assert "escaped &lt;a&gt;" in head
    assert "Tag: cp311-cp311-linux_aarch64" in head
    (item,) = json.loads(report_text)["install"]
    assert item["download_info"]["url"].endswith("/" + WHEELS["arm64"])
    assert item["download_info"]["archive_info"]["hashes"]["sha256"] == agreed

    # farm pull selects the arm64 artifact and verifies it from the genesis alone.
    dest = tmp_path / "pulled"
    pulled = farm_cli(
        "pull", "markupsafe==3.0.2", "--arch", "arm64", "--node", running.dist_url,
        "--genesis", str(running.genesis), "--dest", str(dest),
        "--state-dir", str(tmp_path / "state"),
        timeout=300,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    wheel = dest / WHEELS["arm64"]
    assert sorted(p.name for p in dest.iterdir()) == [
        WHEELS["arm64"],
        WHEELS["arm64"] + ".farm-evidence.json",
    ]
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == agreed
