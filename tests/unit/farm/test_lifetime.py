"""What ``farm up`` starts dies with it (``farm._lifetime``), with real processes.

Each layer alone: the parent-death signal, the watchdog, and the reaping a later
``farm up`` does of a record whose owner is gone; and what reaping must never do: kill
a pid that now belongs to another process, or anything while the owner still runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from farm._lifetime import RunRecord, Started, die_with_parent, reap
from farm.errors import ConfigError

SLEEP = ["sleep", "60"]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(SLEEP)


def _gone_within(pid: int, start_time: int, seconds: float) -> bool:
    probe = Started("probe", pid, start_time, ("sleep",))
    deadline = time.monotonic() + seconds
    while probe.alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _intermediary(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], list[int]]:
    """A Python process running ``body``, which prints pids; returns it and those pids."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(body))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    pids = [int(x) for x in proc.stdout.readline().split()]
    return proc, pids


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent, (child,) = _intermediary(
        tmp_path,
        """
        import subprocess, time
        from farm._lifetime import die_with_parent
        p = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent())
        print(p.pid, flush=True)
        time.sleep(60)
        """,
    )
    started = Started.of("sleep", child, SLEEP)
    _kill(parent)
    assert _gone_within(child, started.start_time, 5)


def test_a_child_without_it_outlives_its_killed_parent(tmp_path: Path) -> None:
    """The control: without the parent-death signal, the orphan keeps running."""
    parent, (child,) = _intermediary(
        tmp_path,
        """
        import subprocess, time
        p = subprocess.Popen(["sleep", "60"])
        print(p.pid, flush=True)
        time.sleep(60)
        """,
    )
    started = Started.of("sleep", child, SLEEP)
    _kill(parent)
    try:
        assert not _gone_within(child, started.start_time, 1)
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_watchdog_reaps_what_a_killed_owner_recorded(tmp_path: Path) -> None:
    # The child is started *without* the parent-death signal: only the watchdog stops it.
    owner, (child,) = _intermediary(
        tmp_path,
        """
        import subprocess, sys, time
        from pathlib import Path
        from farm._lifetime import RunRecord, start_watchdog
        root = Path(sys.argv[1])
        record = RunRecord.create(root / "farm-up.json")
        watchdog = start_watchdog(record, root / "watchdog.log")
        p = subprocess.Popen(["sleep", "60"])
        record.started("sleeper", p)
        (root / "profile").write_text("FARM_A=1")
        record.add_file(root / "profile")
        print(p.pid, flush=True)
        time.sleep(60)
        """,
    )
    started = Started.of("sleep", child, SLEEP)
    _kill(owner)
    assert _gone_within(child, started.start_time, 15)
    log = tmp_path / "watchdog.log"
    deadline = time.monotonic() + 10
    while "its farm is stopped" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "its farm is stopped" in log.read_text()
    assert not (tmp_path / "farm-up.json").exists()
    assert not (tmp_path / "profile").exists()


def _record(tmp_path: Path, owner: Started) -> RunRecord:
    record = RunRecord(tmp_path / "farm-up.json", owner)
    record.save()
    return record


def _dead_owner() -> Started:
    """An owner whose pid now names another process (this one, started later)."""
    me = Started.of("pytest", os.getpid(), ["python"])
    return Started("farm up", me.pid, me.start_time - 1, ("python",))


def test_reaping_stops_leftovers_of_a_dead_owner_and_frees_their_port(tmp_path: Path) -> None:
    leftover = _sleeper()
    record = _record(tmp_path, _dead_owner())
    record.started("sleeper", leftover, [])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    record.ports.append(port)
    record.save()
    (tmp_path / "env").write_text("FARM_A=1")
    record.add_file(tmp_path / "env")
    lines: list[str] = []
    try:
        busy = reap(record.path, grace=5, port_wait=0.2, report=lines.append)
    finally:
        listener.close()
    assert leftover.wait(timeout=5) == -signal.SIGTERM
    assert busy == [port]  # held by someone else: reported, not fought over
    assert not record.path.exists()
    assert not (tmp_path / "env").exists()
    assert lines and "sleeper" in lines[0]


def test_reaping_never_signals_a_pid_that_now_names_another_process(tmp_path: Path) -> None:
    bystander = _sleeper()
    try:
        record = _record(tmp_path, _dead_owner())
        real = Started.of("sleeper", bystander.pid, SLEEP)
        record.processes.append(Started("sleeper", real.pid, real.start_time - 7, real.argv))
        record.processes.append(Started("other", real.pid, real.start_time, ("redis-server",)))
        record.save()
        reap(record.path, grace=1, port_wait=0)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_reaping_refuses_while_the_owner_still_runs(tmp_path: Path) -> None:
    child = _sleeper()
    try:
        record = _record(tmp_path, Started.of("farm up", os.getpid(), ["python"]))
        record.started("sleeper", child, [])
        with pytest.raises(ConfigError, match=rf"farm up \(pid {os.getpid()}\) is still running"):
            reap(record.path)
        assert child.poll() is None
        assert record.path.exists()
    finally:
        child.kill()
        child.wait()


def test_an_unreadable_record_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "farm-up.json"
    path.write_text(json.dumps({"owner": "nonsense"}))
    assert reap(path) == []
    assert not path.exists()


def test_the_parent_death_signal_needs_the_spawning_thread_alive() -> None:
    """Documented caveat: the signal fires when the *thread* that forked exits."""
    import threading

    box: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(
        target=lambda: box.append(subprocess.Popen(SLEEP, preexec_fn=die_with_parent()))  # noqa: PLW1509
    )
    thread.start()
    thread.join()
    assert box[0].wait(timeout=5) == -signal.SIGTERM
