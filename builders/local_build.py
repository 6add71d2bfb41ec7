"""One recipe built on this machine, unsigned, the way a builder builds it, under a variation.

``farm recipe check`` (and recipe inference) need what a builder would produce without a
farm: this module runs the same stages as :func:`builders.build.execute` — the pinned
image and architecture checked, the source and dependencies fetched and verified into
the fetch cache (:class:`builders.fetch.Fetcher`), the hermetic run
(:func:`builders.runner.run_hermetic`), the declared outputs checked and hashed
(:func:`builders.outputs.collect_outputs`) — and stops before anything is stored or
signed. The variation (:class:`builders.variation.Variation`) is the caller's:
``farm recipe check`` sets what the recipe leaves open (hostname, domain name, umask,
CPU count, locale, the wall clock) to two different values, so that equal outputs
mean the build does not depend on them.

Invariants: a variation never overrides what the recipe pins (its ``build.env``, its
limits, a ``umask`` its command sets itself); a build that cannot run to the end is a
:class:`LocalBuild` with ``ok=False`` and the reason, never an exception (only bugs
raise); the outputs stay on disk under ``work`` for the caller to compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from builders.arch import buildable_arches, native_arch
from builders.build import failure_of, spec_for
from builders.fetch import Fetcher
from builders.image import require_image
from builders.outputs import collect_outputs
from builders.runner import RunSpec, run_hermetic
from builders.settings import BuilderSettings
from builders.variation import VARIATION_A, Variation, apply
from farm.errors import BuildError, FarmError
from farm.recipe import Recipe

__all__ = ["LocalBuild", "build_locally"]

#: Labels of the containers of local builds, so a crashed run's leftovers can be found.
LOCAL_LABEL = "farm.local-build"


@dataclass(frozen=True)
class LocalBuild:
    """What one local build produced."""

    ok: bool
    failure: str | None
    """Why the build did not produce its outputs (``None`` when ``ok``)."""
    outputs: dict[str, Path]
    """Declared output file name (relative to ``/out``) -> its copy on this host."""
    digests: dict[str, str]
    """Declared output file name -> ``"sha256:<hex>"``."""
    log: bytes
    """The build's stdout and stderr, bounded by the recipe's ``log_size``."""
    seconds: float
    """Wall-clock seconds of the whole build, fetch included."""
    arch: str | None = None
    """The architecture it was built for (``None`` when none could be chosen)."""


def _spec(recipe: Recipe, arch: str, source: Path, deps: Path | None, v: Variation) -> RunSpec:
    return apply(spec_for(recipe, arch, source, deps, {LOCAL_LABEL: "1"}), v)


def _arch_for(recipe: Recipe) -> str:
    """This host's architecture if the recipe lists it, else the first it can emulate."""
    native = native_arch()
    if native in recipe.architectures:
        return native
    can = buildable_arches()
    for arch in recipe.architectures:
        if arch in can:
            return arch
    raise BuildError(
        f"{recipe.label} is built for {', '.join(recipe.architectures)}; "
        f"this host can build {', '.join(can)}"
    )


def build_locally(
    recipe: Recipe,
    work: Path,
    *,
    variation: Variation | None = None,
    fetch_cache: Path | None = None,
    client: docker.DockerClient | None = None,
    progress: Callable[[str], None] | None = None,
) -> LocalBuild:
    """Build ``recipe`` for this host's architecture in its pinned image, under ``variation``.

    ``work`` must be absent or empty; the fetched tree and the outputs stay in it (the
    caller removes it). ``fetch_cache`` defaults to the builder's (``FARM_CACHE_DIR``),
    the index to the builder's ``FARM_PYPI_URL``; ``client`` to ``docker.from_env()``;
    ``variation`` to :data:`VARIATION_A`. ``progress`` gets one line per stage.

    Never raises for a build that cannot be done (image absent, architecture not
    buildable here, fetch failure, build failure, bad outputs, Docker unreachable): the
    result has ``ok=False`` and ``failure`` says why.
    """
    say = progress or (lambda _m: None)
    variation = variation or VARIATION_A
    started = time.monotonic()
    log = b""
    own_client = client is None
    try:
        if work.exists() and any(work.iterdir()):
            raise BuildError(f"work directory {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
        arch = _arch_for(recipe)
        try:
            client = client or docker.from_env()
        except docker.errors.DockerException as exc:
            raise BuildError(f"cannot reach the Docker Engine: {exc}") from None
        require_image(client, recipe.image_for(arch))
        settings = BuilderSettings()
        cache = fetch_cache or settings.cache
        with Fetcher(cache, pypi_url=settings.pypi_url, progress=say) as fetcher:
            say(f"fetching source of {recipe.label}")
            source_dir = fetcher.source(recipe.source, work / "fetch")
            deps_dir = None
            if recipe.build.dependencies:
                say(f"fetching {len(recipe.build.dependencies)} build dependencies")
                deps_dir = fetcher.dependencies(recipe.build.dependencies, work / "deps")
        say(f"building {recipe.label} ({variation.describe()})")
        spec = _spec(recipe, arch, source_dir, deps_dir, variation)
        run = run_hermetic(client, spec, work / "run")
        log = run.log
        if variation.time_offset_s and not run.clock_offset_s:
            say("clock not shifted: the image has no libfaketime (the build ran at the real time)")
        failure = failure_of(run, recipe)
        if failure is not None:
            return LocalBuild(False, failure, {}, {}, log, time.monotonic() - started)
        collected = collect_outputs(
            run.output_dir, recipe.outputs_for(arch), max_total=recipe.limits.output_size
        )
    except FarmError as exc:
        return LocalBuild(False, str(exc), {}, {}, log, time.monotonic() - started)
    finally:
        if own_client and client is not None:
            client.close()
    return LocalBuild(
        ok=True,
        failure=None,
        outputs={o.name: o.path for o in collected},
        digests={o.name: f"sha256:{o.sha256}" for o in collected},
        log=log,
        seconds=time.monotonic() - started,
        arch=arch,
    )
