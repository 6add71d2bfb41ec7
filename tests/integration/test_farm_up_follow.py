"""``farm up`` follows the recipe repository it runs from (issue 18).

A real ``farm up --no-recipe`` runs in a temporary git repository holding one shipped
recipe (iniconfig, re-pinned to this host's builder image if need be, and committed so).
The farm builds that recipe on its own; then a second shipped recipe is ``git commit``-ted
in the repository and, with no other command, real pip installs it from the
distribution node. Two real builds in all.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from farm._lifetime import RunRecord, remove_containers
from farm.cli.profile import load_profile
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.localfarm import RECORD
from tests.support.git import commit_all, git

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.cluster,
]

T = TypeVar("T")
RECIPES = Path(DEFAULT_RECIPE).parents[1]
SECOND = ("tomli_w", "1.1.0")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, alive: Callable[[], None]
) -> T:
    """Poll ``probe`` (and that farm up still runs) until it returns something."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


def commit_recipe(repo: Path, name: str, version: str, message: str) -> str:
    """Copy the shipped recipe ``name`` ``version`` (pinned for this host) into ``repo``
    and commit it; the new tip."""
    pinned = recipe_for_this_host(RECIPES / name / f"{version}.yaml", repo.parent / "pins")
    target = repo / "recipes" / name / f"{version}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pinned, target)
    return commit_all(repo, message)


@dataclass
class Up:
    """The module's ``farm up`` process and the repository it runs from."""

    proc: subprocess.Popen[bytes]
    out: Path
    root: Path
    repo: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def alive(self) -> None:
        assert self.proc.poll() is None, f"farm up exited:\n{self.output()}"

    def profile(self) -> dict[str, str]:
        return wait_for(
            "farm up to leave its profile",
            lambda: load_profile(self.root / "env") if (self.root / "env").exists() else None,
            300,
            self.alive,
        )

    def commit(self, name: str, version: str, message: str) -> str:
        """Commit the shipped recipe ``name`` ``version`` to the repository; the new tip."""
        return commit_recipe(self.repo, name, version, message)

    def served(self, name: str, version: str) -> dict[str, Any]:
        """Wait until the distribution node serves ``name`` ``version``; what it serves."""
        dist = self.profile()["FARM_DIST_URL"]

        def probe() -> dict[str, Any] | None:
            try:
                response = httpx.get(f"{dist}/v1/packages/{name}/{version}", timeout=5)
            except httpx.HTTPError:
                return None
            release: dict[str, Any] = response.json() if response.status_code == 200 else {}
            return release if release.get("artifacts") else None

        return wait_for(f"the node to serve {name} {version}", probe, 600, self.alive)

    def builds(self, name: str) -> list[dict[str, Any]]:
        url = self.profile()["FARM_COORDINATOR_URL"]
        page = httpx.get(f"{url}/v1/builds", params={"name": name}, timeout=10).json()
        items: list[dict[str, Any]] = page["items"]
        return items


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[Up]:
    """``farm up --no-recipe`` run from a git repository holding iniconfig 2.0.0."""
    home = tmp_path_factory.mktemp("home")
    repo = home / "recipes-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_recipe(repo, "iniconfig", "2.0.0", "iniconfig 2.0.0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    root = home / "farm"
    out = home / "farm-up.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farm.cli", "up", "--no-recipe", "--root", str(root)],
            cwd=repo, env={**env, "HOME": str(home), "COLUMNS": "300"}, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    running = Up(proc, out, root, repo)
    try:
        yield running
    finally:
        record = RunRecord.load(running.root / RECORD)
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            try:
                running.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                running.proc.kill()
                running.proc.wait()
        for p in record.processes if record is not None else []:
            if p.alive():
                os.kill(p.pid, signal.SIGKILL)
        for labels in record.container_labels if record is not None else []:
            remove_containers(labels)


def test_a_recipe_committed_while_the_farm_runs_becomes_installable_by_pip(
    up: Up, tmp_path: Path
) -> None:
    profile = up.profile()
    assert f"following the recipes on main of {up.repo.resolve()}" in up.output()
    # The recipe already on the branch is built once, with no command.
    first = up.served("iniconfig", "2.0.0")
    assert first["artifacts"]

    tip = up.commit(*SECOND, "add tomli_w 1.1.0")
    name, version = SECOND
    up.served(name, version)
    target = tmp_path / "site"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps",
            "--target", str(target), "--index-url", f"{profile['FARM_DIST_URL']}/simple/",
            f"{name}=={version}",
        ],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert (target / "tomli_w" / "__init__.py").is_file()
    (build,) = up.builds(name)
    assert build["commit"] == tip and build["status"] == "verified"
    assert len(up.builds("iniconfig")) == 1  # the first recipe was built once, not again
