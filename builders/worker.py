"""``farm builder run``: one builder host as a Celery worker on its own queue.

Runs the ``solo`` pool, one build at a time, in this process: a worker killed with
SIGKILL takes its build with it, and the unacknowledged task is delivered again when
the builder starts again (:mod:`builders.requeue`), or else once the visibility
timeout has passed. Announces itself to the registry every few seconds
with the architectures it can really build, and beats to the coordinator, which gives a
builder silent for long up as lost (:mod:`farm.coordinator.scheduler`): the announcement
uses a Redis client of its own with short timeouts, so a builder cut off from Redis
keeps beating to the coordinator (and keeps its build) instead of hanging with the
broker. With ``metrics_address`` it also serves
``/healthz``, ``/readyz`` and ``/metrics`` (:mod:`builders.metrics`) from a small HTTP
server in this process, started before the worker and closed after it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import docker
import redis
from celery.signals import setup_logging as celery_setup_logging
from redis.backoff import NoBackoff
from redis.retry import Retry
from securesystemslib.signer import SSlibKey

from builders.arch import buildable_arches
from builders.build import BuildContext
from builders.delivery import CoordinatorLink
from builders.fetch import Fetcher
from builders.identity import load_identity
from builders.metrics import BuildCounters, builder_checks, builder_registry
from builders.requeue import requeue_interrupted
from builders.runner import remove_stale
from builders.settings import BuilderSettings
from builders.store import ContentStore
from builders.tasks import register_build_task
from farm.errors import ConfigError
from farm.health_http import OperationsServer
from farm.keys import load_public_key
from farm.queue import keyspace_of, make_celery
from farm.registry import BuilderInfo, announce, heard, withdraw
from farm.task import queue_for

__all__ = ["beat_client", "run_worker"]

logger = logging.getLogger(__name__)


def _heartbeat(
    client: redis.Redis,
    info: BuilderInfo,
    interval: float,
    stop: threading.Event,
    beat: Callable[[], None] = lambda: None,
) -> None:
    beat()
    while not stop.wait(interval):
        try:
            announce(client, info.model_copy(update={"seen_at": datetime.now(UTC)}))
        except redis.RedisError as exc:
            logger.warning("heartbeat failed: %s", exc)
        beat()


def beat_client(redis_url: str, interval: float) -> redis.Redis:
    """The heartbeat's own Redis client: one try, bounded by ``interval`` (at least 1 s),
    so an unreachable or silent broker never holds up the beat to the coordinator."""
    timeout = max(1.0, interval)
    return redis.Redis.from_url(
        redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _alive(other: BuilderInfo, hostname: str, interval: float) -> bool:
    """Whether another announcement of this builder comes from a live process."""
    if other.hostname == hostname:
        if other.pid == os.getpid():
            return False
        try:
            os.kill(other.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    age = (datetime.now(UTC) - other.seen_at).total_seconds()
    return age < 2 * interval + 1


def _redacted(url: str) -> str:
    """``url`` without its password (it goes to logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _keep_farm_logging(**_: object) -> None:
    """Celery's ``setup_logging`` receiver: the process's logging (:mod:`farm.logs`) stands."""


def _operations(
    settings: BuilderSettings, docker_client: docker.DockerClient, queue: str
) -> tuple[OperationsServer | None, BuildCounters | None]:
    """The /healthz, /readyz, /metrics server (not started), if an address is set."""
    if not settings.metrics_address:
        return None, None
    # A client of its own with timeouts: a probe must answer even if Redis hangs.
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    registry, counters = builder_registry(docker_client, broker, queue, settings.builder_image)
    checks = builder_checks(docker_client, broker, settings.builder_image)
    return OperationsServer(settings.metrics_address, checks, registry), counters


def _coordinator_key(settings: BuilderSettings) -> SSlibKey:
    """The key every task this builder runs must be signed with (fail closed: none set)."""
    if settings.builder_coordinator_key is None:
        raise ConfigError(
            "no coordinator key: set FARM_BUILDER_COORDINATOR_KEY to the coordinator's public "
            "key file; a builder runs only tasks signed by it (ADR 41)"
        )
    return load_public_key(settings.builder_coordinator_key)


def run_worker(settings: BuilderSettings, *, loglevel: str = "INFO", quiet: bool = False) -> None:
    """Serve this builder's queue until stopped; raise :class:`ConfigError` if it cannot start.

    ``quiet``: no start-up banner on stdout (with JSON logs, only JSON lines).
    """
    key = load_identity(settings.key_path)
    coordinator = _coordinator_key(settings)
    arches = buildable_arches()
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at {_redacted(settings.redis_url)}: {exc}") from None
    hostname = socket.gethostname()
    # Only its own heartbeat: a broker credential of this builder reads no other key.
    other = heard(client, key.keyid)
    if other is not None and _alive(other, hostname, settings.heartbeat_interval):
        raise ConfigError(
            f"builder {key.keyid[:12]} is already running (pid {other.pid} on {other.hostname})"
        )
    try:
        docker_client = docker.from_env()
        docker_client.ping()
    except docker.errors.DockerException as exc:
        raise ConfigError(f"cannot reach the Docker Engine: {exc}") from None
    removed = remove_stale(docker_client, {"farm.builder-id": key.keyid})
    if removed:
        logger.warning("removed %d container(s) left by an earlier run", removed)
    ctx = BuildContext(
        key=key,
        docker=docker_client,
        fetcher=Fetcher(settings.cache, pypi_url=settings.pypi_url, progress=logger.info),
        store=ContentStore(settings.store),
        work_root=settings.work_root,
        visibility_timeout=settings.visibility_timeout,
        build_margin=settings.build_margin,
        keep_work=settings.keep_work,
        progress=logger.info,
        vary=settings.builder_variation,
    )
    keyspace = keyspace_of(key.keyid) if settings.own_keyspace else ""
    app = make_celery(
        settings.redis_url, visibility_timeout=settings.visibility_timeout, keyprefix=keyspace
    )
    # No other live process serves this identity (checked above): a task its queue
    # still has unacknowledged was taken by a killed process of this builder.
    requeue_interrupted(app, queue_for(key.keyid))
    link = (
        CoordinatorLink(settings.coordinator_url, key, attempts=settings.delivery_attempts)
        if settings.coordinator_url
        else None
    )
    store = ctx.store
    server, counters = _operations(settings, docker_client, keyspace + queue_for(key.keyid))
    register_build_task(
        app,
        ctx,
        client,
        coordinator,
        deliver=(lambda envelope: link.deliver(envelope, store)) if link is not None else None,
        counters=counters,
    )
    celery_setup_logging.connect(_keep_farm_logging, weak=False)
    now = datetime.now(UTC)
    info = BuilderInfo(
        builder_id=key.keyid,
        public_key=key.public_dict(),
        arches=arches,
        hostname=hostname,
        pid=os.getpid(),
        queue=queue_for(key.keyid),
        started_at=now,
        seen_at=now,
    )
    announce(client, info)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(
            beat_client(settings.redis_url, settings.heartbeat_interval),
            info,
            settings.heartbeat_interval,
            stop,
        ),
        kwargs={"beat": link.heartbeat} if link is not None else {},
        daemon=True,
    )
    beat.start()
    if server is not None:
        server.start()
        logger.info("serving /healthz, /readyz, /metrics on %s", settings.metrics_address)
    logger.info(
        "builder %s serving %s for %s; runs tasks signed by coordinator key %s",
        key.keyid[:12],
        info.queue,
        ", ".join(arches),
        str(coordinator.keyid)[:12],
    )
    try:
        worker = app.Worker(
            queues=[info.queue],
            pool="solo",
            concurrency=1,
            hostname=f"builder-{key.keyid[:12]}@{hostname}",
            loglevel=loglevel,
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            quiet=quiet,
        )
        worker.start()
    finally:
        stop.set()
        if server is not None:
            server.close()
        withdraw(client, key.keyid)
