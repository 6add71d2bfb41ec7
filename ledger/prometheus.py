"""A validator's Prometheus metrics (``GET /metrics``), read at scrape time.

:class:`ValidatorCollector` counts nothing itself: every value is read, when scraped,
from what the node already keeps (:meth:`ledger.node.Node.status`, its
:class:`~ledger.metrics.NodeMetrics`, the trusted checkpoint's co-signed time), so
nothing is counted twice and ``GET /v1/metrics`` (JSON, read by ``farm bench ledger``)
stays as it is. Metrics (all prefixed ``farm_ledger_``):

=====================================  =========  =======================================
``height``                             gauge      committed height
``round``                              gauge      consensus round of the height in progress
``log_size``                           gauge      entries in the transparency log
``peers_connected``                    gauge      validators connected (of n-1)
``mempool_transactions``               gauge      transactions waiting for a block
``syncing``                            gauge      1 while catching up from peers
``checkpoint_size``                    gauge      tree size of the trusted checkpoint
``checkpoint_age_seconds``             gauge      now minus the time 2f+1 vouch for (NaN: none)
``commit_latency_seconds``             histogram  per height, started to stored
``frames_received_total{kind}``        counter    frames from peers, by kind
``late_rounds_total``                  counter    heights decided in a round above 0
=====================================  =========  =======================================

Invariant: a scrape only reads; it runs on the HTTP server's thread pool while the
node runs on its loop, so each value is one attribute read (a torn snapshot across
metrics is acceptable, a torn value is not possible).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ledger.metrics import COMMIT_BUCKETS, NodeMetrics

__all__ = ["MonitoredValidator", "ValidatorCollector", "validator_registry"]

PREFIX = "farm_ledger_"


class MonitoredValidator(Protocol):
    """What the collector reads of a running validator (:class:`ledger.node.Node`)."""

    metrics: NodeMetrics

    @property
    def checkpoint_time(self) -> int:
        """When 2f+1 validators last vouched for the trusted checkpoint (0: none)."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/status`` shows."""
        ...


class ValidatorCollector(Collector):
    """The metrics of one validator, read from it at each scrape (module docstring)."""

    def __init__(self, node: MonitoredValidator, clock: Any = time.time) -> None:
        self._node = node
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        node = self._node
        status = node.status()
        gauges = (
            ("height", "Committed height.", status["height"]),
            ("round", "Consensus round of the height in progress.", status["round"]),
            ("log_size", "Entries in the transparency log.", status["size"]),
            ("peers_connected", "Validators connected to this one.", len(status["peers"])),
            ("mempool_transactions", "Transactions waiting for a block.", status["mempool"]),
            ("syncing", "1 while catching up from peers, else 0.", int(status["syncing"])),
            ("checkpoint_size", "Tree size of the trusted checkpoint.", status["checkpoint_size"]),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value)
        stamp = node.checkpoint_time
        age = self._clock() - stamp if stamp > 0 else math.nan
        yield GaugeMetricFamily(
            PREFIX + "checkpoint_age_seconds",
            "Seconds since 2f+1 validators last vouched for the trusted checkpoint.",
            value=age,
        )
        m = node.metrics
        buckets = [
            (repr(bound), float(count))
            for bound, count in zip(COMMIT_BUCKETS, m.commit_buckets, strict=True)
        ]
        buckets.append(("+Inf", float(m.commit_count)))
        yield HistogramMetricFamily(
            PREFIX + "commit_latency_seconds",
            "Per height, from starting consensus to the block stored and applied.",
            buckets=buckets,
            sum_value=m.commit_sum,
        )
        frames = CounterMetricFamily(
            PREFIX + "frames_received", "Frames received from peers, by kind.", labels=["kind"]
        )
        for kind, count in sorted(m.frames_in.items()):
            frames.add_metric([kind], count)
        yield frames
        yield CounterMetricFamily(
            PREFIX + "late_rounds", "Heights decided in a round above 0.", value=m.late_rounds
        )


def validator_registry(node: MonitoredValidator) -> CollectorRegistry:
    """A registry of its own holding ``node``'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ValidatorCollector(node))
    return registry
