"""Send one build to chosen builders and collect their signed results.

The edge between the caller and the queue. Every returned envelope is verified
against the key the builder announced, and must be *this* build's result: the same
build id, recipe digest, architecture and builder — a result replayed from another
build is refused, not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from celery.result import AsyncResult

from farm.errors import FarmError, SignatureError
from farm.keys import public_key_from_dict
from farm.recipe import Recipe
from farm.registry import BuilderInfo
from farm.result import SignedResult, verify_result
from farm.task import BUILD_TASK_NAME, BuildTask

__all__ = ["BuilderRun", "check_result", "collect", "dispatch"]


@dataclass
class BuilderRun:
    """One builder's part in a build, as the caller sees it."""

    builder: BuilderInfo
    task: BuildTask
    async_result: AsyncResult  # type: ignore[type-arg]
    state: str = "QUEUED"
    result: SignedResult | None = None
    error: str | None = None
    log_tail: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def done(self) -> bool:
        """Whether this builder's part has ended, one way or another."""
        return self.ended is not None


def check_result(payload: object, builder: BuilderInfo, task: BuildTask) -> SignedResult:
    """Verify a task's returned envelope and that it answers exactly ``task``."""
    if not isinstance(payload, dict) or "envelope" not in payload:
        raise SignatureError("builder returned no envelope")
    key = public_key_from_dict(builder.public_key)
    if key.keyid != builder.builder_id:
        raise SignatureError(f"builder {builder.builder_id[:12]} announced another key")
    result = verify_result(payload["envelope"], [key])
    p = result.predicate
    expected = {
        "build id": (p.build_id, task.build_id),
        "recipe digest": (p.recipe_digest, task.recipe_digest),
        "architecture": (p.arch, task.arch),
        "builder": (p.builder_id, task.builder_id),
    }
    for what, (got, want) in expected.items():
        if got != want:
            raise SignatureError(f"result is for another {what}: {got} (expected {want})")
    return result


def dispatch(
    app: Celery, recipe: Recipe, arch: str, builders: Sequence[BuilderInfo], build_id: str
) -> list[BuilderRun]:
    """Queue one task per builder on that builder's own queue."""
    runs = []
    for builder in builders:
        task = BuildTask.create(recipe, arch, builder.builder_id, build_id)
        async_result = app.send_task(
            BUILD_TASK_NAME,
            args=[task.model_dump(mode="json")],
            queue=builder.queue,
            task_id=f"{build_id}-{arch}-{builder.builder_id[:16]}",
        )
        runs.append(BuilderRun(builder=builder, task=task, async_result=async_result))
    return runs


def _settle(run: BuilderRun) -> None:
    try:
        state = run.async_result.state
    except (redis.RedisError, OSError):
        return  # the broker is away for a moment (restart); ask again on the next poll
    if state == "SUCCESS":
        payload: Any = run.async_result.result
        run.log_tail = str(payload.get("log_tail", "")) if isinstance(payload, dict) else ""
        try:
            run.result = check_result(payload, run.builder, run.task)
            run.state = "DONE" if run.result.predicate.status == "succeeded" else "FAILED"
            run.error = run.result.predicate.error
        except FarmError as exc:
            run.state, run.error = "REFUSED", str(exc)
        run.ended = time.monotonic()
    elif state == "FAILURE":
        run.state, run.error = "ERROR", f"task failed: {run.async_result.result!r}"
        run.ended = time.monotonic()
    elif state == "STARTED":
        run.state = "BUILDING"
    elif state == "RETRY":
        run.state = "RETRYING"


def collect(
    runs: Sequence[BuilderRun],
    timeout: float,
    on_update: Callable[[Sequence[BuilderRun]], None] = lambda _r: None,
    poll: float = 0.25,
) -> None:
    """Wait until every run has ended or ``timeout`` seconds pass; missing runs stay open."""
    deadline = time.monotonic() + timeout
    while True:
        for run in runs:
            if not run.done:
                _settle(run)
        on_update(runs)
        if all(r.done for r in runs) or time.monotonic() >= deadline:
            return
        time.sleep(poll)
