"""Build dependencies pinned as the index offered them at upstream's upload time.

Greedy and deterministic: each requirement (in the order met, breadth first) takes the
newest release uploaded by the cutoff that satisfies it, is not a pre-release (unless
pinned), has a pure-Python wheel and admits the builder image's Python; then its own
``Requires-Dist`` (markers evaluated for that Python on Linux x86-64) join the queue.
A later requirement the chosen version does not satisfy is a conflict, reported, not
backtracked. Exact pins (the backend of the ``Generator:`` line) bypass the cutoff:
upstream demonstrably had that version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import HeaderParser

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from farm.infer.errors import InferError
from farm.infer.index import IndexFile, newest_first
from farm.infer.ports import IndexSource

__all__ = ["IMAGE_PYTHON", "Pin", "admits_python", "marker_env", "requires_dist", "resolve"]

_TOP = "build-system requires"
#: The Python of the builder image (Debian bookworm's python3).
IMAGE_PYTHON = "3.11.2"


def marker_env(python: str = IMAGE_PYTHON) -> dict[str, str]:
    """PEP 508 marker variables of the builder image's Python on Linux x86-64."""
    return {
        "implementation_name": "cpython",
        "implementation_version": python,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python,
        "platform_python_implementation": "CPython",
        "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux",
        "extra": "",
    }


@dataclass(frozen=True)
class Pin:
    """One build dependency pinned to one file."""

    name: str
    version: str
    file: IndexFile
    why: str


def requires_dist(metadata: str) -> list[Requirement]:
    """The ``Requires-Dist`` requirements of a core metadata text (malformed ones skipped)."""
    headers = HeaderParser().parsestr(metadata)
    found: list[Requirement] = []
    for value in headers.get_all("Requires-Dist") or []:
        try:
            found.append(Requirement(value))
        except InvalidRequirement:
            continue
    return found


def admits_python(requires_python: str | None, python: str) -> bool:
    """Does a file's ``Requires-Python`` admit ``python`` (absent or unparsable: yes)?"""
    if requires_python is None:
        return True
    try:
        return SpecifierSet(requires_python).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores an unparsable Requires-Python too


def _pick(
    files: Sequence[IndexFile], spec: SpecifierSet, python: str, exact: bool
) -> IndexFile | None:
    for f in newest_first(files):
        if not f.pure or f.yanked:
            continue
        if f.version.is_prerelease and not exact and not spec.prereleases:
            continue
        if spec.contains(f.version, prereleases=True) and admits_python(f.requires_python, python):
            return f
    return None


def _choose(
    req: Requirement,
    parent: str,
    index: IndexSource,
    cutoff: datetime,
    exact: Version | None,
    python: str,
) -> Pin:
    """The file one requirement is pinned to (``exact``: the Generator's version)."""
    key = canonicalize_name(req.name)
    project = index.project(key)
    day = cutoff.strftime("%Y-%m-%d %H:%M UTC")
    if exact is not None:
        picked = _pick(project.files, SpecifierSet(f"=={exact}"), python, exact=True)
        why = f"=={exact}, as upstream's WHEEL Generator line says"
    else:
        picked = _pick(project.as_of(cutoff).files, req.specifier, python, exact=False)
        why = f"newest with a pure wheel on {day} satisfying {str(req)!r} ({parent})"
    if picked is None:
        raise InferError(
            f"no pure-Python wheel of {key} satisfies {str(req)!r} ({parent}) "
            f"for Python {python} as of {day}",
            "resolve",
        )
    return Pin(key, str(picked.version), picked, why)


def resolve(
    requirements: Sequence[str],
    *,
    cutoff: datetime,
    index: IndexSource,
    pins: Mapping[str, str] | None = None,
    python: str = IMAGE_PYTHON,
) -> tuple[Pin, ...]:
    """Pin ``requirements`` and their dependencies as of ``cutoff``; InferError("resolve")
    naming the requirement when nothing fits."""
    env = marker_env(python)
    exact = {canonicalize_name(k): Version(v) for k, v in (pins or {}).items()}
    queue: list[tuple[Requirement, str]] = []
    for text in requirements:
        try:
            queue.append((Requirement(text), _TOP))
        except InvalidRequirement as exc:
            raise InferError(f"build requirement {text!r} is malformed: {exc}", "resolve") from None
    for name in exact:
        if all(canonicalize_name(r.name) != name for r, _ in queue):
            queue.append((Requirement(name), "the backend named by WHEEL's Generator line"))
    chosen: dict[str, Pin] = {}
    extras_done: dict[str, set[str]] = {}
    while queue:
        req, parent = queue.pop(0)
        if req.marker is not None and not req.marker.evaluate(env) and parent == _TOP:
            continue
        key = canonicalize_name(req.name)
        pin = chosen.get(key)
        if pin is None:
            pin = _choose(req, parent, index, cutoff, exact.get(key), python)
            chosen[key] = pin
            extras_done[key] = set()
            new_extras = set(req.extras) | {""}
        else:
            if not req.specifier.contains(Version(pin.version), prereleases=True):
                raise InferError(
                    f"{key}=={pin.version} was chosen, but {parent} requires {str(req)!r} "
                    "(no backtracking)",
                    "resolve",
                )
            new_extras = set(req.extras) - extras_done[key]
            if not new_extras:
                continue
        extras_done[key] |= new_extras
        for dep in requires_dist(index.metadata(pin.file)):
            wanted = (
                "" in new_extras
                if dep.marker is None
                else any(dep.marker.evaluate({**env, "extra": e}) for e in new_extras)
            )
            if wanted:
                queue.append((dep, f"{key}=={pin.version}"))
    return tuple(chosen.values())
