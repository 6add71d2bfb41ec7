"""The processes ``farm up`` starts die with it, however it ends.

Three layers, from the most immediate to the last resort:

- :func:`die_with_parent`, a ``preexec_fn`` that asks the kernel to send the child
  SIGTERM when its parent dies (``PR_SET_PDEATHSIG``). The kernel sends it when the
  *thread* that forked the child exits, so children must be started from a thread that
  lives as long as the farm (``farm up`` starts them all from its main thread).
- The run record (:class:`RunRecord`, a JSON file beside the farm's state): who started
  the farm, every process it started (pid, start time, command line), the ports they
  listen on, the labels of the containers its builders run and the files to remove
  (the profile). It is rewritten after every start (a part that :mod:`farm.supervise`
  restarts included) and removed after an orderly stop.
- The watchdog (:func:`start_watchdog`): a small process in its own session holding the
  read end of a pipe whose write end only ``farm up`` has. End of file means ``farm up``
  is gone, even by SIGKILL; the watchdog then :func:`reap` s what the record lists:
  processes, build containers, the profile. A later ``farm up`` reaps a record left by
  a run whose watchdog died too, before it starts anything.

A pid alone is not an identity (pids are reused), so a recorded process is signalled
only while the pid still has the recorded start time (``/proc/PID/stat``), the same
boot, and a command line naming the recorded program.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from farm.errors import ConfigError

__all__ = [
    "RunRecord",
    "Started",
    "die_with_parent",
    "port_busy",
    "reap",
    "remove_containers",
    "start_watchdog",
]

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the watchdog alone does the job
    _prctl = None


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this thread exits.

    Call it in the parent (it captures the parent's pid): ``Popen(...,
    preexec_fn=die_with_parent())``. If the parent died between fork and the
    ``prctl`` call, the child exits at once instead of running orphaned.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class Started:
    """One process, identified by pid *and* start time."""

    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]

    @classmethod
    def of(cls, name: str, pid: int, argv: Iterable[str]) -> Started:
        """The running process ``pid``; ConfigError if it is already gone."""
        stat = _stat(pid)
        if stat is None:
            raise ConfigError(f"{name} (pid {pid}) exited as soon as it started")
        return cls(name, pid, stat[1], tuple(argv))

    def alive(self) -> bool:
        """Whether this very process (not a later one with its pid) still runs."""
        stat = _stat(self.pid)
        if stat is None or stat[0] == "Z" or stat[1] != self.start_time:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # redis-server rewrites its title, so look for the program's name, not argv.
        program = Path(self.argv[0]).name if self.argv else ""
        return program.encode() in cmdline


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid``, or None if none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold ") ".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass
class RunRecord:
    """What one ``farm up`` started, kept in ``path`` so that someone can undo it."""

    path: Path
    owner: Started
    boot_id: str = field(default_factory=_boot_id)
    processes: list[Started] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    container_labels: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: What ``farm up --status`` shows of each part, by name (see farm.supervise).
    parts: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def create(cls, path: Path) -> RunRecord:
        """A record owned by this process, written to ``path`` at once."""
        argv = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
        record = cls(path, Started.of("farm up", os.getpid(), argv[:-1]))
        record.save()
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord | None:
        """The record at ``path``; None if there is none or it is unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(
                path,
                _started(data["owner"]),
                boot_id=str(data["boot_id"]),
                processes=[_started(p) for p in data["processes"]],
                ports=[int(p) for p in data["ports"]],
                container_labels=[dict(labels) for labels in data["container_labels"]],
                files=[str(f) for f in data["files"]],
                parts={str(k): dict(v) for k, v in data.get("parts", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def started(
        self, name: str, proc: subprocess.Popen[bytes] | None, ports: Iterable[int] = ()
    ) -> None:
        """Record ``proc`` (and the ports it listens on) and save; None records the ports."""
        self.ports.extend(ports)
        if proc is None:
            self.save()
            return
        if isinstance(proc.args, list | tuple):
            argv: list[str] = [str(a) for a in proc.args]
        else:
            argv = [str(proc.args)]
        with contextlib.suppress(ConfigError):  # it died already: nothing to undo
            self.processes.append(Started.of(name, proc.pid, argv))
        self.save()

    def restarted(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Record ``proc`` in place of the process recorded as ``name``, and save."""
        self.processes = [p for p in self.processes if p.name != name]
        self.started(name, proc)

    def add_containers(self, labels: Mapping[str, str]) -> None:
        """Record that containers carrying all of ``labels`` belong to this farm."""
        self.container_labels.append(dict(labels))
        self.save()

    def add_file(self, path: Path) -> None:
        """Record a file to remove when the farm stops."""
        self.files.append(str(path))
        self.save()

    def save(self) -> None:
        """Write the record atomically."""
        data = asdict(self)
        data.pop("path")
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def same_boot(self) -> bool:
        """Whether the record was written since this machine last booted."""
        return self.boot_id == _boot_id()


def _started(data: dict[str, object]) -> Started:
    pid, start_time, argv = data["pid"], data["start_time"], data["argv"]
    if not isinstance(pid, int) or not isinstance(start_time, int):
        raise TypeError("pid and start_time must be integers")
    if not isinstance(argv, list):
        raise TypeError("argv must be a list")
    return Started(str(data["name"]), pid, start_time, tuple(str(a) for a in argv))


def port_busy(port: int) -> bool:
    """Whether something listens on (or holds) ``port`` on 127.0.0.1."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def remove_containers(labels: Mapping[str, str]) -> int:
    """Remove every container carrying all of ``labels``; how many. Best effort.

    ``labels`` must not be empty (that would match every container on the host). A
    Docker Engine that cannot be reached counts as nothing to remove.
    """
    if not labels:
        raise ConfigError("remove_containers needs at least one label to match")
    import docker
    import docker.errors
    import requests

    try:
        client = docker.from_env()
    except docker.errors.DockerException:
        return 0
    try:
        found = client.containers.list(
            all=True, filters={"label": [f"{k}={v}" for k, v in sorted(labels.items())]}
        )
        removed = 0
        for container in found:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
                removed += 1
        return removed
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return 0
    finally:
        client.close()


def reap(
    path: Path,
    *,
    owner_may_live: bool = False,
    grace: float = 10,
    port_wait: float = 5,
    report: Callable[[str], None] = lambda _: None,
) -> list[int]:
    """Undo what the record at ``path`` lists, then remove it; the ports still busy.

    Stops each recorded process that is still the recorded one (SIGTERM, then SIGKILL
    after ``grace`` seconds), removes the recorded build containers and files, and
    waits up to ``port_wait`` seconds for the recorded ports to be released. Raises ConfigError if
    the record's owner is still running, unless ``owner_may_live`` (the watchdog, whose
    owner is gone or going).
    """
    record = RunRecord.load(path)
    if record is None:
        path.unlink(missing_ok=True)
        return []
    same_boot = record.same_boot()
    if same_boot and not owner_may_live and record.owner.alive():
        raise ConfigError(
            f"farm up (pid {record.owner.pid}) is still running with this farm "
            f"({path.parent}); stop it first: Ctrl-C in its terminal, or kill {record.owner.pid}"
        )
    alive = [p for p in record.processes if same_boot and p.alive()]
    if alive:
        report(
            f"stopping {len(alive)} process(es) left by farm up (pid {record.owner.pid}): "
            + ", ".join(p.name for p in alive)
        )
    _stop_all(alive, grace)
    for labels in record.container_labels:
        removed = remove_containers(labels)
        if removed:
            report(f"removed {removed} build container(s) labelled {labels}")
    for name in record.files:
        Path(name).unlink(missing_ok=True)
    busy = _wait_ports(record.ports, port_wait)
    path.unlink(missing_ok=True)
    return busy


def _stop_all(processes: list[Started], grace: float) -> None:
    for p in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in processes:
        if p.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_ports(ports: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        busy = [p for p in ports if port_busy(p)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.1)


def start_watchdog(record: RunRecord, log: Path) -> subprocess.Popen[bytes]:
    """Start the watchdog for ``record``; keep the returned process's stdin open.

    Closing its stdin (or dying) tells the watchdog that this process is gone; if the
    record still exists then, the watchdog reaps it.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "farm._lifetime", str(record.path), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in farm up's terminal must not reach it
        )


def _watch(path: Path, owner: int) -> None:
    """Block until stdin ends, then reap the record if ``owner`` still owns it."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    record = RunRecord.load(path)
    if record is None or record.owner.pid != owner:
        return
    busy = reap(path, owner_may_live=True, report=lambda line: print(line, flush=True))
    print(f"farm up (pid {owner}) is gone; its farm is stopped", flush=True)
    if busy:
        print(f"ports still busy: {busy}", flush=True)


if __name__ == "__main__":
    _watch(Path(sys.argv[1]), int(sys.argv[2]))
