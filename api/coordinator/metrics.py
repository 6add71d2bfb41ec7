"""The coordinator's Prometheus metrics (``GET /metrics``), read at scrape time.

Everything is read, when scraped, from where it already lives: the database (builds,
their verdicts and times, builders' agreement counts, attestations) and, with a
scheduler, Redis (each approved builder's Celery queue). Nothing is counted in memory,
so the values survive a restart and agree with the API. Metrics (prefixed
``farm_coordinator_``):

=========================================  =========  =====================================
``builds{status}``                         gauge      builds by status: pending, running,
                                                      or the verdict (verified, disputed,
                                                      failed)
``queue_depth{builder}``                   gauge      tasks waiting in the builder's queue
``build_duration_seconds``                 histogram  finished builds, requested to verdict
``agreement_rate``                         gauge      agreeing results / finished results,
                                                      all builders (NaN: none yet)
``builder_agreement_rate{builder}``        gauge      the same, per builder
``attestations{status}``                   gauge      committed or rejected attest txs
``submit_to_commit_seconds``               histogram  verified build to its attest
                                                      transaction committed on the ledger
=========================================  =========  =====================================

Invariant: a scrape only reads (one short read-only session); a database or Redis that
does not answer makes the scrape fail (the scraper records it), never the API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, col, select

from farm.coordinator.models import Attestation, Build, Builder
from farm.queue import keyspace_of
from farm.task import queue_for

if TYPE_CHECKING:
    import redis

    from api.coordinator.runtime import Runtime

__all__ = ["DURATION_BUCKETS", "CoordinatorCollector", "coordinator_registry", "histogram"]

PREFIX = "farm_coordinator_"

DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0)
"""Upper bounds (seconds) of both histograms; +Inf is implied."""


def histogram(values: Iterable[float], bounds: Sequence[float]) -> tuple[list[int], float, int]:
    """Cumulative counts of ``values`` at most each bound, their sum and their count."""
    counts = [0] * len(bounds)
    total, n = 0.0, 0
    for v in values:
        n += 1
        total += v
        for i, bound in enumerate(bounds):
            if v <= bound:
                counts[i] += 1
    return counts, total, n


def _family(name: str, doc: str, values: Iterable[float]) -> HistogramMetricFamily:
    counts, total, n = histogram(values, DURATION_BUCKETS)
    buckets = [(repr(b), float(c)) for b, c in zip(DURATION_BUCKETS, counts, strict=True)]
    buckets.append(("+Inf", float(n)))
    return HistogramMetricFamily(PREFIX + name, doc, buckets=buckets, sum_value=total)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


class CoordinatorCollector(Collector):
    """The coordinator's metrics, read from its database and broker (module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._redis: redis.Redis | None = None

    def _broker(self) -> redis.Redis | None:
        url = self._runtime.settings.redis_url
        if not url:
            return None
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return self._redis

    def _queue(self, builder_id: str) -> str:
        """The Redis key of ``builder_id``'s queue (in its own keyspace, if it has one)."""
        own = self._runtime.settings.builder_keyspaces
        return (keyspace_of(builder_id) if own else "") + queue_for(builder_id)

    def collect(self) -> Iterator[Metric]:
        with Session(self._runtime.engine) as session:
            yield from self._builds(session)
            yield from self._builders(session)
            yield from self._attestations(session)

    def _builds(self, session: Session) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            PREFIX + "builds",
            "Builds by status (pending, running, or the verdict once decided).",
            labels=["status"],
        )
        counts = session.exec(select(Build.status, func.count()).group_by(Build.status)).all()
        for status, count in sorted(counts):
            by_status.add_metric([status], count)
        yield by_status
        times = session.exec(
            select(Build.created_at, Build.finished_at).where(col(Build.finished_at).is_not(None))
        ).all()
        yield _family(
            "build_duration_seconds",
            "Finished builds, from requested to their verdict.",
            (s for a, b in times if (s := _seconds(a, b)) is not None),
        )

    def _builders(self, session: Session) -> Iterator[Metric]:
        builders = session.exec(select(Builder).order_by(col(Builder.id))).all()
        per = GaugeMetricFamily(
            PREFIX + "builder_agreement_rate",
            "Share of a builder's finished builds whose verdict it agreed with.",
            labels=["builder"],
        )
        for b in builders:
            if b.builds_done:
                per.add_metric([b.id], b.agreements / b.builds_done)
        yield per
        done = sum(b.builds_done for b in builders)
        agreed = sum(b.agreements for b in builders)
        yield GaugeMetricFamily(
            PREFIX + "agreement_rate",
            "Agreeing results over finished results, all builders (NaN: none yet).",
            value=agreed / done if done else math.nan,
        )
        broker = self._broker()
        if broker is not None:
            depth = GaugeMetricFamily(
                PREFIX + "queue_depth",
                "Tasks waiting in each approved builder's own Celery queue (Redis).",
                labels=["builder"],
            )
            for b in builders:
                if b.approved:
                    depth.add_metric([b.id], broker.llen(self._queue(b.id)))
            yield depth

    def _attestations(self, session: Session) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            PREFIX + "attestations",
            "Attest transactions by how the ledger answered (committed, rejected).",
            labels=["status"],
        )
        counts = session.exec(
            select(Attestation.status, func.count()).group_by(Attestation.status)
        ).all()
        for status, count in sorted(counts):
            by_status.add_metric([status], count)
        yield by_status
        times = session.exec(
            select(Build.finished_at, Attestation.submitted_at)
            .join(Build, col(Build.id) == col(Attestation.build_id))
            .where(Attestation.status == "committed")
        ).all()
        yield _family(
            "submit_to_commit_seconds",
            "From a build's verified verdict to its attest transaction committed.",
            (s for a, b in times if (s := _seconds(a, b)) is not None),
        )


def coordinator_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry of its own holding the coordinator's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoordinatorCollector(runtime))
    return registry
