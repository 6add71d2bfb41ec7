"""The scheduler's :class:`~farm.coordinator.scheduler.Dispatcher` over Celery and Redis.

Tasks go to each enrolled builder's own queue through :func:`farm.dispatch.dispatch`;
the coordinator learns results from what builders post to it, and asks Celery only
whether a task ended in an exception (a builder that crashed inside the task).
"""

from __future__ import annotations

import redis
from celery import Celery
from celery.result import AsyncResult

from farm.coordinator.models import Builder
from farm.dispatch import dispatch
from farm.errors import FarmError
from farm.queue import make_celery
from farm.recipe import Recipe
from farm.registry import BuilderInfo
from farm.task import queue_for

__all__ = ["CeleryDispatcher"]


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
    """Sends build tasks over the builders' broker."""

    def __init__(self, redis_url: str, app: Celery | None = None) -> None:
        self.app = app or make_celery(redis_url)

    def send(self, recipe: Recipe, arch: str, builder: Builder, build_id: str) -> None:
        """Queue the task on ``builder``'s own queue."""
        try:
            dispatch(self.app, recipe, arch, [_info(builder)], build_id)
        except (redis.RedisError, OSError) as exc:
            raise FarmError(f"broker unreachable: {exc}") from None

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        """The exception the builder's task ended with, if it ended with one."""
        result: AsyncResult = AsyncResult(task_id(build_id, arch, builder_id), app=self.app)  # type: ignore[type-arg]
        try:
            if result.state == "FAILURE":
                return f"task failed: {result.result!r}"
        except (redis.RedisError, OSError):
            return None
        return None
