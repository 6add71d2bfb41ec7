"""``farm up`` stays up through the faults a farm is built to survive (issue 17).

One real ``farm up --no-recipe``; while it runs, ``kill -9``:

- one validator six times in a row: restarted five times with backoff, then left down
  and reported as such, by farm up and by ``farm up --status``;
- another validator once: restarted with a new pid (restarts = 1 in the status);
- the coordinator: restarted, and ``farm builds`` answers again.

Then, with 3 of 4 validators (one of them restarted), ``farm submit --wait`` through
the profile succeeds, the ledger grows, and the restarted validator is at the same
height as the others. SIGTERM still stops everything, the restarted processes too.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
import httpx
import pytest

from farm._lifetime import RunRecord, Started
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.localfarm import RECORD
from tests.integration.test_farm_up_lifetime import RunningFarm, _farm, _leave_nothing, _start

pytestmark = [
    pytest.mark.docker,
    pytest.mark.redis,
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.cluster,
]

ROW = re.compile(
    r"^(?P<name>\S+(?: \S+)*)\s{2,}(?P<address>\S+)\s+(?P<pid>\S+)\s+(?P<uptime>\S+)\s+"
    r"(?P<restarts>\d+)\s+(?P<state>\w+).*\s(?P<ready>yes|no)$"
)


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


def _record(root: Path) -> RunRecord:
    record = RunRecord.load(root / RECORD)
    assert record is not None
    return record


def _running(root: Path, name: str, restarts: int, timeout: float = 60) -> Started:
    """The process ``name`` once the supervisor has restarted it ``restarts`` times."""
    deadline = time.monotonic() + timeout
    while True:
        record = _record(root)
        part = record.parts[name]
        found = [p for p in record.processes if p.name == name and p.alive()]
        if part["restarts"] == restarts and part["state"] == "running" and found:
            return found[0]
        assert time.monotonic() < deadline, f"{name} not running after {restarts} restarts"
        time.sleep(0.1)


def _kill(p: Started) -> None:
    os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while p.alive():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _height(url: str) -> int:
    try:
        return int(httpx.get(f"{url}/v1/status", timeout=2).json()["height"])
    except httpx.HTTPError:
        return -1


def _wait(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_farm_up_restarts_killed_parts_and_keeps_committing(
    tmp_path: Path, builder_image: str, docker_client: docker.DockerClient
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    recipe = recipe_for_this_host(DEFAULT_RECIPE, tmp_path)
    farm: RunningFarm = _start(home, 1)
    root = farm.root
    try:
        # One validator killed six times in a row: five restarts, then left down.
        for restarts in range(6):
            _kill(_running(root, "validator v2", restarts))
        _wait(
            "validator v2 left down",
            lambda: _record(root).parts["validator v2"]["state"] == "down",
            30,
        )
        assert "validator v2 exited (killed by SIGKILL; log: " in farm.output()
        assert (
            "after 5 restarts within 60 s; leaving it down: "
            "the ledger still commits with 3 of 4 validators"
        ) in farm.output()

        # Another validator killed once, and the coordinator: both restarted.
        killed = {name: _running(root, name, 0) for name in ("validator v1", "coordinator")}
        for p in killed.values():
            _kill(p)
        for name, old in killed.items():
            new = _running(root, name, 1)
            assert new.pid != old.pid
        _wait("the restarted parts answer", lambda: _ready(home, killed), 60)
        rows = _status(home)
        assert rows["validator v2"]["state"] == "down" and rows["validator v2"]["pid"] == "-"
        assert rows["validator v2"]["restarts"] == "5"
        for name, old in killed.items():
            assert rows[name]["restarts"] == "1" and rows[name]["state"] == "running"
            assert int(rows[name]["pid"]) == _running(root, name, 1).pid != old.pid
        assert all(rows[n]["restarts"] == "0" for n in ("validator v0", "validator v3", "Redis"))
        builds = _farm(home, "builds")
        assert builds.returncode == 0, builds.stdout + builds.stderr

        # The farm still commits, with 3 of 4 validators, the restarted one among them.
        urls = {name: rows[name]["address"] for name in ("validator v0", "validator v1")}
        before = _height(urls["validator v0"])
        submitted = _farm(home, "submit", str(recipe), "--wait", timeout=600)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        _wait(
            "the ledger commits the attestation on the restarted validator too",
            lambda: (
                _height(urls["validator v0"]) > before
                and _height(urls["validator v1"]) == _height(urls["validator v0"])
            ),
            120,
        )

        # Stopping farm up stops everything, the restarted processes included.
        last = [p for p in _record(root).processes if p.alive()]
        os.kill(farm.proc.pid, signal.SIGTERM)
        assert farm.proc.wait(timeout=60) == 128 + signal.SIGTERM, farm.output()
        _wait("every part stopped", lambda: not any(p.alive() for p in last), 30)
        assert not (root / RECORD).exists()
        shown = _farm(home, "up", "--status")
        assert shown.returncode == 1
        assert f"no farm is running under {root}" in shown.stdout + shown.stderr
    finally:
        record = RunRecord.load(root / RECORD)
        _leave_nothing(farm, docker_client, None)
        for p in record.processes if record is not None else []:
            if p.alive():
                os.kill(p.pid, signal.SIGKILL)


def _ready(home: Path, names: Iterable[str]) -> bool:
    rows = _status(home)
    return all(rows[name]["ready"] == "yes" for name in names)
