"""One build on this host, start to signed result: the stages wired in order.

fetch (outside the container, verified, cached) → hermetic run → collect and hash
outputs → put outputs and log in the content store → sign the result.

A build that cannot run to the end still yields a *signed failed* result saying why,
so the caller can tell a failed build from a lost one. Only bugs raise. The failure says
for machines whose it is (``failure_kind``): ``infrastructure`` when this host's Docker
Engine failed (:class:`~builders.errors.EngineError`) or does not answer once the build
has failed, which the coordinator sends again instead of counting (ADR 37); ``build``
for everything else.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from builders.arch import require_arch
from builders.errors import EngineError
from builders.fetch import Fetcher
from builders.image import require_image
from builders.outputs import collect_outputs
from builders.runner import RunOutcome, RunSpec, engine_answers, remove_stale, run_hermetic
from builders.store import ContentStore
from builders.variation import apply, derive, record
from farm.canonical import sha256_bytes
from farm.errors import BuildError, FarmError
from farm.keys import KeyPair
from farm.recipe import Recipe
from farm.result import BuildPredicate, BuildVariation, FailureKind, OutputDigest, sign_result
from farm.task import BuildTask

__all__ = ["BuildContext", "BuildOutcome", "execute", "failure_kind_of", "failure_of", "spec_for"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildContext:
    """Everything a build needs from this host."""

    key: KeyPair
    docker: docker.DockerClient
    fetcher: Fetcher
    store: ContentStore
    work_root: Path
    visibility_timeout: int
    build_margin: int = 120
    keep_work: bool = False
    progress: Callable[[str], None] = field(default=lambda _m: None)
    vary: bool = True
    """Run each build under this builder's variation (builders.variation, ADR 38)."""


@dataclass(frozen=True)
class BuildOutcome:
    """The signed envelope and the (bounded) build log."""

    envelope: dict[str, Any]
    log: bytes
    infrastructure_failure: bool = False
    """Whether this host's machinery failed the build (``failure_kind`` infrastructure)."""

    def to_json(self, tail: int = 8192) -> dict[str, Any]:
        """What the task returns over the queue: the envelope and the log's tail."""
        return {"envelope": self.envelope, "log_tail": self.log[-tail:].decode("utf-8", "replace")}


def labels_for(task: BuildTask) -> dict[str, str]:
    """Container labels that identify one attempt's (build, builder)."""
    return {"farm.build-id": task.build_id, "farm.builder-id": task.builder_id}


@dataclass
class _Progress:
    """What is known of a build so far; becomes the signed predicate."""

    started: datetime
    finished: datetime
    log: bytes = b""
    log_truncated: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    outputs: tuple[OutputDigest, ...] = ()
    error: str | None = None
    variation: BuildVariation | None = None
    failure_kind: FailureKind = "build"


def failure_kind_of(exc: FarmError | None, client: docker.DockerClient) -> FailureKind:
    """Whose failure a build's is: ``infrastructure`` if this host's engine failed under
    it (``exc`` is an :class:`EngineError`) or does not answer now, else ``build``.

    Asked only once a build has failed: a build command killed because the engine was
    stopping (exit 143) is the host's failure too, which only the ping tells."""
    if isinstance(exc, EngineError) or not engine_answers(client):
        return "infrastructure"
    return "build"


def _preflight(task: BuildTask, recipe: Recipe, ctx: BuildContext) -> None:
    if recipe.limits.timeout + ctx.build_margin > ctx.visibility_timeout:
        raise BuildError(
            f"recipe timeout {recipe.limits.timeout}s (+{ctx.build_margin}s margin) exceeds "
            f"this builder's visibility timeout {ctx.visibility_timeout}s; a lost worker's "
            "task could be delivered twice"
        )
    require_arch(task.arch)
    require_image(ctx.docker, recipe.image_for(task.arch))


def failure_of(run: RunOutcome, recipe: Recipe) -> str | None:
    """Why ``run`` of ``recipe`` produced no outputs to collect, or None if it did."""
    if run.timed_out:
        return f"build timed out after {recipe.limits.timeout}s"
    if run.output_exceeded:
        return f"outputs exceeded the size limit of {recipe.limits.output_size} bytes"
    if run.oom_killed:
        return f"build ran out of memory (limit {recipe.limits.memory} bytes)"
    if run.exit_code != 0:
        return f"build command exited with status {run.exit_code}"
    return None


def spec_for(
    recipe: Recipe, arch: str, source_dir: Path, deps_dir: Path | None, labels: dict[str, str]
) -> RunSpec:
    """The hermetic run of ``recipe`` for ``arch`` over fetched sources and dependencies,
    without variation (:func:`builders.variation.apply` adds one)."""
    return RunSpec(
        image=recipe.image_for(arch),
        script=recipe.build.command,
        workdir=recipe.build.workdir,
        env=recipe.build.env,
        source_dir=source_dir,
        deps_dir=deps_dir,
        limits=recipe.limits,
        arch=arch,
        labels=labels,
    )


def _run(task: BuildTask, recipe: Recipe, ctx: BuildContext, work: Path, state: _Progress) -> None:
    _preflight(task, recipe, ctx)
    # A container an interrupted attempt of this (build, builder) left behind.
    removed = remove_stale(ctx.docker, labels_for(task))
    if removed:
        ctx.progress(f"removed {removed} container(s) left by an interrupted attempt")
    ctx.progress(f"fetching source of {recipe.label}")
    source_dir = ctx.fetcher.source(recipe.source, work / "fetch")
    deps_dir = None
    if recipe.build.dependencies:
        ctx.progress(f"fetching {len(recipe.build.dependencies)} build dependencies")
        deps_dir = ctx.fetcher.dependencies(recipe.build.dependencies, work / "deps")
    ctx.progress(f"building {recipe.label} for {task.arch} in {recipe.image_for(task.arch)[:19]}…")
    spec = spec_for(recipe, task.arch, source_dir, deps_dir, labels_for(task))
    variation = derive(ctx.key.keyid, task.build_id) if ctx.vary else None
    if variation is not None:
        spec = apply(spec, variation)
    run = run_hermetic(ctx.docker, spec, work / "run")
    if variation is not None:
        state.variation = record(variation, recipe, run)
    state.started, state.finished = run.started_at, run.finished_at
    state.log, state.log_truncated = run.log, run.log_truncated
    state.exit_code, state.timed_out = run.exit_code, run.timed_out
    state.error = failure_of(run, recipe)
    if state.error is not None:
        state.failure_kind = failure_kind_of(None, ctx.docker)
    else:
        collected = collect_outputs(
            run.output_dir, recipe.outputs_for(task.arch), max_total=recipe.limits.output_size
        )
        for out in collected:
            ctx.store.put(out.path, out.sha256)
        state.outputs = tuple(
            OutputDigest(name=o.name, sha256=o.sha256, size=o.size) for o in collected
        )


def execute(task: BuildTask, recipe: Recipe, ctx: BuildContext) -> BuildOutcome:
    """Run ``task`` and return the signed result; failures become signed failed results."""
    now = datetime.now(UTC)
    state = _Progress(started=now, finished=now)
    work = ctx.work_root / f"{task.build_id}-{task.builder_id[:12]}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        _run(task, recipe, ctx, work, state)
    except FarmError as exc:
        state.error = str(exc)
        state.failure_kind = failure_kind_of(exc, ctx.docker)
        state.finished = datetime.now(UTC)
        state.outputs = ()
        logger.warning("build %s failed (%s): %s", task.build_id, state.failure_kind, state.error)
    finally:
        if not ctx.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    if state.log:
        ctx.store.put_bytes(state.log)
    predicate = BuildPredicate(
        build_id=task.build_id,
        recipe_digest=task.recipe_digest,
        recipe_name=recipe.name,
        recipe_version=recipe.version,
        image_digest=recipe.image_for(task.arch),
        arch=task.arch,
        builder_id=ctx.key.keyid,
        started_at=state.started,
        finished_at=state.finished,
        status="failed" if state.error else "succeeded",
        exit_code=state.exit_code,
        timed_out=state.timed_out,
        error=state.error,
        failure_kind=state.failure_kind if state.error else None,
        log_sha256=sha256_bytes(state.log),
        log_truncated=state.log_truncated,
        outputs=state.outputs,
        variation=state.variation,
    )
    return BuildOutcome(
        envelope=sign_result(predicate, ctx.key),
        log=state.log,
        infrastructure_failure=predicate.infrastructure_failure,
    )
