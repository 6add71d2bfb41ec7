"""``farm up`` stays up through the faults a farm is built to survive (issue 17).

One real ``farm up RECIPE --keep-running`` for the whole module; the scenarios run one
after another in it, in this order, each with a build in flight when it strikes (a
build container of the build exists) unless it says otherwise:

1. ``kill -9`` one builder, then the coordinator, while farm up takes its first recipe
   through (``farm submit --wait`` loses the coordinator): both are restarted, the
   builder's orphaned build container is removed then (not when the farm stops), and
   the build is verified exactly once (one build, one attestation for the recipe
   digest, one completion by that builder); farm up waits for it and serves it.
2. ``kill -9`` the coordinator, then the distribution node: both restarted, the build
   completes, is committed and the node serves it in its pip index.
3. ``kill -9`` one validator: the build is verified and committed, and the restarted
   validator catches up to the others' height, tree size and root.
4. ``kill -9`` a validator six times in a row (no build in flight): restarted five
   times with backoff, then left down and reported, by farm up and ``farm up --status``;
   ``farm submit --wait`` still succeeds and commits with 3 of 4 validators.
5. SIGTERM still stops everything, the restarted processes too.

Every recipe is a shipped one (re-pinned to this host's builder image if need be),
submitted with ``farm submit`` through the profile the farm leaves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import redis

from farm._lifetime import RunRecord, Started, remove_containers
from farm.cli.profile import load_profile
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.localfarm import RECORD
from tests.integration.test_farm_up_lifetime import _env, _farm

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.cluster,
]

RECIPES = Path(DEFAULT_RECIPE).parents[1]
ROW = re.compile(
    r"^(?P<name>\S+(?: \S+)*)\s{2,}(?P<address>\S+)\s+(?P<pid>\S+)\s+(?P<uptime>\S+)\s+"
    r"(?P<restarts>\d+)\s+(?P<state>\w+).*\s(?P<ready>yes|no)$"
)
BUILT = re.compile(r"^build (?P<id>[0-9a-f]{32}) of ", re.MULTILINE)


@dataclass
class Farm:
    """The module's ``farm up`` process."""

    proc: subprocess.Popen[bytes]
    out: Path
    home: Path
    work: Path

    @property
    def root(self) -> Path:
        return self.home / ".farm" / "local"

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def record(self) -> RunRecord:
        record = RunRecord.load(self.root / RECORD)
        assert record is not None, self.output()
        return record

    def running(self, name: str, restarts: int, timeout: float = 60) -> Started:
        """The process ``name`` once the supervisor has restarted it ``restarts`` times."""
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            record = RunRecord.load(self.root / RECORD)
            if record is not None and name in record.parts:
                part = record.parts[name]
                found = [p for p in record.processes if p.name == name and p.alive()]
                if part["restarts"] == restarts and part["state"] == "running" and found:
                    return found[0]
            assert time.monotonic() < deadline, f"{name} not running after {restarts} restarts"
            time.sleep(0.1)

    def alive(self) -> None:
        assert self.proc.poll() is None, f"farm up exited:\n{self.output()}"

    def address(self, name: str) -> str:
        return str(self.record().parts[name]["address"])

    def profile(self) -> dict[str, str]:
        return load_profile(self.root / "env")

    def recipe(self, name: str, version: str) -> Path:
        return recipe_for_this_host(RECIPES / name / f"{version}.yaml", self.work)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[Farm]:
    """``farm up iniconfig --keep-running``, started (not waited for); nothing left after."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    recipe = recipe_for_this_host(DEFAULT_RECIPE, work)
    out = home / "farm-up.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farm.cli", "up", str(recipe), "--keep-running", "--no-follow"],
            env=_env(home),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Farm(proc, out, home, work)
    try:
        yield running
    finally:
        record = RunRecord.load(running.root / RECORD)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in record.processes if record is not None else []:
            if p.alive():
                os.kill(p.pid, signal.SIGKILL)
        for labels in record.container_labels if record is not None else []:
            remove_containers(labels)


def _kill(p: Started) -> None:
    os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while p.alive():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _wait(what: str, probe: Callable[[], bool], timeout: float, farm: Farm) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        farm.alive()
        assert time.monotonic() < deadline, f"{what}, within {timeout:g} s:\n{farm.output()}"
        time.sleep(0.3)


def _containers(client: docker.DockerClient, label: str) -> list[Any]:
    """Containers carrying ``label``; one removed while being listed (a build that just
    ended) makes the listing start again."""
    for _ in range(20):
        try:
            return list(client.containers.list(all=True, filters={"label": label}))
        except docker.errors.NotFound:
            continue
    raise AssertionError(f"containers {label} kept vanishing while being listed")


def _build_container(
    farm: Farm, client: docker.DockerClient, label: str, timeout: float = 300
) -> Any:
    """A build container carrying ``label``, once one runs (the build is in flight)."""
    found: list[Any] = []

    def running() -> bool:
        found[:] = [c for c in _containers(client, label) if c.status == "running"]
        return bool(found)

    deadline = time.monotonic() + timeout
    while not running():
        farm.alive()
        assert time.monotonic() < deadline, f"no build container {label}:\n{farm.output()}"
        time.sleep(0.1)
    return found[0]


def _submit(farm: Farm, recipe: Path) -> str:
    """``farm submit RECIPE`` through the profile; the build id."""
    done = _farm(farm.home, "submit", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    match = BUILT.search(done.stdout)
    assert match is not None, done.stdout
    return match["id"]


def _build(farm: Farm, build_id: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{farm.profile()['FARM_COORDINATOR_URL']}/v1/builds/{build_id}")
    except httpx.HTTPError:
        return {}
    return dict(response.json()) if response.status_code == 200 else {}


def _json(farm: Farm, *argv: str) -> Any:
    done = _farm(farm.home, *argv, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _committed(farm: Farm, build_id: str, name: str) -> list[dict[str, Any]]:
    """Committed attestations of build ``build_id`` of ``name``."""
    done = _farm(farm.home, "attestations", name, "--json")
    if done.returncode != 0:
        return []
    items = json.loads(done.stdout)["items"]
    return [a for a in items if a["build_id"] == build_id and a["ledger_index"] is not None]


def _pip_lists(farm: Farm, project: str, filename: str) -> bool:
    try:
        page = httpx.get(f"{farm.profile()['FARM_DIST_URL']}/simple/{project}/", timeout=5)
    except httpx.HTTPError:
        return False
    return page.status_code == 200 and filename in page.text


def _ledger(url: str) -> tuple[int, int, str] | None:
    try:
        status = httpx.get(f"{url}/v1/status", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return int(status["height"]), int(status["size"]), str(status["root"])


def _status(home: Path) -> dict[str, dict[str, str]]:
    """``farm up --status``, parsed: each part's row by name."""
    shown = _farm(home, "up", "--status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = {}
    for line in shown.stdout.splitlines()[1:]:
        match = ROW.match(line)
        assert match is not None, line
        rows[match["name"]] = match.groupdict()
    return rows


def test_1_builder_killed_mid_build_is_restarted_and_the_build_verifies_once(
    farm: Farm, docker_client: docker.DockerClient
) -> None:
    # The first recipe, while farm up itself takes it through: kill the first builder
    # whose build container runs.
    container = _build_container(farm, docker_client, "farm.builder-id")
    builder_id = container.labels["farm.builder-id"]
    build_id = container.labels["farm.build-id"]
    name = f"builder {builder_id[:12]}"
    _kill(farm.running(name, 0))
    container.reload()  # still there: orphaned by the killed builder
    assert container.labels["farm.builder-id"] == builder_id
    _kill(farm.running("coordinator", 0))

    farm.running(name, 1)
    farm.running("coordinator", 1)
    _wait(
        "the killed builder's build container removed while the farm runs",
        lambda: (
            not [c for c in _containers(docker_client, "farm.builder-id") if c.id == container.id]
        ),
        60,
        farm,
    )
    assert f"{name}: removed 1 build container(s) its killed process left" in farm.output()

    # farm up goes on: verified, committed, served; then it keeps the farm running.
    _wait(
        "farm up takes iniconfig through", lambda: "the farm is running" in farm.output(), 420, farm
    )
    assert "verified and served: iniconfig 2.0.0" in farm.output()
    assert "farm submit lost the coordinator before the build's verdict" in farm.output()
    assert f"{name} exited (killed by SIGKILL; log: " in farm.output()

    # Exactly once: one build of the recipe, verified; one attestation committed for
    # its digest; the killed builder completed the build once (its restart).
    builds = _json(farm, "builds", "--name", "iniconfig")["items"]
    assert [(b["id"], b["status"]) for b in builds] == [(build_id, "verified")]
    attested = _json(farm, "attestations", "iniconfig")["items"]
    assert [(a["build_id"], a["ledger_index"] is not None) for a in attested] == [(build_id, True)]
    assert attested[0]["recipe_digest"] == builds[0]["recipe_digest"]
    client = redis.Redis.from_url(farm.profile()["FARM_REDIS_URL"])
    try:
        assert client.get(f"farm:completions:{build_id}:{builder_id}") == b"1"
    finally:
        client.close()


def test_2_coordinator_then_distribution_node_killed_mid_build(
    farm: Farm, docker_client: docker.DockerClient
) -> None:
    recipe = farm.recipe("tomli_w", "1.1.0")
    build_id = _submit(farm, recipe)
    _build_container(farm, docker_client, f"farm.build-id={build_id}")

    restarts = {"coordinator": 1, "distribution node": 0}  # the coordinator's: test 1
    for part, before in restarts.items():
        old = farm.running(part, before)
        _kill(old)
        assert farm.running(part, before + 1).pid != old.pid

    _wait(
        "the build verified after the coordinator's restart",
        lambda: _build(farm, build_id).get("status") == "verified",
        240,
        farm,
    )
    _wait(
        "its attestation committed", lambda: bool(_committed(farm, build_id, "tomli_w")), 120, farm
    )
    _wait(
        "the restarted distribution node serving it to pip",
        lambda: _pip_lists(farm, "tomli-w", "tomli_w-1.1.0-py3-none-any.whl"),
        120,
        farm,
    )
    rows = _status(farm.home)
    for part, before in restarts.items():
        assert rows[part]["restarts"] == str(before + 1) and rows[part]["state"] == "running"
        assert rows[part]["ready"] == "yes"


def test_3_validator_killed_mid_build_catches_up(
    farm: Farm, docker_client: docker.DockerClient
) -> None:
    recipe = farm.recipe("pyproject_hooks", "1.2.0")
    build_id = _submit(farm, recipe)
    _build_container(farm, docker_client, f"farm.build-id={build_id}")
    old = farm.running("validator v1", 0)
    _kill(old)

    _wait(
        "the build verified",
        lambda: _build(farm, build_id).get("status") == "verified",
        240,
        farm,
    )
    _wait(
        "its attestation committed",
        lambda: bool(_committed(farm, build_id, "pyproject_hooks")),
        120,
        farm,
    )
    assert farm.running("validator v1", 1).pid != old.pid
    urls = [farm.address(f"validator v{i}") for i in range(4)]
    _wait(
        "the restarted validator at the others' height, size and root",
        lambda: len({_ledger(u) for u in urls}) == 1 and _ledger(urls[0]) is not None,
        120,
        farm,
    )


def test_4_validator_killed_six_times_is_left_down_and_the_farm_commits(
    farm: Farm,
) -> None:
    for restarts in range(6):
        _kill(farm.running("validator v2", restarts))
    _wait(
        "validator v2 left down",
        lambda: farm.record().parts["validator v2"]["state"] == "down",
        30,
        farm,
    )
    assert "validator v2 exited (killed by SIGKILL; log: " in farm.output()
    assert (
        "after 5 restarts within 60 s; leaving it down: "
        "the ledger still commits with 3 of 4 validators"
    ) in farm.output()
    rows = _status(farm.home)
    assert rows["validator v2"]["state"] == "down" and rows["validator v2"]["pid"] == "-"
    assert rows["validator v2"]["restarts"] == "5"
    assert rows["validator v1"]["restarts"] == "1" and rows["validator v1"]["state"] == "running"
    assert all(rows[n]["restarts"] == "0" for n in ("validator v0", "validator v3", "Redis"))

    # The farm still commits, with 3 of 4 validators, the restarted one among them.
    urls = [farm.address(f"validator v{i}") for i in (0, 1, 3)]
    before = _ledger(urls[0])
    assert before is not None
    recipe = farm.recipe("flit_core", "3.10.1")
    submitted = _farm(farm.home, "submit", str(recipe), "--arch", "amd64", "--wait", timeout=600)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    _wait(
        "the ledger commits with 3 of 4 validators",
        lambda: (
            (now := _ledger(urls[0])) is not None
            and now[0] > before[0]
            and len({_ledger(u) for u in urls}) == 1
        ),
        120,
        farm,
    )


def test_5_stopping_farm_up_stops_the_restarted_parts_too(farm: Farm) -> None:
    last = [p for p in farm.record().processes if p.alive()]
    assert len(last) == 9  # 3 validators (v2 is down), Redis, coordinator, 3 builders, node
    os.kill(farm.proc.pid, signal.SIGTERM)
    assert farm.proc.wait(timeout=60) == 128 + signal.SIGTERM, farm.output()
    deadline = time.monotonic() + 30
    while any(p.alive() for p in last):
        assert time.monotonic() < deadline, [p for p in last if p.alive()]
        time.sleep(0.2)
    assert not (farm.root / RECORD).exists()
    shown = _farm(farm.home, "up", "--status")
    assert shown.returncode == 1
    assert f"no farm is running under {farm.root}" in shown.stdout + shown.stderr
