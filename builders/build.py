"""One build on this host, start to signed result: the stages wired in order.

fetch (outside the container, verified, cached) → hermetic run → collect and hash
outputs → put outputs and log in the content store → sign the result.

A build that cannot run to the end still yields a *signed failed* result saying why,
so the caller can tell a failed build from a lost one. Only bugs raise.
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
from builders.fetch import Fetcher
from builders.image import require_image
from builders.outputs import collect_outputs
from builders.runner import RunSpec, run_hermetic
from builders.store import ContentStore
from farm.canonical import sha256_bytes
from farm.errors import BuildError, FarmError
from farm.keys import KeyPair
from farm.recipe import Recipe
from farm.result import BuildPredicate, OutputDigest, sign_result
from farm.task import BuildTask

__all__ = ["BuildContext", "BuildOutcome", "execute"]

logger = logging.getLogger(__name__)

#: Seconds a build may need beyond its recipe timeout (fetch, start, collect).
_MARGIN = 120


@dataclass(frozen=True)
class BuildContext:
    """Everything a build needs from this host."""

    key: KeyPair
    docker: docker.DockerClient
    fetcher: Fetcher
    store: ContentStore
    work_root: Path
    visibility_timeout: int
    keep_work: bool = False
    progress: Callable[[str], None] = field(default=lambda _m: None)


@dataclass(frozen=True)
class BuildOutcome:
    """The signed envelope and the (bounded) build log."""

    envelope: dict[str, Any]
    log: bytes

    def to_json(self, tail: int = 8192) -> dict[str, Any]:
        """What the task returns over the queue: the envelope and the log's tail."""
        return {"envelope": self.envelope, "log_tail": self.log[-tail:].decode("utf-8", "replace")}


def labels_for(task: BuildTask) -> dict[str, str]:
    """Container labels that identify one attempt's (build, builder)."""
    return {"farm.build-id": task.build_id, "farm.builder-id": task.builder_id}


def execute(task: BuildTask, recipe: Recipe, ctx: BuildContext) -> BuildOutcome:
    """Run ``task`` and return the signed result; failures become signed failed results."""
    started = datetime.now(UTC)
    work = ctx.work_root / f"{task.build_id}-{task.builder_id[:12]}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log = b""
    log_truncated = False
    exit_code: int | None = None
    timed_out = False
    outputs: tuple[OutputDigest, ...] = ()
    error: str | None = None
    finished = started
    try:
        if recipe.limits.timeout + _MARGIN > ctx.visibility_timeout:
            raise BuildError(
                f"recipe timeout {recipe.limits.timeout}s (+{_MARGIN}s margin) exceeds this "
                f"builder's visibility timeout {ctx.visibility_timeout}s; a lost worker's task "
                "could be delivered twice"
            )
        require_arch(task.arch)
        require_image(ctx.docker, recipe.image)
        ctx.progress(f"fetching source of {recipe.label}")
        source_dir = ctx.fetcher.source(recipe.source, work / "fetch")
        deps_dir = None
        if recipe.build.dependencies:
            ctx.progress(f"fetching {len(recipe.build.dependencies)} build dependencies")
            deps_dir = ctx.fetcher.dependencies(recipe.build.dependencies, work / "deps")
        ctx.progress(f"building {recipe.label} for {task.arch} in {recipe.image[:19]}…")
        spec = RunSpec(
            image=recipe.image,
            script=recipe.build.command,
            workdir=recipe.build.workdir,
            env=recipe.build.env,
            source_dir=source_dir,
            deps_dir=deps_dir,
            limits=recipe.limits,
            arch=task.arch,
            labels=labels_for(task),
        )
        run = run_hermetic(ctx.docker, spec, work / "run")
        started, finished = run.started_at, run.finished_at
        log, log_truncated = run.log, run.log_truncated
        exit_code, timed_out = run.exit_code, run.timed_out
        if run.timed_out:
            error = f"build timed out after {recipe.limits.timeout}s"
        elif run.output_exceeded:
            error = f"outputs exceeded the size limit of {recipe.limits.output_size} bytes"
        elif run.oom_killed:
            error = f"build ran out of memory (limit {recipe.limits.memory} bytes)"
        elif run.exit_code != 0:
            error = f"build command exited with status {run.exit_code}"
        else:
            collected = collect_outputs(
                run.output_dir, recipe.outputs, max_total=recipe.limits.output_size
            )
            for out in collected:
                ctx.store.put(out.path)
            outputs = tuple(OutputDigest(name=o.name, sha256=o.sha256, size=o.size) for o in collected)
    except FarmError as exc:
        error = str(exc)
        finished = datetime.now(UTC)
        logger.warning("build %s failed: %s", task.build_id, error)
    finally:
        if not ctx.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    log_hex = sha256_bytes(log)
    if log:
        ctx.store.put_bytes(log)
    predicate = BuildPredicate(
        build_id=task.build_id,
        recipe_digest=task.recipe_digest,
        recipe_name=recipe.name,
        recipe_version=recipe.version,
        image_digest=recipe.image,
        arch=task.arch,
        builder_id=ctx.key.keyid,
        started_at=started,
        finished_at=finished,
        status="failed" if error else "succeeded",
        exit_code=exit_code,
        timed_out=timed_out,
        error=error,
        log_sha256=log_hex,
        log_truncated=log_truncated,
        outputs=outputs,
    )
    return BuildOutcome(envelope=sign_result(predicate, ctx.key), log=log)
