"""One recipe built on this machine, unsigned, the way a builder builds it, under a variation.

``farm recipe check`` (and recipe inference) need what a builder would produce without a
farm: this module runs the same stages as :func:`builders.build.execute` — the pinned
image and architecture checked, the source and dependencies fetched and verified into
the fetch cache (:class:`builders.fetch.Fetcher`), the hermetic run
(:func:`builders.runner.run_hermetic`), the declared outputs checked and hashed
(:func:`builders.outputs.collect_outputs`) — and stops before anything is stored or
signed. The only difference is the :class:`Variation`: what the recipe leaves open
(hostname, umask, CPU count, the wall clock) is set on purpose to two different values,
so that equal outputs mean the build does not depend on them.

Invariants: a variation never overrides what the recipe pins (its ``build.env``, its
limits, a ``umask`` its command sets itself); a build that cannot run to the end is a
:class:`LocalBuild` with ``ok=False`` and the reason, never an exception (only bugs
raise); the outputs stay on disk under ``work`` for the caller to compare.
"""

from __future__ import annotations

import dataclasses
import re
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
from farm.errors import BuildError, FarmError
from farm.recipe import Recipe

__all__ = ["VARIATION_A", "VARIATION_B", "LocalBuild", "Variation", "build_locally"]

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: Labels of the containers of local builds, so a crashed run's leftovers can be found.
LOCAL_LABEL = "farm.local-build"


@dataclass(frozen=True)
class Variation:
    """What a build runs under among the things a recipe does not pin.

    Each field is applied by the hermetic runner (:class:`builders.runner.RunSpec`):

    ``hostname``
        The container's hostname (builders use the fixed ``farm-build``); what
        ``uname -n``, ``hostname`` and ``socket.gethostname()`` return. Always applied.
    ``umask``
        The umask the build command starts with (Docker's exec default is ``022``). A
        recipe whose command sets ``umask`` itself (the shipped ones do) overrides it, as
        it should. Always applied.
    ``time_offset_s``
        Seconds added to the build's wall clock. Applied only through libfaketime
        (``LD_PRELOAD``) when the pinned image carries it and the recipe's environment
        sets neither ``LD_PRELOAD`` nor ``FAKETIME``; the builder image farm ships does
        not carry it, so there the clock is **not** shifted and the two builds differ
        only in the real time they run at. ``SOURCE_DATE_EPOCH`` stays the recipe's.
    ``cpus``
        How many CPUs the build sees and may use: the container is confined to the
        first ``ceil(cpus)`` CPUs of this host (``nproc``, ``os.sched_getaffinity``)
        and its quota is ``min(cpus, the recipe's limits.cpus)``. ``None``: every CPU,
        quota as the recipe says. Applied where the host has more than one CPU.
    """

    hostname: str
    umask: int
    time_offset_s: int
    cpus: float | None

    def __post_init__(self) -> None:
        if not _HOSTNAME.match(self.hostname):
            raise ValueError(f"hostname {self.hostname!r} is not a lower-case DNS label")
        if not 0 <= self.umask <= 0o777:
            raise ValueError(f"umask {self.umask:o} is not between 000 and 777")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be positive")

    @staticmethod
    def pair() -> tuple[Variation, Variation]:
        """Two variations that differ in every field: :data:`VARIATION_A`, :data:`VARIATION_B`."""
        return VARIATION_A, VARIATION_B

    def describe(self) -> str:
        """One line for people, e.g. ``host farm-check-b, umask 077, clock +400d, 1 CPU``."""
        days, rest = divmod(self.time_offset_s, 86400)
        clock = f"{days:+d}d" if rest == 0 else f"{self.time_offset_s:+d}s"
        clock = clock if self.time_offset_s else "real"
        cpus = "all CPUs" if self.cpus is None else f"{self.cpus:g} CPU"
        return f"host {self.hostname}, umask {self.umask:03o}, clock {clock}, {cpus}"


#: The first build of a check: a builder-like environment with another hostname.
VARIATION_A = Variation(hostname="farm-check-a", umask=0o022, time_offset_s=0, cpus=None)
#: The second: another hostname, a strict umask, a clock 400 days ahead, one CPU.
VARIATION_B = Variation(hostname="farm-check-b", umask=0o077, time_offset_s=400 * 86400, cpus=1.0)


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


def _spec(recipe: Recipe, arch: str, source: Path, deps: Path | None, v: Variation) -> RunSpec:
    return dataclasses.replace(
        spec_for(recipe, arch, source, deps, {LOCAL_LABEL: "1"}),
        hostname=v.hostname,
        umask=v.umask,
        time_offset_s=v.time_offset_s,
        cpus=v.cpus,
    )


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
            run.output_dir, recipe.outputs, max_total=recipe.limits.output_size
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
    )
