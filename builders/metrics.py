"""A builder host's Prometheus metrics and readiness, served by its worker process.

``farm builder run --metrics-address HOST:PORT`` serves ``GET /healthz``, ``/readyz``
and ``/metrics`` from a small threaded HTTP server beside the Celery worker
(:class:`farm.health_http.OperationsServer`). Metrics (prefixed ``farm_builder_``):

==================================  =========  ==========================================
``builds_started_total``            counter    build tasks received
``builds_finished_total{outcome}``  counter    tasks ended: ``succeeded``, ``failed`` (a
                                               signed failed result), ``repeated`` (the
                                               stored result returned again), ``error``
                                               (the task raised)
``build_duration_seconds``          histogram  tasks that built, received to result
``image_present``                   gauge      1 if the pinned builder image is loaded
``queue_depth``                     gauge      tasks waiting in this builder's own queue
==================================  =========  ==========================================

Ready (:func:`builder_checks`): Docker answers, the pinned image (``--image`` /
``FARM_BUILDER_IMAGE``) is present in it, and the broker (Redis) answers. With no
image pinned the image check fails: a builder cannot say it can build without knowing
in what (fail closed).

Invariant: scrapes and readiness probes only read (Docker ``ping`` and image inspect,
Redis ``PING`` and ``LLEN``), each bounded by the clients' timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import docker
import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from builders.image import image_present
from farm.health import Check, probe

__all__ = ["BuildCounters", "BuilderCollector", "builder_checks"]

PREFIX = "farm_builder_"

DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0)

OUTCOMES = ("succeeded", "failed", "repeated", "error")


class BuildCounters:
    """What the build task counts, in a registry of the builder's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.started = Counter(
            PREFIX + "builds_started", "Build tasks received.", registry=registry
        )
        self.finished = Counter(
            PREFIX + "builds_finished",
            "Build tasks ended, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.finished.labels(outcome)
        self.duration = Histogram(
            PREFIX + "build_duration_seconds",
            "Tasks that built, from received to signed result.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )


def _image_check(docker_client: docker.DockerClient, image: str | None) -> Check:
    if image is None:
        return Check("image", False, "no builder image pinned (--image / FARM_BUILDER_IMAGE)")

    def present() -> str:
        if not image_present(docker_client, image):
            raise LookupError(f"{image} is not loaded in the Docker Engine")
        return f"{image[:19]}… present"

    return probe("image", present)


class BuilderCollector(Collector):
    """``image_present`` and ``queue_depth``, read at scrape time."""

    def __init__(
        self,
        docker_client: docker.DockerClient,
        broker: redis.Redis,
        queue: str,
        image: str | None,
    ) -> None:
        self._docker = docker_client
        self._broker = broker
        self._queue = queue
        self._image = image

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            PREFIX + "image_present",
            "1 if the pinned builder image is loaded in the Docker Engine, else 0.",
            value=int(_image_check(self._docker, self._image).ok),
        )
        yield GaugeMetricFamily(
            PREFIX + "queue_depth",
            "Tasks waiting in this builder's own Celery queue.",
            value=self._broker.llen(self._queue),
        )


def builder_checks(
    docker_client: docker.DockerClient, broker: redis.Redis, image: str | None
) -> Callable[[], list[Check]]:
    """The readiness checks of a builder (see the module docstring)."""

    def checks() -> list[Check]:
        def engine() -> str:
            docker_client.ping()
            return "Docker answers"

        def ping() -> str:
            broker.ping()
            return "PING answered"

        return [
            probe("docker", engine),
            _image_check(docker_client, image),
            probe("redis", ping),
        ]

    return checks


def builder_registry(
    docker_client: docker.DockerClient, broker: redis.Redis, queue: str, image: str | None
) -> tuple[CollectorRegistry, BuildCounters]:
    """A registry of the builder's own: the task's counters and the scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    counters = BuildCounters(registry)
    registry.register(BuilderCollector(docker_client, broker, queue, image))
    return registry, counters


def outcome_of(result: dict[str, Any]) -> str:
    """``succeeded`` or ``failed``: the status the signed result carries."""
    from farm.result import envelope_payload, parse_statement

    status = parse_statement(envelope_payload(result["envelope"])).predicate.status
    return "succeeded" if status == "succeeded" else "failed"
