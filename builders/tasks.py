"""The Celery edge of a builder: receive a task, build once, return the signed result.

A builder runs only tasks signed by the coordinator key it is configured with and
addressed to itself (:func:`farm.task.verify_task`, ADR 41). Any other message on its
queue is refused before anything else happens: logged at WARNING with the build and
builder ids it claims, and ended with :class:`~farm.errors.TaskRefusedError` — no build,
no stored result, nothing delivered.

A stored result counts only if it verifies as this builder's own signed result for the
task (:func:`farm.dispatch.check_result`): one that does not (a key written by someone
else with the broker's URL) is logged, replaced, and the task is built.

Idempotent by (build id, builder id): the first completed result is stored in Redis
with SET NX and every later delivery of the same task returns that stored result
instead of building again. A delivery after a worker crash first removes the
containers the crashed attempt left behind. An ``infrastructure`` failure (this host's
engine failed, :data:`farm.result.FAILURE_KINDS`) is delivered but not stored: the
coordinator sends the task again, and it must build again (ADR 37).

A worker takes no build while its Docker Engine does not answer: it waits up to
:data:`ENGINE_WAIT` seconds for it, then gives the task back to its queue
(:class:`celery.exceptions.Reject`) for when the engine is back, instead of failing it.

A build outlives a broker that restarts under it: storing the finished result is tried
again for up to :data:`STORE_WITHIN` seconds, and a result that still could not be
stored is delivered all the same (the coordinator holds what counts; the stored copy
only answers a repeated task), so a Redis restart mid-build never throws a build away.

Every line logged while a task runs, by any module, carries its build id and builder
id (:func:`farm.logs.bind`); with counters (:class:`builders.metrics.BuildCounters`)
each task is counted as started, then finished by outcome, and a build's duration is
observed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject
from securesystemslib.signer import SSlibKey

from builders.build import BuildContext, execute
from builders.metrics import BuildCounters, outcome_of
from builders.runner import engine_answers
from farm.dispatch import check_result
from farm.errors import FarmError, TaskRefusedError
from farm.logs import bind
from farm.registry import BuilderInfo
from farm.task import BUILD_TASK_NAME, BuildTask, claimed_ids, verify_task

__all__ = ["register_build_task", "result_key", "store_result"]

logger = logging.getLogger(__name__)

#: Completed results are kept this long for idempotency (seconds).
RESULT_TTL = 30 * 24 * 3600
#: How long a finished build tries to store its result while Redis is away (seconds).
STORE_WITHIN = 300.0
#: Pause between two tries (seconds).
STORE_PAUSE = 2.0
#: How long a task waits for an engine that does not answer before it is given back.
ENGINE_WAIT = 30.0


def store_result(
    client: redis.Redis,
    build_id: str,
    builder_id: str,
    body: str,
    *,
    within: float = STORE_WITHIN,
    pause: float = STORE_PAUSE,
    log: logging.Logger | logging.LoggerAdapter = logger,  # type: ignore[type-arg]
    genuine: Callable[[str], bool] = lambda _body: True,
) -> str | None:
    """Store ``body`` as the one result of (build id, builder id), trying again while
    Redis is unreachable for up to ``within`` seconds.

    Returns the stored result: ``body``, or the one another attempt stored first if it
    is ``genuine`` (one that is not is replaced by ``body``); None if Redis could not be
    reached in time (the caller delivers ``body`` anyway)."""
    key = result_key(build_id, builder_id)
    deadline = time.monotonic() + within
    while True:
        try:
            if client.set(key, body, nx=True, ex=RESULT_TTL):
                counter = completions_key(build_id, builder_id)
                client.incr(counter)
                client.expire(counter, RESULT_TTL)
                return body
            first = client.get(key)
            if first is None:  # expired in between: nothing else stands
                return body
            text = first.decode() if isinstance(first, bytes) else str(first)
            if not genuine(text):
                log.warning("the stored result is not this builder's signed one; replaced")
                client.set(key, body, ex=RESULT_TTL)
                return body
            return text
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() >= deadline:
                log.error("result not stored: Redis unreachable for %.0f s (%s)", within, exc)
                return None
            log.warning("Redis unreachable, storing the result again shortly: %s", exc)
            time.sleep(pause)


def result_key(build_id: str, builder_id: str) -> str:
    """Redis key of the one stored result of (build id, builder id)."""
    return f"farm:result:{build_id}:{builder_id}"


def completions_key(build_id: str, builder_id: str) -> str:
    """Redis counter of how many times (build id, builder id) ran to a stored result."""
    return f"farm:completions:{build_id}:{builder_id}"


class _BoundLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[build {extra.get('build_id')} builder {extra.get('builder_id')}] {msg}", kwargs


@contextlib.contextmanager
def _bound(task: BuildTask) -> Iterator[logging.LoggerAdapter]:  # type: ignore[type-arg]
    with bind(build_id=task.build_id, builder_id=task.builder_id):
        yield _BoundLog(logger, {"build_id": task.build_id, "builder_id": task.builder_id[:12]})


#: Called with each result envelope once it is stored (delivery to a coordinator).
Deliver = Callable[[dict[str, Any]], object]


def _self_info(ctx: BuildContext) -> BuilderInfo:
    """This builder as :func:`~farm.dispatch.check_result` wants it (key and id only)."""
    now = datetime.now(UTC)
    return BuilderInfo(
        builder_id=ctx.key.keyid,
        public_key=ctx.key.public_dict(),
        arches=(),
        hostname="",
        pid=0,
        queue="",
        started_at=now,
        seen_at=now,
    )


def _genuine_for(ctx: BuildContext, task: BuildTask) -> Callable[[str], bool]:
    """Whether a stored body is this builder's own signed result for ``task``."""
    me = _self_info(ctx)

    def genuine(body: str) -> bool:
        try:
            check_result(json.loads(body), me, task)
        except (FarmError, ValueError, TypeError):
            return False
        return True

    return genuine


def _accepted(payload: object, coordinator: SSlibKey, ctx: BuildContext) -> BuildTask:
    """The task in ``payload`` if ``coordinator`` signed it for this builder; else log
    why (WARNING, with the ids it claims) and raise :class:`TaskRefusedError`."""
    try:
        return verify_task(payload, coordinator, ctx.key.keyid)
    except TaskRefusedError as exc:
        build_id, claimed = claimed_ids(payload)
        with bind(build_id=build_id, builder_id=ctx.key.keyid):
            logger.warning(
                "[build %s builder %s] task refused, not built: %s (it names builder %s)",
                build_id,
                ctx.key.keyid[:12],
                exc,
                claimed,
            )
        raise


def register_build_task(
    app: Celery,
    ctx: BuildContext,
    client: redis.Redis,
    coordinator: SSlibKey,
    deliver: Deliver | None = None,
    counters: BuildCounters | None = None,
    engine_wait: float = ENGINE_WAIT,
) -> Task:  # type: ignore[type-arg]
    """Register the build task on ``app`` for the builder whose context is ``ctx``,
    running only tasks signed by ``coordinator`` (see the module docstring).

    With ``deliver``, every stored result (a fresh one, or the stored one returned
    again for a repeated task) is also handed to it; it must not raise. With
    ``counters``, each task is counted (see the module docstring). ``engine_wait``:
    how long a task waits for an engine that does not answer before it is given back.
    """

    def delivered(result: dict[str, Any]) -> dict[str, Any]:
        if deliver is not None:
            deliver(result["envelope"])
        return result

    # A refusal is expected, not a crash: Celery logs it without a traceback.
    @app.task(name=BUILD_TASK_NAME, bind=True, throws=(TaskRefusedError,))
    def build(self: Task, payload: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
        if counters is None:
            return run(payload, None)
        counters.started.inc()
        t0 = time.monotonic()
        try:
            result = run(payload, t0)
        except BaseException:
            counters.finished.labels("error").inc()
            raise
        return result

    def counted(result: dict[str, Any], t0: float | None) -> dict[str, Any]:
        """Count a task that built (``t0``: when it started) and return ``result``."""
        if counters is not None and t0 is not None:
            counters.duration.observe(time.monotonic() - t0)
            counters.finished.labels(outcome_of(result)).inc()
        return result

    def repeated(result: dict[str, Any], t0: float | None) -> dict[str, Any]:
        if counters is not None and t0 is not None:
            counters.finished.labels("repeated").inc()
        return result

    def run(payload: dict[str, Any], t0: float | None) -> dict[str, Any]:
        task = _accepted(payload, coordinator, ctx)
        genuine = _genuine_for(ctx, task)
        with _bound(task) as log:
            key = result_key(task.build_id, task.builder_id)
            stored = client.get(key)
            if stored is not None:
                text = stored.decode() if isinstance(stored, bytes) else str(stored)
                if genuine(text):
                    log.info("already built; returning the stored result")
                    result: dict[str, Any] = json.loads(text)
                    return repeated(delivered(result), t0)
                log.warning("the stored result is not this builder's signed one; building")
            if not engine_answers(ctx.docker, within=engine_wait):
                log.warning(
                    "the Docker Engine does not answer after %.0f s; task given back", engine_wait
                )
                raise Reject("the Docker Engine does not answer", requeue=True)
            recipe = task.load_recipe()
            log.info("building %s for %s", recipe.label, task.arch)
            outcome = execute(task, recipe, ctx)
            if outcome.infrastructure_failure:
                # Not stored: the task sent again must build again, not repeat this.
                log.warning("this host failed the build, not the build itself; not stored")
                return counted(delivered(outcome.to_json()), t0)
            body = json.dumps(outcome.to_json())
            stored_body = store_result(
                client, task.build_id, task.builder_id, body, log=log, genuine=genuine
            )
            if stored_body is None or stored_body == body:
                log.info("done")
                return counted(delivered(outcome.to_json()), t0)
            log.warning("another attempt stored a result first; returning that one")
            first: dict[str, Any] = json.loads(stored_body)
            return counted(delivered(first), t0)

    return build
