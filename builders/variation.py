"""What a build runs under among the things its recipe leaves open, and how it is recorded.

Builders that agree prove only that the build is stable under the environment they
share. So each builder varies, on purpose, what a recipe does not pin — like Debian's
reprotest, but inside farm's hermetic container: the hostname and domain name, the
umask the build starts with, how many CPUs it sees, the locale when the recipe leaves
it open, and the wall clock where the image can shift it. Three builders that agree
then also say the build does not depend on those.

:func:`derive` draws a builder's :class:`Variation` for one build from the builder id
and the build id: the hostname always names the builder, so no two builders share it;
every other field is drawn from the seed, so a rerun of a build by the same builder is
the same variation, and across builds each builder goes through the choices.
:func:`apply` puts a variation on the hermetic run (:class:`builders.runner.RunSpec`);
:func:`record` says what the build actually ran under, for the signed result
(:class:`farm.result.BuildVariation`). ``farm recipe check`` uses the fixed pair
:data:`VARIATION_A` / :data:`VARIATION_B` (:mod:`builders.local_build`).

Invariants: a variation never overrides what the recipe pins — its ``build.env`` (so
``TZ``, ``SOURCE_DATE_EPOCH`` and a pinned locale stay the recipe's), its limits (a CPU
variation only ever lowers the quota), a ``umask`` its command sets itself; the runner
merges the variation's environment *under* the recipe's. What is not varied is named,
with the reason, in the record, never silently claimed. This module does no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from builders.runner import RunOutcome, RunSpec
from farm.recipe import Recipe
from farm.result import BuildVariation

__all__ = [
    "VARIATION_A",
    "VARIATION_B",
    "Variation",
    "apply",
    "derive",
    "locale_env",
    "record",
]

_T = TypeVar("_T")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}$")
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
#: Environment names that choose a locale; a recipe that sets any of them pins it.
_LOCALE_NAMES = re.compile(r"^(LANG|LANGUAGE|LC_[A-Z_]+)$")
#: A command that sets its own umask (``umask 022``) overrides the one it starts with.
_OWN_UMASK = re.compile(r"(^|[\s;&|(])umask\s+[0-7]")

# The choices builders draw from. Locales are the ones any Debian image has without
# the locales package (C.UTF-8 is also the runner's default); under C, Python still
# reads and writes UTF-8 (PEP 538/540), other tools see ASCII.
_DOMAINS = ("", "farm.invalid", "build.example")
_UMASKS = (0o022, 0o002, 0o077)
_CPUS: tuple[float | None, ...] = (None, 1.0)
_LANGS = ("C.UTF-8", "C", "POSIX")
_CLOCK_OFFSETS = (0, 400 * 86400, 3 * 365 * 86400 + 12345)

_NO_DIRECTORY_ORDER = (
    "directory order: not varied (no disorderfs in the image, and FUSE needs "
    "privileges the sandbox drops)"
)


@dataclass(frozen=True)
class Variation:
    """What a build runs under among the things a recipe does not pin.

    Each field is applied by the hermetic runner (:class:`builders.runner.RunSpec`):

    ``hostname``
        The container's hostname (``uname -n``, ``hostname``, ``socket.gethostname()``).
        Always applied.
    ``umask``
        The umask the build command starts with (Docker's exec default is ``022``). A
        recipe whose command sets ``umask`` itself (the shipped ones do) overrides it, as
        it should. Always applied.
    ``time_offset_s``
        Seconds added to the build's wall clock. Applied only through libfaketime
        (``LD_PRELOAD``) when the pinned image carries it and the recipe's environment
        sets neither ``LD_PRELOAD`` nor ``FAKETIME``; the builder image farm ships does
        not carry it, so there the clock is **not** shifted. ``SOURCE_DATE_EPOCH`` stays
        the recipe's.
    ``cpus``
        How many CPUs the build sees and may use: the container is confined to the
        first ``ceil(cpus)`` CPUs of this host (``nproc``, ``os.sched_getaffinity``)
        and its quota is ``min(cpus, the recipe's limits.cpus)``. ``None``: every CPU,
        quota as the recipe says. Applied where the host has more than one CPU.
    ``domainname``
        The container's NIS domain name (``domainname``, ``uname``'s domain); ``""``:
        none, Docker's default. Always applied.
    ``lang``
        ``LANG`` for the build, unless the recipe sets ``LANG``, ``LANGUAGE`` or any
        ``LC_*`` itself (every shipped recipe does); ``None``: the runner's default,
        ``C.UTF-8``.
    """

    hostname: str
    umask: int
    time_offset_s: int
    cpus: float | None
    domainname: str = ""
    lang: str | None = None

    def __post_init__(self) -> None:
        if not _HOSTNAME.match(self.hostname):
            raise ValueError(f"hostname {self.hostname!r} is not a lower-case DNS label")
        if not 0 <= self.umask <= 0o777:
            raise ValueError(f"umask {self.umask:o} is not between 000 and 777")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be positive")
        if self.domainname and not _DOMAIN.match(self.domainname):
            raise ValueError(f"domain name {self.domainname!r} is not a lower-case DNS name")
        if self.lang is not None and not re.fullmatch(r"[A-Za-z0-9_.@-]+", self.lang):
            raise ValueError(f"LANG {self.lang!r} is not a locale name")

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
        line = f"host {self.hostname}, umask {self.umask:03o}, clock {clock}, {cpus}"
        if self.domainname:
            line += f", domain {self.domainname}"
        if self.lang is not None:
            line += f", LANG {self.lang}"
        return line


#: The first build of a check: a builder-like environment with another hostname.
VARIATION_A = Variation(hostname="farm-check-a", umask=0o022, time_offset_s=0, cpus=None)
#: The second: another hostname and domain, a strict umask, a clock 400 days ahead, one
#: CPU, LANG=C where the recipe leaves the locale open.
VARIATION_B = Variation(
    hostname="farm-check-b",
    umask=0o077,
    time_offset_s=400 * 86400,
    cpus=1.0,
    domainname="farm.invalid",
    lang="C",
)


def derive(builder_id: str, build_id: str) -> Variation:
    """The variation builder ``builder_id`` runs build ``build_id`` under; pure.

    The hostname is ``b-`` and the builder id's first 12 characters, so builders never
    share one; the other fields are drawn from sha256 of both ids, so the same builder
    rebuilding the same build gets the same variation, and two builders of one build
    differ in each of them with probability 1/2 to 2/3 per field.
    """
    if not re.fullmatch(r"[0-9a-f]{12,}", builder_id):
        raise ValueError(f"builder id {builder_id!r} is not lower-case hex")
    seed = hashlib.sha256(f"farm-variation/v1\0{builder_id}\0{build_id}".encode()).digest()
    return Variation(
        hostname=f"b-{builder_id[:12]}",
        umask=_pick(_UMASKS, seed[0]),
        time_offset_s=_pick(_CLOCK_OFFSETS, seed[1]),
        cpus=_pick(_CPUS, seed[2]),
        domainname=_pick(_DOMAINS, seed[3]),
        lang=_pick(_LANGS, seed[4]),
    )


def _pick(choices: Sequence[_T], byte: int) -> _T:
    return choices[byte % len(choices)]


def _pinned_locale(recipe_env: Mapping[str, str]) -> list[str]:
    return sorted(name for name in recipe_env if _LOCALE_NAMES.match(name))


def locale_env(variation: Variation, recipe_env: Mapping[str, str]) -> dict[str, str]:
    """The environment ``variation`` adds to a build of a recipe with ``recipe_env``:
    ``LANG`` when the variation sets one and the recipe pins no locale; else nothing."""
    if variation.lang is None or _pinned_locale(recipe_env):
        return {}
    return {"LANG": variation.lang}


def apply(spec: RunSpec, variation: Variation) -> RunSpec:
    """``spec`` (a recipe's run under the builders' defaults) under ``variation``.

    The recipe's environment and limits in ``spec`` are kept; the runner puts the
    variation's environment under the recipe's, so a name the recipe sets wins.
    """
    return dataclasses.replace(
        spec,
        hostname=variation.hostname,
        domainname=variation.domainname,
        umask=variation.umask,
        time_offset_s=variation.time_offset_s,
        cpus=variation.cpus,
        varied_env=locale_env(variation, spec.env),
    )


def record(variation: Variation, recipe: Recipe, run: RunOutcome) -> BuildVariation:
    """What ``run`` of ``recipe`` under ``variation`` actually ran under, for its result.

    Names every dimension that was not varied and why: pinned by the recipe (locale,
    timezone, a umask the command sets), not possible on this host (one CPU) or in this
    image (no libfaketime, no disorderfs).
    """
    env = recipe.build.env
    unvaried: list[str] = []
    pinned = _pinned_locale(env)
    lang = locale_env(variation, env).get("LANG")
    if pinned:
        unvaried.append(f"locale: pinned by the recipe ({', '.join(pinned)})")
    if "TZ" in env:
        unvaried.append("timezone: pinned by the recipe (TZ)")
    if _OWN_UMASK.search(recipe.build.command):
        unvaried.append("umask: the recipe's command sets its own, which wins")
    if variation.cpus is not None and run.host_cpus <= 1:
        unvaried.append("cpu count: this host has one CPU")
    if variation.time_offset_s and not run.clock_offset_s:
        why = (
            "the recipe sets LD_PRELOAD or FAKETIME"
            if {"LD_PRELOAD", "FAKETIME"} & set(env)
            else "the image has no libfaketime"
        )
        unvaried.append(f"wall clock: not shifted ({why})")
    unvaried.append(_NO_DIRECTORY_ORDER)
    return BuildVariation(
        hostname=variation.hostname,
        domainname=variation.domainname,
        umask=f"{variation.umask:04o}",
        cpus=max(1, run.cpus),
        lang=lang,
        clock_offset_s=run.clock_offset_s,
        unvaried=tuple(unvaried),
    )
