"""Candidate ways upstream may have built its wheel, per build backend, best guess first.

A candidate fixes what the recipe must pin beyond the sdist: the backend's exact
version (from WHEEL's ``Generator:`` line), the other build requirements (resolved
later, as of upload time), whether SOURCE_DATE_EPOCH is set (and to what) when the
backend runs, and TZ. What each backend does with times (README, "Matching
upstream's wheel"):

- flit_core: SDE set -> every entry at gmtime(SDE); unset -> each file at
  localtime(mtime) and ``.dist-info`` at 2016-01-01.
- hatchling: gmtime(SDE), 2020-02-02 (1580601600) when unset.
- setuptools (bdist_wheel of ``wheel`` or of setuptools >= 70.1): gmtime(SDE), else
  gmtime(mtime), and generated files at the build's moment (not reproducible).
- poetry-core, pdm-backend: SDE if set, else a fixed default of their own.

Pure: the facts in, an ordered tuple of :class:`Candidate` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from farm.infer.artifacts import SdistFacts
from farm.infer.errors import InferError
from farm.infer.timing import Timing

__all__ = ["Backend", "Candidate", "backend_of", "candidates"]


@dataclass(frozen=True)
class Backend:
    """The backend a wheel's ``Generator:`` line names."""

    family: str
    """flit_core, hatchling, setuptools, poetry-core or pdm-backend."""
    pin_name: str
    """The distribution to pin exactly (``wheel`` for old setuptools builds)."""
    pin_version: str
    generator: str


_GENERATORS: tuple[tuple[str, str, str], ...] = (
    (r"^flit (\S+)$", "flit_core", "flit_core"),
    (r"^hatchling (\S+)$", "hatchling", "hatchling"),
    (r"^bdist_wheel \((\S+)\)$", "setuptools", "wheel"),
    (r"^setuptools \((\S+)\)$", "setuptools", "setuptools"),
    (r"^poetry-core (\S+)$", "poetry-core", "poetry-core"),
    (r"^pdm-backend \((\S+)\)$", "pdm-backend", "pdm-backend"),
    (r"^pdm-pep517 (\S+)$", "pdm-backend", "pdm-pep517"),
)


def backend_of(generator: str | None) -> Backend:
    """The backend of a ``Generator:`` value; InferError("unknown-backend") otherwise."""
    if not generator:
        raise InferError("the wheel's WHEEL file has no Generator line", "unknown-backend")
    for pattern, family, pin in _GENERATORS:
        m = re.match(pattern, generator.strip())
        if m:
            return Backend(family, pin, m.group(1), generator.strip())
    raise InferError(
        f"the wheel was made by {generator!r}, a backend `farm recipe new` does not know",
        "unknown-backend",
    )


@dataclass(frozen=True)
class Candidate:
    """One way to rebuild: requirements to resolve, exact pins, time settings."""

    label: str
    requires: tuple[str, ...]
    pins: dict[str, str]
    unset_sde: bool
    sde: int
    tz: str
    why: tuple[str, ...] = field(default=())


def _requires(sdist: SdistFacts, backend: Backend) -> tuple[str, ...]:
    """The sdist's build requirements, the exactly pinned one left to the pin, plus
    ``wheel`` for setuptools wheels that ``wheel``'s bdist_wheel wrote."""
    out: list[str] = []
    names: set[str] = set()
    for text in sdist.build_system.requires:
        try:
            name = canonicalize_name(Requirement(text).name)
        except InvalidRequirement:
            out.append(text)  # the resolver names it
            continue
        names.add(name)
        if name != canonicalize_name(backend.pin_name):
            out.append(text)
    if backend.family == "setuptools" and "setuptools" not in names:
        out.append("setuptools")
    return tuple(out)


def candidates(sdist: SdistFacts, backend: Backend, timing: Timing) -> tuple[Candidate, ...]:
    """Candidates for this release, most likely first (no duplicates)."""
    pins = {backend.pin_name: backend.pin_version}
    if sdist.build_system.backend_path and not sdist.build_system.requires:
        pins = {}  # the backend is in the sdist itself (flit_core builds itself)
    requires = _requires(sdist, backend)
    pinned = (
        f"{backend.pin_name}=={backend.pin_version} (WHEEL: Generator: {backend.generator})"
        if pins
        else f"the sdist's own backend (backend-path {list(sdist.build_system.backend_path)})"
    )
    newest = sdist.newest_mtime
    common = timing.common_epoch
    share = f"{timing.common_share:.0%}"
    out: list[Candidate] = []

    def unset(tz_first: bool = True) -> None:
        for tzc in timing.tz_candidates if tz_first else timing.tz_candidates[:1]:
            out.append(
                Candidate(
                    f"{backend.family}, SOURCE_DATE_EPOCH unset, TZ={tzc.tz}",
                    requires,
                    pins,
                    unset_sde=True,
                    sde=newest,
                    tz=tzc.tz,
                    why=(
                        pinned,
                        "SOURCE_DATE_EPOCH unset while the backend runs: the zip times "
                        "follow the files' mtimes (kept from the sdist)",
                        f"TZ={tzc.tz}: {tzc.why}",
                    ),
                )
            )

    def fixed(epoch: int | None, reason: str) -> None:
        if epoch is None:
            return
        out.append(
            Candidate(
                f"{backend.family}, SOURCE_DATE_EPOCH={epoch}",
                requires,
                pins,
                unset_sde=False,
                sde=epoch,
                tz="UTC",
                why=(pinned, f"SOURCE_DATE_EPOCH={epoch}: {reason}"),
            )
        )

    stamp = f"{share} of the wheel's entries carry that time (read as UTC)"
    if backend.family == "flit_core":
        if timing.dist_info_fixed_2016:
            unset()
            fixed(common, stamp)
        else:
            fixed(common, stamp)
            unset(tz_first=False)
    elif backend.family == "hatchling":
        if common == 1580601600:
            fixed(common, "hatchling's own default time (2020-02-02), so upstream ran without it")
        else:
            fixed(common, stamp)
    elif backend.family == "setuptools":
        fixed(common, stamp)
        unset(tz_first=False)
        out[-1:] = [
            replace(
                c,
                why=(
                    *c.why,
                    "setuptools stamps the .dist-info files it generates with the moment of "
                    "the build when SOURCE_DATE_EPOCH is unset: matching needs upstream's clock",
                ),
            )
            for c in out[-1:]
        ]
    else:  # poetry-core, pdm-backend: SDE if set, else a default time of their own
        unset(tz_first=False)
        fixed(common, stamp)
    seen: set[tuple[bool, int, str]] = set()
    unique: list[Candidate] = []
    for c in out:
        key = (c.unset_sde, c.sde if not c.unset_sde else 0, c.tz)
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return tuple(unique)
