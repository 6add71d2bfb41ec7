"""``farm recipe new``'s pipeline: find, download, read, guess, rebuild, compare.

index (the release's sdist and pure wheel) → verified downloads → facts (Generator,
zip times, sdist mtimes, [build-system]) → backend and candidates → build dependencies
as of upload time → a hermetic rebuild per candidate, best guess first, until one gives
upstream's wheel bit for bit → the recipe with its ``reproducibility`` text.

The world comes in through :mod:`farm.infer.ports`; this module only wires the pure
stages and keeps each attempt's work directory until it is compared.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from farm.infer.artifacts import read_sdist, read_wheel
from farm.infer.compare import WheelDiff, diff_wheels
from farm.infer.errors import InferError
from farm.infer.index import IndexFile
from farm.infer.ports import Downloader, IndexSource, Rebuilder
from farm.infer.resolve import Pin, resolve
from farm.infer.strategies import Candidate, backend_of, candidates
from farm.infer.timing import infer_timing
from farm.infer.writer import make_recipe, reproducibility_text
from farm.recipe import Recipe

__all__ = ["Attempt", "Inference", "infer", "pick_files"]


@dataclass(frozen=True)
class Attempt:
    """One candidate rebuilt."""

    candidate: Candidate
    ok: bool
    matched: bool
    sha256: str | None
    diff: WheelDiff | None
    failure: str | None
    seconds: float
    output: str | None = None
    """File name of the rebuilt wheel, when the build succeeded."""


@dataclass(frozen=True)
class Inference:
    """The outcome: the recipe (matching, or the closest), and every attempt."""

    recipe: Recipe
    matched: bool
    attempts: tuple[Attempt, ...]
    cause: str | None
    """None when matched; else a short tag (``differs:times``, ``build-failed``, …)."""
    wheel: IndexFile
    seconds: float


def pick_files(files: tuple[IndexFile, ...], label: str) -> tuple[IndexFile, IndexFile]:
    """The release's sdist and its pure-Python wheel; InferError naming what is missing."""
    live = [f for f in files if not f.yanked] or list(files)
    if not live:
        raise InferError(f"{label}: no such release on the index", "not-found")
    sdists = [f for f in live if f.kind == "sdist"]
    wheels = [f for f in live if f.kind == "wheel"]
    if not sdists:
        raise InferError(f"{label}: the release has no sdist to rebuild from", "no-sdist")
    if not wheels:
        raise InferError(f"{label}: upstream published no wheel to match", "no-wheel")
    pure = sorted((f for f in wheels if f.pure), key=lambda f: ("py3-none-any" not in f.tags,))
    if not pure:
        raise InferError(
            f"{label}: upstream's wheels are platform-specific ({wheels[0].filename}, …); "
            "only pure-Python (none-any) wheels can be matched in the builder image",
            "not-pure",
        )
    sdist = sorted(sdists, key=lambda f: not f.filename.endswith(".tar.gz"))[0]
    return sdist, pure[0]


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda _m: None)


def infer(
    name: str,
    version: str,
    *,
    index: IndexSource,
    download: Downloader,
    rebuild: Rebuilder,
    image: str,
    work: Path,
    max_attempts: int = 4,
    progress: Callable[[str], None] | None = None,
) -> Inference:
    """Infer the recipe of ``name==version``; InferError when it cannot even be tried."""
    say = _say(progress)
    started = time.monotonic()
    label = f"{name}=={version}"
    say(f"reading the index for {name}")
    sdist_file, wheel_file = pick_files(index.project(name).release(version), label)
    uploads = [t for t in (sdist_file.upload_time, wheel_file.upload_time) if t is not None]
    if not uploads:
        raise InferError(f"{label}: the index gives no upload-time (PEP 700)", "index")
    cutoff = min(uploads)
    say(f"downloading {sdist_file.filename} and {wheel_file.filename}")
    sdist_path = download(sdist_file.url, sdist_file.sha256, sdist_file.filename, sdist_file.size)
    wheel_path = download(wheel_file.url, wheel_file.sha256, wheel_file.filename, wheel_file.size)
    sdist = read_sdist(sdist_path, sdist_file.filename)
    wheel = read_wheel(wheel_path, wheel_file.filename)
    backend = backend_of(wheel.generator)
    timing = infer_timing(wheel, sdist)
    tried = candidates(sdist, backend, timing)[:max_attempts]
    if not tried:
        raise InferError(f"{label}: the wheel's times suggest no way to build it", "no-candidate")
    say(f"{wheel.generator}: {len(tried)} candidate(s); upstream uploaded {cutoff:%Y-%m-%d}")
    resolved: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], tuple[Pin, ...]] = {}
    attempts: list[Attempt] = []
    best: tuple[Attempt, tuple[Pin, ...]] | None = None
    work.mkdir(parents=True, exist_ok=True)
    for i, cand in enumerate(tried, 1):
        key = (cand.requires, tuple(sorted(cand.pins.items())))
        if key not in resolved:
            say("pinning build dependencies as of upload time")
            resolved[key] = resolve(cand.requires, cutoff=cutoff, index=index, pins=cand.pins)
        pins = resolved[key]
        recipe = make_recipe(
            name=name,
            version=version,
            sdist=sdist_file,
            wheel=wheel_file,
            image=image,
            candidate=cand,
            pins=pins,
            output="*.whl",
        )
        say(f"attempt {i}/{len(tried)}: {cand.label}")
        attempt = _attempt(cand, recipe, rebuild, work / f"attempt-{i}", wheel_path, wheel_file)
        attempts.append(attempt)
        if attempt.matched:
            say(f"attempt {i}: matches upstream bit for bit")
            best = (attempt, pins)
            break
        say(
            f"attempt {i}: "
            + (attempt.diff.summary() if attempt.diff else f"build failed: {attempt.failure}")
        )
        if best is None or _closer(attempt, best[0]):
            best = (attempt, pins)
    assert best is not None  # at least one candidate was tried
    chosen, pins = best
    text = reproducibility_text(
        candidate=chosen.candidate,
        pins=pins,
        upstream_sha256=wheel_file.sha256,
        cutoff=cutoff,
        matched=chosen.matched,
        attempts=len(attempts),
        diff=chosen.diff,
        failure=chosen.failure,
    )
    final = make_recipe(
        name=name,
        version=version,
        sdist=sdist_file,
        wheel=wheel_file,
        image=image,
        candidate=chosen.candidate,
        pins=pins,
        output=chosen.output or wheel_file.filename,
        reproducibility=text,
    )
    cause = None
    if not chosen.matched:
        cause = chosen.diff.cause if chosen.diff is not None else "build-failed"
    return Inference(
        final, chosen.matched, tuple(attempts), cause, wheel_file, time.monotonic() - started
    )


def _attempt(
    cand: Candidate,
    recipe: Recipe,
    rebuild: Rebuilder,
    attempt_dir: Path,
    upstream: Path,
    upstream_file: IndexFile,
) -> Attempt:
    """Rebuild one candidate in a fresh ``attempt_dir``, compare, and remove the directory."""
    shutil.rmtree(attempt_dir, ignore_errors=True)
    try:
        result = rebuild(recipe, attempt_dir)
        diff = None
        if result.ok and result.wheel is not None:
            diff = diff_wheels(upstream, result.wheel, upstream_file.filename)
        return Attempt(
            cand,
            result.ok,
            result.ok and result.sha256 == upstream_file.sha256,
            result.sha256,
            diff,
            result.failure,
            result.seconds,
            result.wheel.name if result.wheel is not None else None,
        )
    finally:
        shutil.rmtree(attempt_dir, ignore_errors=True)


def _closer(a: Attempt, b: Attempt) -> bool:
    """Is attempt ``a`` closer to upstream than ``b``? A build beats a failure."""
    if a.diff is None:
        return False
    if b.diff is None:
        return True
    return a.diff.score < b.diff.score
