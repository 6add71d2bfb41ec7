"""Send one build to chosen builders and collect their signed results.

The edge between the caller and the queue. Every returned envelope is verified
against the key the builder announced, and must be *this* build's result: the same
build id, recipe digest, architecture and builder — a result replayed from another
build is refused, not counted. Every task is signed with the coordinator's key
(:func:`farm.task.sign_task`, ADR 41).

Only a builder's signed result ends a run. The result backend is the shared broker,
which anyone holding its URL can write: a ``FAILURE`` state, or a ``SUCCESS`` whose
payload does not verify as this builder's result for this task, is logged and read as
"no word yet" — the run stays open until a signed result comes or the caller's
timeout passes. Collecting waits on the notices the result backend
publishes as it stores each task state, not on a clock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from celery.result import AsyncResult

from farm.errors import ConfigError, FarmError, SignatureError
from farm.keys import KeyPair, public_key_from_dict
from farm.recipe import Recipe
from farm.registry import BuilderInfo
from farm.result import SignedResult, verify_result
from farm.task import BUILD_TASK_NAME, BuildTask, sign_task

__all__ = ["BuilderRun", "check_result", "collect", "dispatch"]

logger = logging.getLogger(__name__)


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
    #: Why the broker's word on this run was not taken (unsigned), logged once.
    ignored: str | None = None

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
    app: Celery,
    recipe: Recipe,
    arch: str,
    builders: Sequence[BuilderInfo],
    build_id: str,
    signer: KeyPair,
) -> list[BuilderRun]:
    """Queue one task per builder on that builder's own queue, each signed by ``signer``
    (the coordinator key the builders are configured to trust)."""
    runs = []
    for builder in builders:
        task = BuildTask.create(recipe, arch, builder.builder_id, build_id)
        async_result = app.send_task(
            BUILD_TASK_NAME,
            args=[sign_task(task, signer)],
            queue=builder.queue,
            task_id=f"{build_id}-{arch}-{builder.builder_id[:16]}",
        )
        runs.append(BuilderRun(builder=builder, task=task, async_result=async_result))
    return runs


def _ignore(run: BuilderRun, why: str) -> None:
    """Note (and log once) a word from the broker that no builder signed, and read the
    state afresh next time: an AsyncResult keeps a ready state (FAILURE) it has read for
    good, which would hide the builder's signed result stored over it."""
    result = run.async_result
    if isinstance(result, AsyncResult):
        run.async_result = AsyncResult(result.id, backend=result.backend, app=result.app)
    if run.ignored != why:
        logger.warning(
            "build %s builder %s: ignored (not signed by the builder): %s",
            run.task.build_id,
            run.builder.builder_id[:12],
            why,
        )
    run.ignored = why
    run.error = f"no signed result yet; ignored: {why}"


def _settle(run: BuilderRun) -> None:
    try:
        state = run.async_result.state
    except (redis.RedisError, OSError):
        return  # the broker is away for a moment (restart); ask again on the next wake-up
    if state == "SUCCESS":
        try:
            payload: Any = run.async_result.result
        except (redis.RedisError, OSError):
            return
        try:
            result = check_result(payload, run.builder, run.task)
        except FarmError as exc:
            _ignore(run, f"SUCCESS state without this builder's signed result: {exc}")
            return
        run.log_tail = str(payload.get("log_tail", ""))
        run.result = result
        run.state = "DONE" if result.predicate.status == "succeeded" else "FAILED"
        run.error = result.predicate.error
        run.ended = time.monotonic()
    elif state == "FAILURE":
        # Anyone with the broker's URL can write this state: it ends nothing (ADR 41).
        try:
            what = repr(run.async_result.result)[:200]
        except (redis.RedisError, OSError, ValueError, TypeError):
            what = "?"
        _ignore(run, f"FAILURE state {what}")
    elif state == "STARTED":
        run.state = "BUILDING"
    elif state == "RETRY":
        run.state = "RETRYING"


#: Longest wait without a word from Redis before every open run is read again. It only
#: bounds a missed notice (none is expected: see :class:`_ResultNotices`), so it is long.
RECHECK_S = 5.0
#: Pause between attempts to subscribe again while the broker is away.
RESUBSCRIBE_S = 0.2


class _NoticePubSub(redis.client.PubSub):
    """A pub/sub that counts its reconnections: a notice published while it was away is
    lost, so the caller must read every state again after one."""

    reconnects = 0

    def on_connect(self, connection: Any) -> None:
        self.reconnects += 1
        super().on_connect(connection)


class _ResultNotices:
    """Wakes :func:`collect` when a run's task state is stored.

    Celery's Redis result backend publishes every state it stores (STARTED, RETRY,
    SUCCESS, FAILURE) on the channel named by the state's key; this subscribes to the
    runs' channels. After subscribing (again) the caller reads every state once, so a
    state stored before the subscription, or while the broker restarted, is not missed.
    """

    def __init__(self, runs: Sequence[BuilderRun]) -> None:
        from celery.backends.redis import RedisBackend  # here: it costs every `farm` ~20 ms

        self._by_channel: dict[bytes, BuilderRun] = {}
        self._pool: redis.ConnectionPool | None = None
        for run in runs:
            backend = run.async_result.backend
            if not isinstance(backend, RedisBackend):
                raise ConfigError(f"results must come through Redis, not {type(backend).__name__}")
            channel: str | bytes = backend.get_key_for_task(run.async_result.id)
            self._by_channel[channel.encode() if isinstance(channel, str) else channel] = run
            self._pool = backend.client.connection_pool
        self._pubsub: _NoticePubSub | None = None
        self._reconnects = 0

    def subscribe(self) -> bool:
        """Subscribe unless subscribed; True when the caller must read every state."""
        if self._pubsub is not None or self._pool is None:
            return False
        pubsub = _NoticePubSub(self._pool, ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*self._by_channel)
        except (redis.RedisError, OSError):
            pubsub.close()
            return True  # read what can be read; the next wait tries again
        self._pubsub, self._reconnects = pubsub, 0
        return True

    def wait(self, timeout: float) -> list[BuilderRun] | None:
        """Wait up to ``timeout`` s for notices: the runs they name, or None when every
        state must be read again (no notice in time, or the subscription was lost)."""
        pubsub = self._pubsub
        if pubsub is None:
            time.sleep(min(timeout, RESUBSCRIBE_S))
            return None
        deadline = time.monotonic() + timeout
        woken: list[BuilderRun] = []
        try:
            message = pubsub.get_message(timeout=timeout)
            # A subscription's own confirmation reads as None: wait on for a notice.
            while message is None and pubsub.reconnects == self._reconnects:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                message = pubsub.get_message(timeout=left)
            while message is not None:
                run = self._by_channel.get(message["channel"])
                if run is not None and run not in woken:
                    woken.append(run)
                message = pubsub.get_message(timeout=0)
        except (redis.RedisError, OSError):
            self.close()  # the broker went away: subscribe again, then read everything
            return None
        if pubsub.reconnects != self._reconnects:
            self._reconnects = pubsub.reconnects
            return None
        return woken

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None


def collect(
    runs: Sequence[BuilderRun],
    timeout: float,
    on_update: Callable[[Sequence[BuilderRun]], None] = lambda _r: None,
) -> None:
    """Wait until every run has ended or ``timeout`` seconds pass; missing runs stay open.

    Woken by the result backend's notice of each stored task state (no polling);
    ``on_update`` is called once at the start and after every change. A broker restart
    is survived: the states are read again once the subscription is back.
    """
    deadline = time.monotonic() + timeout
    notices = _ResultNotices(runs)
    try:
        woken: Sequence[BuilderRun] | None = runs
        while True:
            if notices.subscribe():
                woken = None
            for run in runs if woken is None else woken:
                if not run.done:
                    _settle(run)
            on_update(runs)
            left = deadline - time.monotonic()
            if all(r.done for r in runs) or left <= 0:
                return
            woken = notices.wait(min(left, RECHECK_S))
    finally:
        notices.close()
