"""Where ``farm bench ledger``'s light-load latency goes (:mod:`farm.bench.ledger`).

Around the light phase (one transaction at a time) the bench reads, for every
validator process:

* from ``/proc/<pid>``: CPU time (user + system), the time its threads were runnable
  but waiting for a CPU (``schedstat``, the run-queue wait), and its involuntary
  context switches;
* from ``GET /v1/metrics`` (:mod:`ledger.metrics`): frames received (and how many
  were relayed copies, dropped by digest) and sent, timeouts fired, rounds above 0,
  fsync and garbage-collector time, and per height when it started, had the
  proposal, saw 2f+1 prevotes, decided, stored, and trusted a checkpoint covering it.

Each submit is then split, on the clock every process shares (``time.monotonic``),
into the phases its entry validator went through (:data:`PHASES`); the phases add up
to the submit's latency. The slowest submits' phases against the median's say which
phase makes the tail; the CPU and run-queue figures say whether the processes were
working or waiting for a core.

Everything is measured robustly to a busy machine where it can be: CPU time per
submit and frames per height do not depend on what else runs; the run-queue wait
says how much of the latency was waiting for a core.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["PHASES", "ProcSample", "Submit", "explain_light", "print_explanation", "proc_sample"]

PHASES = (
    ("queue", "submit → height starts at its validator (HTTP in, check, gossip)"),
    ("propose", "height start → proposal there"),
    ("prevote", "proposal → 2f+1 prevotes (own precommit out)"),
    ("precommit", "2f+1 prevotes → 2f+1 precommits (decided)"),
    ("store", "decided → block stored (fsync) and applied"),
    ("checkpoint", "stored → 2f+1 co-signed checkpoint"),
    ("answer", "checkpoint → answer at the client (proof, HTTP out)"),
)
"""The phases a light submit is split into, as its entry validator saw them."""

_MOMENTS = ("start", "proposal", "polka", "decide", "stored", "checkpoint")


@dataclass(frozen=True)
class Submit:
    """One light-load submit: which validator took it, when (``time.monotonic``) it was
    sent and answered, and the height it was committed at."""

    validator: int
    sent: float
    answered: float
    height: int


@dataclass(frozen=True)
class ProcSample:
    """One validator process's counters at one moment (Linux ``/proc``)."""

    cpu_s: float
    run_s: float
    wait_s: float
    involuntary: int


def proc_sample(pid: int) -> ProcSample:
    """CPU, run-queue wait (summed over the process's threads) and involuntary context
    switches of ``pid``; zeros where ``/proc`` cannot tell (process gone, no schedstat)."""
    cpu = run = wait = 0.0
    invol = 0
    base = Path(f"/proc/{pid}")
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = (base / "stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in (base / "task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parts = (task / "schedstat").read_text().split()
                run += int(parts[0]) / 1e9
                wait += int(parts[1]) / 1e9
    with contextlib.suppress(OSError, ValueError):
        for line in (base / "status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                invol = int(line.split()[1])
    return ProcSample(cpu, run, wait, invol)


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def _split(sub: Submit, row: dict[str, float] | None) -> dict[str, float]:
    """The submit's latency split into :data:`PHASES` (ms); a moment the validator did
    not record (or recorded before the previous one) folds its phase into the next,
    so the phases always add up to the latency."""
    moments = [(row or {}).get(m, 0.0) for m in _MOMENTS] + [sub.answered]
    out: dict[str, float] = {}
    last = sub.sent
    for (name, _), t in zip(PHASES, moments, strict=True):
        if not t or t < last:
            out[name] = 0.0
            continue
        end = min(t, sub.answered)
        out[name] = (end - last) * 1000
        last = end
    return out


def _rows(metrics: dict[str, Any]) -> dict[int, dict[str, float]]:
    """height → {moment: time} from one validator's ``/v1/metrics``."""
    names = metrics.get("phases", list(_MOMENTS))
    return {int(h[0]): dict(zip(names, h[3:], strict=False)) for h in metrics.get("heights", [])}


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
    a, b = after.get(key, 0), before.get(key, 0)
    if isinstance(a, dict):
        return float(sum(a.values()) - sum(b.values()) if isinstance(b, dict) else 0)
    return float(a - b)


def explain_light(
    submits: Sequence[Submit],
    metrics_before: Sequence[dict[str, Any] | None],
    metrics_after: Sequence[dict[str, Any] | None],
    procs_before: Sequence[ProcSample],
    procs_after: Sequence[ProcSample],
    client_cpu_s: float,
    cpus: int,
) -> dict[str, Any]:
    """The light phase explained (see the module docstring), as JSON-ready figures.

    Keys: ``phases_ms`` (per phase: p50, p99, and mean over the slowest 5 % of the
    submits, ``tail``), ``cpu_ms_per_submit`` (all validators), the same per validator
    (mean and max), ``runq_wait_ms_per_submit`` per validator (mean and max),
    ``cpu_floor_ms`` (all validators' CPU per submit over the CPUs: no schedule of that
    work on this machine answers faster on average), frames in/out per height and
    validator (``frames_dup_per_height``: relayed copies dropped unread), consensus
    timeouts fired and acted on, heights decided in a round above 0, fsync and GC
    time per height and validator.
    """
    n = len(procs_after)
    count = max(1, len(submits))
    rows = [_rows(m) if m else {} for m in metrics_after]
    split = [_split(s, rows[s.validator].get(s.height)) for s in submits]
    lat = [(s.answered - s.sent) * 1000 for s in submits]
    slowest = sorted(range(len(submits)), key=lambda i: lat[i])[-max(1, len(submits) // 20) :]
    phases = {
        name: {
            "p50": round(_pct([p[name] for p in split], 50), 2),
            "p99": round(_pct([p[name] for p in split], 99), 2),
            "tail": round(statistics.fmean(split[i][name] for i in slowest), 2),
        }
        for name, _ in PHASES
    }
    # schedstat's run time has nanoseconds; /proc/<pid>/stat counts clock ticks.
    cpu = [
        (a.run_s - b.run_s) if a.run_s and b.run_s else (a.cpu_s - b.cpu_s)
        for a, b in zip(procs_after, procs_before, strict=True)
    ]
    wait = [a.wait_s - b.wait_s for a, b in zip(procs_after, procs_before, strict=True)]
    invol = [a.involuntary - b.involuntary for a, b in zip(procs_after, procs_before, strict=True)]
    heights = max(1, len({s.height for s in submits}))
    pairs = [(a, b) for a, b in zip(metrics_after, metrics_before, strict=True) if a and b]
    per_height = heights * max(1, len(pairs))

    def total(key: str) -> float:
        return sum(_delta(a, b, key) for a, b in pairs)

    def frames(kind: str) -> float:
        return float(
            sum(
                a.get("frames_in", {}).get(kind, 0) - b.get("frames_in", {}).get(kind, 0)
                for a, b in pairs
            )
        )

    return {
        "submits": len(submits),
        "heights": heights,
        "latency_ms": {"p50": round(_pct(lat, 50), 2), "p99": round(_pct(lat, 99), 2)},
        "phases_ms": phases,
        "cpu_ms_per_submit": round(1000 * sum(cpu) / count, 3),
        "cpu_ms_per_submit_per_validator": {
            "mean": round(1000 * sum(cpu) / n / count, 3),
            "max": round(1000 * max(cpu) / count, 3),
        },
        "runq_wait_ms_per_submit_per_validator": {
            "mean": round(1000 * sum(wait) / n / count, 3),
            "max": round(1000 * max(wait) / count, 3),
        },
        "involuntary_switches_per_submit": round(sum(invol) / count, 2),
        "client_cpu_ms_per_submit": round(1000 * client_cpu_s / count, 3),
        "cpu_floor_ms": round(1000 * sum(cpu) / count / cpus, 2),
        "frames_in_per_height": round(total("frames_in") / per_height, 1),
        "frames_dup_per_height": round(frames("c-dup") / per_height, 1),
        "consensus_frames_per_height": round(frames("c") / per_height, 1),
        "frames_out_per_height": round(total("frames_out") / per_height, 1),
        "kb_in_per_height": round(total("bytes_in") / per_height / 1024, 1),
        "timeouts_fired": int(total("timeouts")),
        "timeouts_acted": int(total("timeouts_acted")),
        "late_rounds": int(total("late_rounds")),
        "fsyncs_per_height": round(total("disk_writes") / per_height, 2),
        "fsync_ms_per_height": round(1000 * total("disk_s") / per_height, 3),
        "gc_ms_per_height": round(1000 * total("gc_s") / per_height, 3),
    }


def print_explanation(console: Console, n: int, cpus: int, x: dict[str, Any]) -> None:
    """The light phase's explanation as two tables on ``console``."""
    phases = Table(title=f"light load, {n} validators: where a submit's time goes (ms)")
    phases.add_column("phase")
    for col in ("p50", "p99", "slowest 5 %"):
        phases.add_column(col, justify="right")
    for name, what in PHASES:
        p = x["phases_ms"][name]
        phases.add_row(f"{name}: {what}", f"{p['p50']:.1f}", f"{p['p99']:.1f}", f"{p['tail']:.1f}")
    lat = x["latency_ms"]
    tail = sum(p["tail"] for p in x["phases_ms"].values())
    phases.add_row("submit → answer", f"{lat['p50']:.1f}", f"{lat['p99']:.1f}", f"{tail:.1f}")
    console.print(phases)

    cost = Table(title=f"light load, {n} validators on {cpus} CPUs: what one submit costs")
    cost.add_column("measure")
    cost.add_column("value", justify="right")
    per_v = x["cpu_ms_per_submit_per_validator"]
    wait = x["runq_wait_ms_per_submit_per_validator"]
    for k, v in (
        ("validators' CPU per submit (all)", f"{x['cpu_ms_per_submit']} ms"),
        ("  per validator: mean / max", f"{per_v['mean']} / {per_v['max']} ms"),
        ("  floor: all that CPU / CPUs", f"{x['cpu_floor_ms']} ms"),
        (
            "run-queue wait per submit, per validator: mean / max",
            f"{wait['mean']} / {wait['max']} ms",
        ),
        (
            "involuntary context switches per submit (all)",
            f"{x['involuntary_switches_per_submit']}",
        ),
        ("bench client's CPU per submit", f"{x['client_cpu_ms_per_submit']} ms"),
        ("frames in per height, per validator", f"{x['frames_in_per_height']}"),
        ("  of them consensus, first copy", f"{x['consensus_frames_per_height']}"),
        ("  of them consensus, relayed copy dropped", f"{x['frames_dup_per_height']}"),
        ("frames out per height, per validator", f"{x['frames_out_per_height']}"),
        ("KiB in per height, per validator", f"{x['kb_in_per_height']}"),
        ("fsyncs per height, per validator", f"{x['fsyncs_per_height']}"),
        ("  time in them per height, per validator", f"{x['fsync_ms_per_height']} ms"),
        ("GC time per height, per validator", f"{x['gc_ms_per_height']} ms"),
        ("timeouts fired (acted on)", f"{x['timeouts_fired']} ({x['timeouts_acted']})"),
        ("heights decided in a round above 0", f"{x['late_rounds']}"),
    ):
        cost.add_row(k, v)
    console.print(cost)
