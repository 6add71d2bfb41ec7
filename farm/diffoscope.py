"""Explain why two outputs differ: Debian's ``diffoscope``, run with limits.

A disputed build (or a rebuild that differs from upstream) gets a diffoscope report of
the differing files, as HTML (for people) and JSON (for tools). diffoscope unpacks
archives recursively and can be slow or memory-hungry on hostile input, so it runs in
its own process group with a wall-clock timeout, an address-space limit (rlimit),
a CPU-time limit, and report-size limits.

Invariants: this never hangs (the whole process group is killed at the timeout) and
never reports "no difference" for a run that failed: a missing tool, a timeout, a
limit hit or an error exit is a :class:`DiffoscopeError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from farm.errors import FarmError

__all__ = ["DiffoscopeError", "DiffoscopeLimits", "DiffoscopeReport", "run_diffoscope"]

log = logging.getLogger(__name__)


class DiffoscopeError(FarmError):
    """diffoscope is missing, timed out, hit a limit, or failed."""


@dataclass(frozen=True)
class DiffoscopeLimits:
    """Bounds of one diffoscope run."""

    timeout: float = 300.0
    """Wall-clock seconds before the run is killed."""
    memory: int = 2 * 2**30
    """Address-space limit of the diffoscope process, bytes."""
    max_report_size: int = 20 * 2**20
    """Passed to ``--max-report-size`` (bytes of one report)."""
    max_diff_block_lines: int = 1024
    """Passed to ``--max-diff-block-lines``."""


@dataclass(frozen=True)
class DiffoscopeReport:
    """Where the reports are, and whether diffoscope found a difference."""

    html: Path
    json: Path
    differ: bool


def _limit(memory: int, cpu_seconds: int) -> None:
    # Runs in the child between fork and exec.
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_diffoscope(
    a: Path,
    b: Path,
    out_dir: Path,
    limits: DiffoscopeLimits | None = None,
    *,
    executable: str = "diffoscope",
) -> DiffoscopeReport:
    """Compare ``a`` and ``b``; write ``report.html`` and ``report.json`` into ``out_dir``.

    Raises :class:`DiffoscopeError` if diffoscope is not installed, a file is missing,
    the run exceeds ``limits.timeout`` or fails (exit status other than 0 or 1).
    """
    limits = limits or DiffoscopeLimits()
    tool = shutil.which(executable)
    if tool is None:
        raise DiffoscopeError(f"{executable} is not installed (Debian: apt-get install diffoscope)")
    for path in (a, b):
        if not path.is_file():
            raise DiffoscopeError(f"{path}: no such file to compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / "report.html", out_dir / "report.json"
    argv = [
        tool,
        "--no-progress",
        "--html",
        str(html),
        "--json",
        str(js),
        "--max-report-size",
        str(limits.max_report_size),
        "--max-diff-block-lines",
        str(limits.max_diff_block_lines),
        str(a),
        str(b),
    ]
    cpu = max(1, int(limits.timeout) + 1)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: _limit(limits.memory, cpu),  # noqa: PLW1509 - no threads touched
    )
    try:
        _, stderr = proc.communicate(timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise DiffoscopeError(
            f"diffoscope did not finish within {limits.timeout:g}s comparing {a.name} and {b.name}"
        ) from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    text = stderr.decode("utf-8", "replace").strip()
    if proc.returncode not in (0, 1):
        last = text.splitlines()[-1] if text else "no message"
        if proc.returncode < 0:
            last = f"killed by signal {-proc.returncode} (a resource limit?)"
        raise DiffoscopeError(
            f"diffoscope failed (exit {proc.returncode}) comparing {a.name} and {b.name}: {last}"
        )
    if not html.is_file() and proc.returncode == 1:
        raise DiffoscopeError("diffoscope reported a difference but wrote no HTML report")
    log.info("diffoscope %s vs %s: exit %s", a.name, b.name, proc.returncode)
    return DiffoscopeReport(html=html, json=js, differ=proc.returncode == 1)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
