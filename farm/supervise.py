"""Keep the parts of a local farm running: restart one that exits, within limits.

``farm up`` polls each part (validator, Redis, builder, coordinator, distribution node)
from its main thread (a restarted part must die with that thread, see
:mod:`farm._lifetime`). A part that exits is reported in one line (which part, its exit
status, its log) and started again with the same command line after a backoff; it
resumes from its own stored state (a validator catches up from its peers, a builder
announces itself again, the coordinator reopens its database, Redis its append-only
file). The rest of the farm keeps running.

Invariants:

- The run record lists the pid of every part that runs, restarted ones included, so
  the watchdog and the next ``farm up`` still stop them; its ``parts`` section says
  what ``farm up --status`` shows (restarts, state, last exit).
- A part restarted :attr:`RestartPolicy.limit` times within
  :attr:`RestartPolicy.window` seconds that exits again is left down, and the report
  says what the farm can still do without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from farm._lifetime import RunRecord
from farm.errors import ConfigError, FarmError

__all__ = ["Part", "PartStatus", "RestartPolicy", "Supervisor", "consequence", "farm_status"]


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a part that exited, and when to give up on it."""

    #: Restarts allowed within ``window`` seconds; the next exit leaves the part down.
    limit: int = 5
    #: Seconds over which exits count against ``limit``.
    window: float = 60
    #: Backoff before the first restart; it doubles with each recent exit.
    first: float = 0.5
    #: The longest backoff.
    cap: float = 8

    def delay(self, exits: Sequence[float], now: float) -> float | None:
        """Seconds to wait before restarting after the latest of ``exits``; None: leave it down.

        ``exits`` are the part's exit times (same clock as ``now``), the latest included.
        """
        recent = sum(1 for t in exits if now - t < self.window)
        if recent > self.limit:
            return None
        return float(min(self.first * 2 ** max(recent - 1, 0), self.cap))


@dataclass
class Part:
    """One process of the farm, as the supervisor sees it."""

    name: str
    #: validator, redis, builder, coordinator or distribution node
    kind: str
    log: Path
    #: Where it answers (empty for a builder, which listens nowhere).
    address: str
    #: How ``farm up --status`` tells it is ready: {"http": URL}, {"redis": URL} or
    #: {"builder": ID, "redis": URL}.
    probe: dict[str, str]
    #: Its current process, if started.
    proc: Callable[[], subprocess.Popen[bytes] | None]
    #: Start it again, with the same command line.
    start: Callable[[], None]
    exits: list[float] = field(default_factory=list)
    restarts: int = 0
    due: float | None = None
    down: bool = False
    last_exit: str = ""

    @property
    def state(self) -> str:
        """running, restarting or down."""
        return "down" if self.down else "restarting" if self.due is not None else "running"


def _describe(code: int | None) -> str:
    if code is None:
        return "no process"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def consequence(part: Part, parts: Sequence[Part]) -> str:
    """What the farm can still do with ``part`` left down (one sentence)."""
    if part.kind == "validator":
        validators = [p for p in parts if p.kind == "validator"]
        n = len(validators)
        up = sum(1 for p in validators if not p.down)
        need = n - (n - 1) // 3
        if up >= need:
            return f"the ledger still commits with {up} of {n} validators"
        return (
            f"the ledger cannot commit with {up} of {n} validators (it needs {need}); "
            "nothing new is committed until farm up is restarted"
        )
    if part.kind == "redis":
        return "the farm cannot build until Redis is back: restart farm up"
    if part.kind == "builder":
        builders = [p for p in parts if p.kind == "builder"]
        up = sum(1 for p in builders if not p.down)
        return f"{up} of {len(builders)} builders remain"
    if part.kind == "coordinator":
        return "the farm takes no submissions and commits nothing until farm up is restarted"
    return "the farm serves nothing new until farm up is restarted"


class Supervisor:
    """Restarts the parts that exit; call :meth:`step` from the thread that started them."""

    def __init__(
        self,
        parts: Sequence[Part],
        record: RunRecord | None,
        report: Callable[[str], None],
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parts = list(parts)
        self.record = record
        self.report = report
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.publish()

    def step(self) -> None:
        """Notice parts that exited, restart those whose backoff is over."""
        for part in self.parts:
            if part.down:
                continue
            if part.due is not None:
                if self.clock() >= part.due:
                    self._restart(part)
                continue
            proc = part.proc()
            code = None if proc is None else proc.poll()
            if proc is None or code is not None:
                self._exited(part, _describe(code))

    def _exited(self, part: Part, how: str) -> None:
        now = self.clock()
        part.exits.append(now)
        part.last_exit = how
        delay = self.policy.delay(part.exits, now)
        if delay is None:
            part.down = True
            self.report(
                f"{part.name} exited ({how}; log: {part.log}) after {self.policy.limit} "
                f"restarts within {self.policy.window:g} s; leaving it down: "
                f"{consequence(part, self.parts)}"
            )
        else:
            part.due = now + delay
            self.report(
                f"{part.name} exited ({how}; log: {part.log}); restarting it in {delay:g} s"
            )
        self.publish()

    def _restart(self, part: Part) -> None:
        part.due = None
        part.restarts += 1
        try:
            part.start()
        except (FarmError, OSError) as exc:
            self._exited(part, f"did not start: {exc}")
            return
        proc = part.proc()
        if self.record is not None and proc is not None:
            self.record.restarted(part.name, proc)
        self.report(f"{part.name} restarted (pid {proc.pid if proc else '?'})")
        self.publish()

    def publish(self) -> None:
        """Write what ``farm up --status`` shows into the run record."""
        if self.record is None:
            return
        self.record.parts = {
            p.name: {
                "kind": p.kind,
                "address": p.address,
                "log": str(p.log),
                "probe": dict(p.probe),
                "restarts": p.restarts,
                "state": p.state,
                "last_exit": p.last_exit,
            }
            for p in self.parts
        }
        self.record.save()


@dataclass(frozen=True)
class PartStatus:
    """One line of ``farm up --status``."""

    name: str
    address: str
    pid: int | None
    uptime: float | None
    restarts: int
    state: str
    ready: bool
    last_exit: str


def farm_status(record_path: Path, timeout: float = 2) -> list[PartStatus]:
    """Each part of the farm whose run record is ``record_path``, probed now.

    Raises ConfigError if no farm up runs with that record.
    """
    record = RunRecord.load(record_path)
    if record is None or not record.same_boot() or not record.owner.alive():
        raise ConfigError(f"no farm is running under {record_path.parent} (farm up is not running)")
    running = {p.name: p for p in record.processes if p.alive()}
    out = []
    for name, info in record.parts.items():
        proc = running.get(name)
        probe = info.get("probe")
        restarts = info.get("restarts", 0)
        out.append(
            PartStatus(
                name=name,
                address=str(info.get("address", "")),
                pid=proc.pid if proc is not None else None,
                uptime=_uptime(proc.start_time) if proc is not None else None,
                restarts=restarts if isinstance(restarts, int) else 0,
                state=str(info.get("state", "")),
                ready=proc is not None and isinstance(probe, dict) and _ready(probe, timeout),
                last_exit=str(info.get("last_exit", "")),
            )
        )
    return out


def _uptime(start_ticks: int) -> float | None:
    try:
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(since_boot - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)


def _ready(probe: dict[str, object], timeout: float) -> bool:
    """Whether the part answers as the probe says it should."""
    import httpx
    import redis

    try:
        if "http" in probe:
            return httpx.get(str(probe["http"]), timeout=timeout).status_code == 200
        client = redis.Redis.from_url(str(probe["redis"]), socket_timeout=timeout)
        try:
            if "builder" in probe:
                from farm.registry import list_builders

                return any(b.builder_id == probe["builder"] for b in list_builders(client))
            return bool(client.ping())
        finally:
            client.close()
    except (httpx.HTTPError, redis.RedisError, KeyError):
        return False
