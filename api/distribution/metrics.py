"""The distribution node's Prometheus metrics (``GET /metrics``) and readiness.

Requests and bytes are counted as they are answered (:class:`Served`, fed by
:class:`api.distribution.app.DistApp` for every HTTP request); everything else is read
from the node at scrape time. Metrics (prefixed ``farm_dist_``):

=================================  =========  ============================================
``requests_total{route,status}``   counter    HTTP requests answered, by route and status
``bytes_served_total{route}``      counter    response body bytes sent, by route
``height``                         gauge      ledger height applied
``lag_heights``                    gauge      highest height a validator sent minus applied
``lag_seconds``                    gauge      seconds since a validator last had no block
                                              beyond ours (NaN: never)
``log_size``                       gauge      entries of the replicated log
``checkpoint_size``                gauge      tree size of the newest trusted checkpoint
``checkpoint_age_seconds``         gauge      seconds since 2f+1 validators vouched for it
``mirror_backlog``                 gauge      blobs attested but not mirrored yet
``artifacts_served``               gauge      artifacts whose bytes are served now
=================================  =========  ============================================

``route`` is one of :data:`ROUTES` (the first path segment that names what is asked),
so a scraper sees a bounded set of series whatever paths clients try.

Readiness (:func:`dist_checks`): a validator answered at least one poll, and the
newest checkpoint is no older than ``max_age`` (:class:`~api.distribution.settings.
DistSettings`), the age past which a consumer refuses it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from farm.health import Check, distribution_checks

if TYPE_CHECKING:
    from api.distribution.node import DistNode

__all__ = ["ROUTES", "DistCollector", "Served", "dist_checks", "dist_registry", "route_of"]

PREFIX = "farm_dist_"

ROUTES = (
    "artifacts",
    "simple",
    "packages",
    "evidence",
    "status",
    "healthz",
    "readyz",
    "metrics",
    "other",
)
"""The values of the ``route`` label."""

_V1 = {"packages": "packages", "evidence": "evidence", "status": "status"}


def route_of(path: str) -> str:
    """The ``route`` label of a request for ``path`` (one of :data:`ROUTES`)."""
    parts = path.split("/", 3)
    first = parts[1] if len(parts) > 1 else ""
    if first == "v1":
        return _V1.get(parts[2] if len(parts) > 2 else "", "other")
    return first if first in ROUTES else "other"


class Served:
    """Requests and bytes answered, by route (and status); touched on the event loop only."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.bytes: Counter[str] = Counter()

    def record(self, route: str, status: int, nbytes: int) -> None:
        """One request to ``route`` answered ``status`` with ``nbytes`` of body."""
        self.requests[(route, status)] += 1
        self.bytes[route] += nbytes


class DistCollector(Collector):
    """The node's metrics, read at each scrape (see the module docstring)."""

    def __init__(self, node: DistNode, served: Served) -> None:
        self._node = node
        self._served = served

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            PREFIX + "requests", "HTTP requests answered.", labels=["route", "status"]
        )
        for (route, status), n in sorted(self._served.requests.copy().items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        sent = CounterMetricFamily(
            PREFIX + "bytes_served", "Response body bytes sent.", labels=["route"]
        )
        for route, n in sorted(self._served.bytes.copy().items()):
            sent.add_metric([route], n)
        yield sent
        node = self._node
        follower = node.follower
        now = time.time()
        view = node.view
        stamp = follower.checkpoint_time
        gauges = (
            ("height", "Ledger height applied.", follower.height),
            (
                "lag_heights",
                "Highest height a validator sent minus the height applied.",
                max(follower.seen_height - follower.height, 0),
            ),
            (
                "lag_seconds",
                "Seconds since a validator last had no block beyond ours (NaN: never).",
                now - follower.tip_time if follower.tip_time else math.nan,
            ),
            ("log_size", "Entries of the replicated log.", node.state.size),
            ("checkpoint_size", "Tree size of the newest trusted checkpoint.", view.tree_size),
            (
                "checkpoint_age_seconds",
                "Seconds since 2f+1 validators vouched for the newest checkpoint (NaN: none).",
                now - stamp if stamp > 0 else math.nan,
            ),
            ("mirror_backlog", "Blobs attested but not mirrored yet.", node.mirror.pending),
            ("artifacts_served", "Artifacts whose bytes are served now.", len(view.served)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value)


def dist_registry(node: DistNode, served: Served) -> CollectorRegistry:
    """A registry of its own holding the node's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DistCollector(node, served))
    return registry


def dist_checks(node: DistNode) -> list[Check]:
    """Followed at least once; the newest checkpoint no older than ``max_age``."""
    return distribution_checks(
        followed=node.followed > 0,
        checkpoint_time=node.follower.checkpoint_time,
        now=time.time(),
        max_age=node.settings.max_age,
    )
