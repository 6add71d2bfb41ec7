"""The scheduler's :class:`~farm.coordinator.scheduler.Dispatcher` over Celery and Redis.

Tasks go to each enrolled builder's own queue through :func:`farm.dispatch.dispatch`
(with ``builder_keyspaces``, in that builder's own broker keyspace: a Celery app per
builder whose keys all start with :func:`farm.queue.keyspace_of`), each signed with the
coordinator's key (ADR 41); the coordinator learns results only from what builders sign
and post to it. A Celery ``FAILURE`` state is not a builder's word (anyone with the
broker's URL can write one): :meth:`CeleryDispatcher.failure` reports it for the log,
and the scheduler ends no attempt on it.

A broker that lost its contents is recognised by a marker key: the dispatcher sets
``farm:broker:marker`` to a random value once, and a later look that finds it missing
(or another value) means Redis was emptied or replaced (:meth:`broker_reset`).
Redis keeps the key across restarts (append-only, fsync always), so a restart alone
is not a reset.
"""

from __future__ import annotations

import secrets

import redis
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import KombuError
from redis.backoff import NoBackoff
from redis.retry import Retry

from farm.coordinator.models import Builder
from farm.dispatch import dispatch
from farm.errors import FarmError
from farm.keys import KeyPair
from farm.queue import keyspace_of, make_celery
from farm.recipe import Recipe
from farm.registry import BuilderInfo
from farm.task import queue_for

__all__ = ["MARKER_KEY", "CeleryDispatcher"]

#: The key whose disappearance tells that the broker lost its contents.
MARKER_KEY = "farm:broker:marker"


def _info(builder: Builder) -> BuilderInfo:
    seen = builder.last_seen or builder.enrolled_at
    return BuilderInfo(
        builder_id=builder.id,
        public_key=builder.public_key,
        arches=tuple(builder.arches),
        hostname=builder.hostname,
        pid=0,
        queue=queue_for(builder.id),
        started_at=builder.enrolled_at,
        seen_at=seen,
    )


def task_id(build_id: str, arch: str, builder_id: str) -> str:
    """The Celery task id :func:`farm.dispatch.dispatch` gives a builder's task."""
    return f"{build_id}-{arch}-{builder_id[:16]}"


class CeleryDispatcher:
    """Sends build tasks over the builders' broker, signed with ``signer``."""

    def __init__(
        self,
        redis_url: str,
        signer: KeyPair,
        app: Celery | None = None,
        *,
        builder_keyspaces: bool = False,
    ) -> None:
        self.app = app or make_celery(redis_url)
        self.signer = signer
        self._url = redis_url
        self._keyspaces = builder_keyspaces
        self._apps: dict[str, Celery] = {}
        # Short timeouts, one try: a pass of the scheduler must not hang on a broker that
        # is away (Celery's own clients retry for many seconds before giving up).
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        self._marker: bytes | str | None = None

    def send(self, recipe: Recipe, arch: str, builder: Builder, build_id: str) -> None:
        """Queue the task on ``builder``'s own queue; FarmError if the broker is away.

        Celery's Redis result backend, which subscribes to every sent task's result,
        gives up on a broker that stays away with a RuntimeError: that is one too."""
        try:
            self._redis.ping()  # fail fast while the broker is away
            dispatch(self._app(builder.id), recipe, arch, [_info(builder)], build_id, self.signer)
        except (redis.RedisError, OSError, KombuError, RuntimeError) as exc:
            raise FarmError(f"broker unreachable: {str(exc).strip()}") from None

    def _app(self, builder_id: str) -> Celery:
        """The app that reaches ``builder_id``'s queue and results."""
        if not self._keyspaces:
            return self.app
        if builder_id not in self._apps:
            self._apps[builder_id] = make_celery(self._url, keyprefix=keyspace_of(builder_id))
        return self._apps[builder_id]

    def broker_reset(self) -> bool:
        """Whether Redis lost its contents since the last call (see the module docstring)."""
        try:
            value = self._redis.get(MARKER_KEY)
            if value is None:
                self._redis.set(MARKER_KEY, secrets.token_hex(16), nx=True)
                value = self._redis.get(MARKER_KEY)
        except (redis.RedisError, OSError):
            return False
        if value is None:
            return False
        reset = self._marker is not None and value != self._marker
        self._marker = value
        return reset

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        """The unsigned ``FAILURE`` state the broker holds for the builder's task, if any,
        for the log only: no builder signed it, so it ends nothing (ADR 41)."""
        app = self._app(builder_id)
        result: AsyncResult = AsyncResult(task_id(build_id, arch, builder_id), app=app)  # type: ignore[type-arg]
        try:
            if result.state == "FAILURE":
                return f"task failed: {result.result!r}"[:300]
        except (redis.RedisError, OSError, ValueError, TypeError):
            return None
        return None
