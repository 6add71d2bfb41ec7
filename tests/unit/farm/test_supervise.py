"""``farm up`` restarts a part that exits, within limits (``farm.supervise``).

The policy is pure (a table); the supervisor runs against real ``sleep`` processes and
a clock the test moves, and writes the run record a real ``farm up`` would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from farm._lifetime import RunRecord, Started
from farm.errors import ConfigError
from farm.supervise import Part, RestartPolicy, Supervisor, consequence, farm_status

POLICY = RestartPolicy(limit=5, window=60, first=0.5, cap=8)


@pytest.mark.parametrize(
    ("exits", "now", "delay"),
    [
        ([100.0], 100.0, 0.5),
        ([100.0, 101.0], 101.0, 1.0),
        ([100.0, 101.0, 102.0], 102.0, 2.0),
        ([100.0, 101.0, 102.0, 103.0], 103.0, 4.0),
        ([100.0, 101.0, 102.0, 103.0, 104.0], 104.0, 8.0),
        ([100.0, 101.0, 102.0, 103.0, 104.0, 105.0], 105.0, None),  # sixth within 60 s
        ([10.0, 11.0, 12.0, 13.0, 14.0, 100.0], 100.0, 0.5),  # old exits are forgiven
        ([30.0, 60.0, 70.0, 80.0, 90.0, 100.0], 100.0, 8.0),  # one forgotten: five recent
    ],
)
def test_backoff_doubles_to_a_cap_and_gives_up_after_the_limit(
    exits: list[float], now: float, delay: float | None
) -> None:
    assert POLICY.delay(exits, now) == delay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeper:
    """A part's process: ``sleep 60``, started again by :meth:`start`."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["sleep", "60"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _part(name: str, kind: str, sleeper: Sleeper, tmp_path: Path) -> Part:
    return Part(
        name,
        kind,
        tmp_path / f"{name}.log",
        "http://127.0.0.1:1",
        {"http": "http://127.0.0.1:1/"},
        lambda: sleeper.proc,
        sleeper.start,
    )


def test_a_killed_part_is_reported_restarted_and_recorded(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path / "farm-up.json")
    sleepers = [Sleeper() for _ in range(4)]
    try:
        parts = [_part(f"validator v{i}", "validator", s, tmp_path) for i, s in enumerate(sleepers)]
        for part, s in zip(parts, sleepers, strict=True):
            assert s.proc is not None
            record.started(part.name, s.proc)
        lines: list[str] = []
        clock = Clock()
        supervisor = Supervisor(parts, record, lines.append, POLICY, clock)
        old = sleepers[1].proc
        assert old is not None
        os.kill(old.pid, signal.SIGKILL)
        old.wait()

        supervisor.step()
        assert lines == [
            f"validator v1 exited (killed by SIGKILL; log: {tmp_path / 'validator v1.log'}); "
            "restarting it in 0.5 s"
        ]
        assert sleepers[1].proc is old, "restarted before its backoff"
        clock.now += 0.5
        supervisor.step()
        new = sleepers[1].proc
        assert new is not None and new is not old and new.poll() is None
        assert lines[-1] == f"validator v1 restarted (pid {new.pid})"

        # The record (what the watchdog and the next farm up stop) names the new pid.
        saved = RunRecord.load(record.path)
        assert saved is not None
        pids = {p.name: p.pid for p in saved.processes}
        assert pids["validator v1"] == new.pid
        assert [p.name for p in saved.processes].count("validator v1") == 1
        assert saved.parts["validator v1"]["restarts"] == 1
        assert saved.parts["validator v1"]["last_exit"] == "killed by SIGKILL"
        assert saved.parts["validator v0"]["restarts"] == 0
        assert Started.of("x", new.pid, ["sleep"]).alive()
    finally:
        for s in sleepers:
            s.stop()


def test_a_part_that_keeps_exiting_is_left_down_and_the_farm_says_what_it_can_do(
    tmp_path: Path,
) -> None:
    record = RunRecord.create(tmp_path / "farm-up.json")
    sleepers = [Sleeper() for _ in range(4)]
    try:
        parts = [_part(f"validator v{i}", "validator", s, tmp_path) for i, s in enumerate(sleepers)]
        lines: list[str] = []
        clock = Clock()
        supervisor = Supervisor(parts, record, lines.append, POLICY, clock)
        for _ in range(5):
            sleepers[2].kill()
            supervisor.step()
            clock.now += 8
            supervisor.step()
            assert parts[2].state == "running"
        assert parts[2].restarts == 5
        sleepers[2].kill()
        supervisor.step()
        assert parts[2].state == "down"
        assert lines[-1].startswith("validator v2 exited (killed by SIGKILL; log: ")
        assert lines[-1].endswith(
            "after 5 restarts within 60 s; leaving it down: "
            "the ledger still commits with 3 of 4 validators"
        )
        clock.now += 100
        supervisor.step()
        assert parts[2].state == "down", "a part left down was started again"
        saved = json.loads(record.path.read_text())
        assert saved["parts"]["validator v2"]["state"] == "down"

        # A second validator down: the ledger has no quorum, and the farm says so.
        parts[3].down = True
        assert consequence(parts[3], parts) == (
            "the ledger cannot commit with 2 of 4 validators (it needs 3); "
            "nothing new is committed until farm up is restarted"
        )
    finally:
        for s in sleepers:
            s.stop()


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("redis", "the farm cannot build until Redis is back: restart farm up"),
        ("builder", "0 of 1 builders remain"),
        ("coordinator", "the farm takes no submissions"),
        ("distribution node", "the farm serves nothing new"),
    ],
)
def test_what_the_farm_says_when_a_part_is_left_down(tmp_path: Path, kind: str, says: str) -> None:
    part = Part(kind, kind, tmp_path / "log", "", {}, lambda: None, lambda: None, down=True)
    assert consequence(part, [part]).startswith(says)


def test_status_shows_each_part_and_fails_when_no_farm_runs(tmp_path: Path) -> None:
    path = tmp_path / "farm-up.json"
    with pytest.raises(ConfigError, match=f"no farm is running under {tmp_path}"):
        farm_status(path)
    record = RunRecord.create(path)  # owned by this (running) process
    sleeper = Sleeper()
    try:
        part = _part("coordinator", "coordinator", sleeper, tmp_path)
        assert sleeper.proc is not None
        record.started(part.name, sleeper.proc)
        Supervisor([part], record, lambda _: None)
        [status] = farm_status(path, timeout=0.5)
        assert (status.name, status.pid, status.restarts, status.state) == (
            "coordinator",
            sleeper.proc.pid,
            0,
            "running",
        )
        assert status.uptime is not None and 0 <= status.uptime < 30
        assert status.ready is False  # nothing answers on its port
    finally:
        sleeper.stop()
    [status] = farm_status(path)
    assert (status.pid, status.ready) == (None, False)
    # A record whose owner is gone is no running farm.
    data = json.loads(path.read_text())
    data["owner"]["pid"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="no farm is running"):
        farm_status(path)


def test_a_record_written_before_parts_existed_still_loads(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path / "farm-up.json")
    data = json.loads(record.path.read_text())
    del data["parts"]
    record.path.write_text(json.dumps(data))
    loaded = RunRecord.load(record.path)
    assert loaded is not None and loaded.parts == {}
