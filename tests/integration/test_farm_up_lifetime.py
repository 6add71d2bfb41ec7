"""``farm up --keep-running`` stops everything it started, however it is stopped.

One farm root, five real ``farm up --no-recipe`` runs in a row (each about 25 s): the
first is stopped with SIGINT, the second with SIGTERM, the third with SIGHUP, the
fourth is killed with SIGKILL, the fifth must start cleanly after that. Each stop must
leave no process farm up started (validators, Redis, coordinator, builders,
distribution node, watchdog), no port held, no container carrying a builder's label,
no profile and no run record. So every start is also "a later farm up starts cleanly".

While the first farm runs, another ``farm`` (a fresh process whose HOME is the farm's)
uses it through the profile alone: ``farm submit RECIPE --wait`` with no flags, then
``farm builds``, ``farm builders``, ``farm attestations`` and ``farm pull``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from farm._lifetime import Started, port_busy
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.localfarm import RECORD

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.cluster,
]


@dataclass
class RunningFarm:
    """One ``farm up --no-recipe`` subprocess, up and running."""

    proc: subprocess.Popen[bytes]
    out: Path
    root: Path
    descendants: list[Started]
    ports: list[int]
    builder_ids: list[str]

    def output(self) -> str:
        return self.out.read_text(errors="replace")


def _env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return {**clean, "HOME": str(home)}


def _descendants(pid: int) -> list[Started]:
    """Every process under ``pid`` (children of children too), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    found: list[Started] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                try:
                    argv = (Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"))[:-1]
                    found.append(Started.of(str(child), child, [a.decode() for a in argv]))
                except Exception:
                    continue
                frontier.append(child)
    return found


def _start(home: Path, number: int) -> RunningFarm:
    out = home / f"farm-up-{number}.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farm.cli", "up", "--no-recipe", "--no-follow"],
            env=_env(home),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 240
    while "the farm is running" not in out.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"farm up #{number} did not start:\n{out.read_text(errors='replace')}")
        time.sleep(0.5)
    root = home / ".farm" / "local"
    record = json.loads((root / RECORD).read_text())
    genesis = json.loads((root / "ledger" / "genesis.json").read_text())
    ledger_ports = {
        int(v[k].rsplit(":", 1)[1]) for v in genesis["validators"] for k in ("p2p", "http")
    }
    assert ledger_ports <= set(record["ports"])
    descendants = _descendants(proc.pid)
    # 4 validators, Redis, the coordinator, 3 builders, the distribution node, the watchdog
    assert len(descendants) >= 11, descendants
    return RunningFarm(
        proc=proc,
        out=out,
        root=root,
        descendants=descendants,
        ports=record["ports"],
        builder_ids=[
            labels["farm.builder-id"]
            for labels in record["container_labels"]
            if "farm.builder-id" in labels
        ],
    )


def _build_container(client: docker.DockerClient, image: str, builder_id: str) -> str:
    """A running container labelled as the builder labels its build containers."""
    container = client.containers.run(
        image,
        ["sleep", "600"],
        detach=True,
        labels={"farm.builder-id": builder_id, "farm.build-id": "test", "farm.hermetic": "1"},
        network_mode="none",
    )
    return str(container.id)


def _stop_and_check(
    farm: RunningFarm, sig: signal.Signals, client: docker.DockerClient, container: str
) -> None:
    os.kill(farm.proc.pid, sig)
    code = farm.proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [p for p in farm.descendants if p.alive()]
        if not alive:
            break
        time.sleep(0.2)
    assert not alive, f"still running after {sig.name}: {alive}"
    busy = [p for p in farm.ports if port_busy(p)]
    assert not busy, f"ports still held after {sig.name}: {busy}"
    left = client.containers.list(all=True, filters={"id": container})
    assert not left, f"a build container survived {sig.name}"
    assert not (farm.root / "env").exists(), f"the profile survived {sig.name}"
    assert not (farm.root / RECORD).exists(), f"the run record survived {sig.name}"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # the orderly stop, with the shell's exit status for the signal
        assert code == 128 + sig, farm.output()
        assert "the farm is stopped" in farm.output()


def _farm(home: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A fresh ``farm`` process with no flag or FARM_ variable naming the farm."""
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *argv],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _use_through_the_profile(home: Path, recipe: Path) -> None:
    """Submit, list, and pull through the profile the running farm left."""
    profile = home / ".farm" / "local" / "env"
    assert profile.stat().st_mode & 0o777 == 0o600
    submitted = _farm(home, "submit", str(recipe), "--wait", timeout=600)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    builds = _farm(home, "builds")
    assert builds.returncode == 0 and "iniconfig" in builds.stdout, builds.stderr
    builders = _farm(home, "builders")
    assert builders.returncode == 0 and builders.stdout.count("yes") == 3, builders.stdout
    deadline = time.monotonic() + 120
    while True:  # the attestation reaches the ledger, then the distribution node
        pulled = _farm(home, "pull", "iniconfig==2.0.0", "--dest", str(home / "pulled"))
        if pulled.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert list((home / "pulled").glob("iniconfig-2.0.0-*.whl"))
    attestations = _farm(home, "attestations", "iniconfig")
    assert attestations.returncode == 0 and "2.0.0" in attestations.stdout, attestations.stderr


def test_every_way_of_stopping_farm_up_stops_all_it_started(
    tmp_path: Path, builder_image: str, docker_client: docker.DockerClient
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    recipe = recipe_for_this_host(DEFAULT_RECIPE, tmp_path)
    order = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]
    for number, sig in enumerate(order, start=1):
        farm = _start(home, number)
        container = None
        try:
            if number == 1:
                _use_through_the_profile(home, recipe)
            container = _build_container(docker_client, builder_image, farm.builder_ids[0])
            _stop_and_check(farm, sig, docker_client, container)
        finally:
            _leave_nothing(farm, docker_client, container)
    # After SIGKILL, the next farm up must find nothing in its way.
    last = _start(home, len(order) + 1)
    try:
        os.kill(last.proc.pid, signal.SIGTERM)
        assert last.proc.wait(timeout=60) == 128 + signal.SIGTERM, last.output()
    finally:
        _leave_nothing(last, docker_client, None)


def _leave_nothing(farm: RunningFarm, client: docker.DockerClient, container: str | None) -> None:
    """Whatever the test's outcome, nothing of ``farm`` keeps running."""
    if farm.proc.poll() is None:
        farm.proc.kill()
        farm.proc.wait()
    for p in farm.descendants:
        if p.alive():
            os.kill(p.pid, signal.SIGKILL)
    if container is not None:
        for c in client.containers.list(all=True, filters={"id": container}):
            c.remove(force=True)
