"""The dependency closure of pinned releases, for the builder image's Python and platform.

What ``farm recipe new -r requirements.txt`` infers recipes for: the pinned releases and
every release ``pip install`` would add for them in the builder image (CPython
:data:`~farm.infer.resolve.IMAGE_PYTHON` on Linux x86-64, markers evaluated by
:func:`~farm.infer.resolve.marker_env`), each dependency's ``Requires-Dist`` read from
its chosen wheel's core metadata (PEP 658, verified by digest, through
:class:`~farm.infer.ports.IndexSource`).

Invariants:

- A pinned release is taken as pinned; an unpinned dependency takes the newest release
  (not yanked, not a pre-release unless a specifier asks for one, every file's
  ``Requires-Python`` admitting the image's Python) that satisfies *every* specifier
  met for it and offers an sdist and a pure-Python (``none-any``) wheel: the farm can
  only rebuild from an sdist and match a wheel the builder image can make.
- A project pip would install but the farm cannot rebuild is a :class:`Package` with
  ``status`` ``skipped`` and a named ``cause`` (``not-pure``: only platform wheels;
  ``no-sdist``; ``no-wheel``); its own dependencies are not followed. One that no
  release satisfies is ``failed`` (``resolve``, ``not-found``, ``conflict``). Nothing
  here raises for one bad package: the walk goes on and says what it met.
- A specifier met after its project was chosen, that the choice does not satisfy, starts
  the walk again with that specifier remembered for the project (bounded, deterministic;
  a remembered specifier may come from a parent no longer in the closure, which can only
  make a choice older, never wrong). A pinned release such a specifier excludes is a
  ``conflict``, never silently replaced.

Pure apart from the index port: the same answers give the same closure, in walk order
(breadth first from the pins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from farm.infer.errors import InferError
from farm.infer.index import IndexFile, ProjectIndex
from farm.infer.ports import IndexSource
from farm.infer.resolve import IMAGE_PYTHON, admits_python, marker_env, requires_dist
from farm.requirements import Pinned

__all__ = [
    "Choice",
    "Closure",
    "Package",
    "Status",
    "choose_release",
    "marker_applies",
    "resolve_closure",
]

Status = Literal["chosen", "skipped", "failed"]
_MAX_ROUNDS = 64


def marker_applies(marker: Marker | None, python: str = IMAGE_PYTHON, extra: str = "") -> bool:
    """Does ``marker`` hold in the builder image (with ``extra`` requested, if any)?"""
    return marker is None or marker.evaluate({**marker_env(python), "extra": extra})


@dataclass(frozen=True)
class Choice:
    """A release chosen for a project, or why none could be."""

    version: str | None
    sdist: IndexFile | None
    wheel: IndexFile | None
    status: Status
    cause: str | None = None
    why: str = ""


def _release_files(project: ProjectIndex) -> dict[Version, list[IndexFile]]:
    by_version: dict[Version, list[IndexFile]] = {}
    for f in project.files:
        by_version.setdefault(f.version, []).append(f)
    return by_version


def _buildable(files: Sequence[IndexFile]) -> tuple[IndexFile | None, IndexFile | None]:
    """(sdist, pure wheel) of one release's files, each None when missing."""
    sdists = sorted(
        (f for f in files if f.kind == "sdist"), key=lambda f: not f.filename.endswith(".tar.gz")
    )
    pure = sorted(
        (f for f in files if f.pure), key=lambda f: not any(t.startswith("py3-") for t in f.tags)
    )
    return (sdists[0] if sdists else None), (pure[0] if pure else None)


def _unbuildable(name: str, version: Version, files: Sequence[IndexFile]) -> Choice:
    """The named cause why the release pip would take cannot be rebuilt here."""
    sdist, wheel = _buildable(files)
    wheels = [f.filename for f in files if f.kind == "wheel"]
    label = f"{name}=={version}"
    if wheels and wheel is None:
        return Choice(
            str(version), sdist, None, "skipped", "not-pure",
            f"not pure Python, skipped: {label} has only platform wheels ({wheels[0]}, …)",
        )  # fmt: skip
    if sdist is None:
        return Choice(
            str(version), None, wheel, "skipped", "no-sdist",
            f"{label} has no sdist to rebuild from, skipped",
        )  # fmt: skip
    return Choice(
        str(version), sdist, None, "skipped", "no-wheel",
        f"{label} has no wheel on the index to match, skipped",
    )  # fmt: skip


def _choose_pinned(
    project: ProjectIndex, specifiers: Sequence[tuple[SpecifierSet, str]], pinned: str
) -> Choice:
    """The pinned release itself, if it exists, nothing excludes it and it is buildable."""
    name = project.name
    try:
        wanted = Version(pinned)
    except InvalidVersion:
        return Choice(None, None, None, "failed", "bad-request", f"{pinned!r} is not PEP 440")
    files = [f for f in project.files if f.version == wanted]
    live = [f for f in files if not f.yanked] or files
    if not live:
        missing = f"{name}=={pinned} is not on the index"
        return Choice(None, None, None, "failed", "not-found", missing)
    refused = [f"{s} ({who})" for s, who in specifiers if not s.contains(wanted, prereleases=True)]
    if refused:
        return Choice(
            pinned, None, None, "failed", "conflict",
            f"{name}=={pinned} is pinned, but {' and '.join(refused)} excludes it",
        )  # fmt: skip
    sdist, wheel = _buildable(live)
    if sdist is None or wheel is None:
        return _unbuildable(name, wanted, live)
    return Choice(pinned, sdist, wheel, "chosen", None, "pinned")


def choose_release(
    project: ProjectIndex,
    specifiers: Sequence[tuple[SpecifierSet, str]],
    *,
    pinned: str | None = None,
    python: str = IMAGE_PYTHON,
) -> Choice:
    """The release of ``project`` to rebuild, given every (specifier, who asked) met.

    ``pinned`` (a version from the requirements) is taken as is if it exists and no
    specifier excludes it (else ``conflict``); otherwise the newest release satisfying
    every specifier with an sdist and a pure wheel. When there is none, the release pip
    would take is named ``skipped`` with its cause, or ``resolve`` fails.
    """
    if pinned is not None:
        return _choose_pinned(project, specifiers, pinned)
    asked = " and ".join(f"{str(s) or 'any'} ({who})" for s, who in specifiers) or "any"
    releases = _release_files(project)
    allow_pre = any(s.prereleases for s, _ in specifiers)
    fitting: list[tuple[Version, list[IndexFile]]] = []
    for version in sorted(releases, reverse=True):
        live = [f for f in releases[version] if not f.yanked]
        if not live or (version.is_prerelease and not allow_pre):
            continue
        if not all(s.contains(version, prereleases=True) for s, _ in specifiers):
            continue
        if not all(admits_python(f.requires_python, python) for f in live):
            continue
        fitting.append((version, live))
    for version, live in fitting:
        sdist, wheel = _buildable(live)
        if sdist is not None and wheel is not None:
            why = f"newest with an sdist and a pure wheel satisfying {asked}"
            return Choice(str(version), sdist, wheel, "chosen", None, why)
    if fitting:  # pip would take the newest; say why the farm cannot rebuild it
        return _unbuildable(project.name, *fitting[0])
    return Choice(
        None, None, None, "failed", "resolve",
        f"no release of {project.name} satisfies {asked} for Python {python}",
    )  # fmt: skip


@dataclass(frozen=True)
class Package:
    """One project of the closure and what became of it."""

    name: str
    """PEP 503 normalized."""
    version: str | None
    status: Status
    cause: str | None
    why: str
    required_by: tuple[str, ...]
    """``requirements.txt:3`` for a pin, ``parent==version`` for a dependency."""
    sdist: IndexFile | None = None
    wheel: IndexFile | None = None
    pinned: bool = False

    @property
    def spec(self) -> str:
        """``name==version`` (or the name alone when no release was chosen)."""
        return f"{self.name}=={self.version}" if self.version else self.name


@dataclass(frozen=True)
class Closure:
    """Every project met, in walk order (the pins first, then breadth first)."""

    packages: tuple[Package, ...]
    python: str = IMAGE_PYTHON

    def by_status(self, status: Status) -> tuple[Package, ...]:
        """The packages with ``status``."""
        return tuple(p for p in self.packages if p.status == status)


class _Restart(Exception):
    """A specifier excludes an unpinned project's choice: walk again remembering it."""

    def __init__(self, key: str, spec: SpecifierSet, who: str) -> None:
        super().__init__(key)
        self.key, self.spec, self.who = key, spec, who


@dataclass
class _Node:
    choice: Choice
    required_by: list[str]
    specifiers: list[tuple[SpecifierSet, str]]
    pinned: bool
    extras: set[str] = field(default_factory=set)


class _Walk:
    """One breadth-first walk; raises :class:`_Restart` when a choice must be revised."""

    def __init__(
        self,
        pins: Sequence[Pinned],
        index: IndexSource,
        python: str,
        remembered: Mapping[str, list[tuple[SpecifierSet, str]]],
        projects: dict[str, ProjectIndex | InferError],
    ) -> None:
        self.index, self.python, self.remembered = index, python, remembered
        self.pins = {p.key: p for p in pins if marker_applies(p.marker, python)}
        self.order = [p for p in pins if p.key in self.pins and self.pins[p.key] is p]
        self.nodes: dict[str, _Node] = {}
        self.projects = projects
        """Project pages (or why there is none), kept across restarts."""

    def _project(self, key: str) -> ProjectIndex | InferError:
        if key not in self.projects:
            try:
                self.projects[key] = self.index.project(key)
            except InferError as exc:
                self.projects[key] = exc
        return self.projects[key]

    def _choose(self, key: str, specs: list[tuple[SpecifierSet, str]]) -> Choice:
        project = self._project(key)
        if isinstance(project, InferError):
            return Choice(None, None, None, "failed", project.cause, str(project))
        pin = self.pins.get(key)
        every = [*specs, *self.remembered.get(key, [])]
        return choose_release(
            project, every, pinned=pin.version if pin else None, python=self.python
        )

    def run(self) -> Closure:
        queue: list[tuple[Requirement, str]] = [(p.requirement(), p.where) for p in self.order]
        while queue:
            req, who = queue.pop(0)
            queue.extend(self._meet(req, who))
        packages = tuple(
            Package(
                name=key,
                version=n.choice.version,
                status=n.choice.status,
                cause=n.choice.cause,
                why=n.choice.why,
                required_by=tuple(n.required_by),
                sdist=n.choice.sdist,
                wheel=n.choice.wheel,
                pinned=n.pinned,
            )
            for key, n in self.nodes.items()
        )
        return Closure(packages, self.python)

    def _meet(self, req: Requirement, who: str) -> list[tuple[Requirement, str]]:
        """Take one requirement into the closure; the requirements it brings in."""
        key = canonicalize_name(req.name)
        spec = (req.specifier, who)
        node = self.nodes.get(key)
        if node is None:
            pinned = key in self.pins and who == self.pins[key].where
            specs = [] if pinned else [spec]
            node = _Node(self._choose(key, specs), [who], specs, key in self.pins)
            self.nodes[key] = node
            new_extras = set(req.extras) | {""}
        else:
            if who not in node.required_by:
                node.required_by.append(who)
            version = node.choice.version
            if version is not None and not req.specifier.contains(version, prereleases=True):
                if not node.pinned and node.choice.status != "failed":
                    raise _Restart(key, req.specifier, who)
                node.specifiers.append(spec)
                node.choice = self._choose(key, node.specifiers)
            new_extras = set(req.extras) - node.extras
        if node.choice.status != "chosen" or not new_extras:
            return []
        node.extras |= new_extras
        assert node.choice.wheel is not None  # a chosen release has its pure wheel
        parent = f"{key}=={node.choice.version}"
        return [
            (dep, parent)
            for dep in requires_dist(self.index.metadata(node.choice.wheel))
            if any(marker_applies(dep.marker, self.python, e) for e in new_extras)
        ]


def resolve_closure(
    pins: Sequence[Pinned], index: IndexSource, *, python: str = IMAGE_PYTHON
) -> Closure:
    """The closure of ``pins`` for ``python`` on Linux x86-64 (see the module docstring).

    Pins whose marker does not hold in the builder image are left out. Raises
    InferError("resolve") only when the walk does not settle in a bounded number of
    restarts; every other problem is a package's ``status`` and ``cause``.
    """
    remembered: dict[str, list[tuple[SpecifierSet, str]]] = {}
    projects: dict[str, ProjectIndex | InferError] = {}
    for _ in range(_MAX_ROUNDS):
        try:
            return _Walk(pins, index, python, remembered, projects).run()
        except _Restart as again:
            remembered.setdefault(again.key, []).append((again.spec, again.who))
    raise InferError(
        f"the dependency closure did not settle after {_MAX_ROUNDS} revisions; "
        f"specifiers met: {sorted(remembered)}",
        "resolve",
    )
