"""What one validator process counts about itself, served by ``GET /v1/metrics``.

Counters and timings that explain a validator's latency and CPU, read by ``farm bench
ledger`` (:mod:`farm.bench.ledger`) before and after a phase of load:

* frames received, by kind, and how many consensus frames were relayed copies of a
  message already seen (dropped by digest); frames and bytes queued to peers (counted
  by :class:`ledger.network.Network`);
* consensus timeouts that fired while their height was still being decided, and
  how many of those changed anything; heights decided in a round above 0;
* the time spent in fsynced writes (vote guard, lock, block, checkpoint) and in the
  cyclic garbage collector;
* for each of the last :data:`HEIGHTS_KEPT` heights, when (``time.monotonic()``, one
  clock for every process of the machine) the validator started it, had its proposal,
  saw 2f+1 prevotes for it (its own precommit left), decided it, had it stored and
  applied, and trusted a checkpoint covering it (2f+1 co-signatures);
* every height's commit latency (started to stored), counted into the cumulative
  buckets of :data:`COMMIT_BUCKETS`, which ``GET /metrics`` serves as a Prometheus
  histogram (:mod:`ledger.prometheus`).

Nothing here takes part in consensus: it only records what the node did.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["COMMIT_BUCKETS", "HEIGHTS_KEPT", "PHASES", "NodeMetrics", "TimedGuard"]

HEIGHTS_KEPT = 4_096
"""Heights whose phase times are kept (the oldest are forgotten first)."""

PHASES = ("start", "proposal", "polka", "decide", "stored", "checkpoint")
"""The moments recorded per height, in the order they happen."""

COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the commit latency histogram; +Inf is implied."""


class NodeMetrics:
    """One validator's counters (see the module docstring)."""

    def __init__(self) -> None:
        self.frames_in: Counter[str] = Counter()
        self.bytes_in = 0
        self.timeouts: Counter[str] = Counter()
        self.timeouts_acted: Counter[str] = Counter()
        self.late_rounds = 0
        self.disk_s = 0.0
        self.disk_writes = 0
        self.gc_s = 0.0
        self.gc_runs = 0
        self._gc_t0 = 0.0
        self.commit_buckets = [0] * len(COMMIT_BUCKETS)
        """Heights whose commit latency was at most each bound (cumulative)."""
        self.commit_count = 0
        self.commit_sum = 0.0
        # height → [txs, round, start, proposal, polka, decide, stored, checkpoint, size]
        self._heights: OrderedDict[int, list[float]] = OrderedDict()

    # ------------------------------------------------------------------ recording

    def frame_in(self, kind: str, nbytes: int) -> None:
        """A frame of ``kind`` arrived (``"c-dup"``: a consensus frame already seen)."""
        self.frames_in[kind] += 1
        self.bytes_in += nbytes

    def timeout(self, kind: str, acted: bool) -> None:
        """A timeout of the height being decided fired; ``acted``: it produced effects."""
        self.timeouts[kind] += 1
        if acted:
            self.timeouts_acted[kind] += 1

    def _row(self, height: int) -> list[float]:
        row = self._heights.get(height)
        if row is None:
            row = self._heights[height] = [0.0] * (3 + len(PHASES))
            row[1] = -1
            while len(self._heights) > HEIGHTS_KEPT:
                self._heights.popitem(last=False)
        return row

    def mark(self, height: int, phase: str) -> None:
        """Record the first time ``phase`` (one of :data:`PHASES`) happened at ``height``."""
        row = self._row(height)
        i = 2 + PHASES.index(phase)
        if not row[i]:
            row[i] = time.monotonic()
            if phase == "stored" and row[2]:
                self._commit_latency(row[i] - row[2])

    def _commit_latency(self, seconds: float) -> None:
        self.commit_count += 1
        self.commit_sum += seconds
        for j, bound in enumerate(COMMIT_BUCKETS):
            if seconds <= bound:
                self.commit_buckets[j] += 1

    def decided(self, height: int, round: int, txs: int, size: int) -> None:
        """``height`` was decided in ``round`` with ``txs`` transactions, log ``size``."""
        self.mark(height, "decide")
        row = self._row(height)
        row[0], row[1], row[-1] = txs, round, size
        if round > 0:
            self.late_rounds += 1

    def checkpoint(self, size: int) -> None:
        """A checkpoint of ``size`` entries is trusted: every height it covers is done."""
        now = time.monotonic()
        for row in reversed(self._heights.values()):
            if row[-1] and row[-1] <= size:
                if row[-2]:
                    break
                row[-2] = now

    @contextmanager
    def disk(self) -> Iterator[None]:
        """Time one fsynced write."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.disk_s += time.perf_counter() - t0
            self.disk_writes += 1

    def watch_gc(self) -> None:
        """Time every run of the cyclic garbage collector in this process."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_t0
            self.gc_runs += 1

    # ------------------------------------------------------------------ reading

    def snapshot(self, *, frames_out: int, bytes_out: int, since: int = 0) -> dict[str, Any]:
        """Everything, as JSON; ``heights`` lists those above ``since`` as
        ``[height, txs, round, start, proposal, polka, decide, stored, checkpoint]``
        (times from ``time.monotonic()``, 0 where the moment was not seen)."""
        return {
            "frames_in": dict(self.frames_in),
            "bytes_in": self.bytes_in,
            "frames_out": frames_out,
            "bytes_out": bytes_out,
            "timeouts": dict(self.timeouts),
            "timeouts_acted": dict(self.timeouts_acted),
            "late_rounds": self.late_rounds,
            "disk_s": self.disk_s,
            "disk_writes": self.disk_writes,
            "gc_s": self.gc_s,
            "gc_runs": self.gc_runs,
            "cpu_s": time.process_time(),
            "phases": list(PHASES),
            "heights": [[h, *row[:-1]] for h, row in self._heights.items() if h > since],
        }


class TimedGuard:
    """A vote guard whose fsynced records are timed into ``metrics``."""

    def __init__(self, guard: Any, metrics: NodeMetrics) -> None:
        self._guard = guard
        self._metrics = metrics

    def record(self, height: int, round: int, step: str, value_hash: bytes | None) -> None:
        """See :class:`ledger.consensus.VoteGuard`."""
        with self._metrics.disk():
            self._guard.record(height, round, step, value_hash)
