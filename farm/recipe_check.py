"""``farm recipe check``: will this recipe verify? Lint it, build it twice, compare.

What a recipe pull request's CI runs. For each recipe file: lint it (as
``farm recipe lint`` does); build it twice on this machine in its pinned image, the
hermetic way builders do, under two different variations of what the recipe leaves
open (hostname, umask, CPU count, the clock; :mod:`builders.local_build`); compare the
two builds' outputs with each other and with the recipe's ``upstream`` references.
Where outputs differ, diffoscope says which members (:func:`differing_members`).

One status per recipe (:data:`Status`):

- ``verified``: both builds produced the same digests, and every output the recipe
  references upstream for matches it;
- ``differs from upstream``: deterministic, but an output is not upstream's;
- ``not deterministic``: the two builds produced different outputs;
- ``failed``: a build did not produce its outputs (or the file is not a valid recipe).

The pure part (:func:`compare_outputs`, :func:`status_of`, :func:`differing_members`,
:func:`exit_code`) takes values and returns values; :func:`check_file` is the thin
driver, with the build, the upstream download and diffoscope passed in, so that this
module imports nothing of the builder host.

Exit status (:func:`exit_code`): 0 when every recipe is deterministic, *including* a
recipe that differs from upstream (the issue's rule: non-zero unless every recipe is
deterministic; matching upstream is reported, not required); 1 otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from farm.diffoscope import DiffoscopeError, run_diffoscope
from farm.errors import FarmError
from farm.recipe import Recipe
from farm.recipe_lint import LintProblem, lint_paths

__all__ = [
    "BuildRun",
    "CheckResult",
    "OutputComparison",
    "Status",
    "check_file",
    "check_recipe",
    "compare_outputs",
    "differing_members",
    "exit_code",
    "report_json",
    "run_diff",
    "status_of",
]

Status = Literal["verified", "differs from upstream", "not deterministic", "failed"]
#: Statuses that count as deterministic for the exit status.
DETERMINISTIC: frozenset[Status] = frozenset({"verified", "differs from upstream"})

#: diffoscope entries that describe an archive rather than name one of its members.
_TOOL_ENTRIES = ("file list", "filetype from file(1)", "zipnote", "zipdetails", "metadata")
_MAX_NAMED = 8


class BuildRun(Protocol):
    """What the driver needs of one build (:class:`builders.local_build.LocalBuild` is one)."""

    @property
    def ok(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def outputs(self) -> dict[str, Path]: ...
    @property
    def digests(self) -> dict[str, str]: ...
    @property
    def arch(self) -> str | None: ...


#: Build ``recipe`` in the empty directory ``work`` under variation number 0 or 1.
Build = Callable[[Recipe, Path, int], BuildRun]
#: Download ``url`` to ``dest``, checking its sha256 (hex) and a size bound; raise FarmError.
FetchUpstream = Callable[[str, str, Path, int], None]
#: Compare two files with diffoscope into a directory; return the parsed JSON report
#: (``None`` when they do not differ); raise DiffoscopeError.
Diff = Callable[[Path, Path, Path], Mapping[str, Any] | None]


@dataclass(frozen=True)
class OutputComparison:
    """One output across the two builds and upstream (digests as ``sha256:<hex>``)."""

    name: str
    first: str | None
    """Digest in the first build; ``None`` if it did not produce the output."""
    second: str | None
    upstream: str | None
    """The recipe's upstream reference, if any."""

    @property
    def deterministic(self) -> bool:
        """Both builds produced it, with one digest."""
        return self.first is not None and self.first == self.second

    @property
    def upstream_state(self) -> Literal["none", "match", "differ"]:
        """``none`` without a reference; else whether the first build matches it."""
        if self.upstream is None:
            return "none"
        return "match" if self.first == self.upstream else "differ"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one recipe file."""

    path: str
    label: str | None
    """``name==version``; ``None`` when the file is not a valid recipe."""
    status: Status
    detail: str = ""
    """Why it failed, or which outputs differ and how (diffoscope's summary)."""
    outputs: tuple[OutputComparison, ...] = ()
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Output name -> the members diffoscope found differing."""

    @property
    def deterministic(self) -> bool:
        return self.status in DETERMINISTIC

    def line(self) -> str:
        """One line for people: ``path: name==version: status[: detail]``."""
        head = (
            f"{self.path}: {self.label}: {self.status}"
            if self.label
            else f"{self.path}: {self.status}"
        )
        return f"{head}: {self.detail}" if self.detail else head


def compare_outputs(
    recipe: Recipe,
    first: Mapping[str, str],
    second: Mapping[str, str],
    arch: str | None = None,
) -> tuple[OutputComparison, ...]:
    """Every output either build produced or upstream references (those of ``arch``'s
    outputs; ``None``: all), in name order."""
    refs = recipe.upstream if arch is None else recipe.upstream_for(arch)
    upstream = {u.output: f"sha256:{u.sha256}" for u in refs}
    names = sorted(set(first) | set(second) | set(upstream))
    return tuple(OutputComparison(n, first.get(n), second.get(n), upstream.get(n)) for n in names)


def status_of(outputs: Sequence[OutputComparison]) -> Status:
    """``not deterministic`` if any output differs between the builds (or is missing from
    one), else ``differs from upstream`` if any reference is not matched, else ``verified``.

    No outputs at all is ``failed``: a check that compared nothing verified nothing.
    """
    built = [o for o in outputs if o.first is not None or o.second is not None]
    if not built:
        return "failed"
    if not all(o.deterministic for o in built):
        return "not deterministic"
    if any(o.upstream_state == "differ" for o in outputs):
        return "differs from upstream"
    return "verified"


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when there are results and every one is deterministic, else 1 (fail closed)."""
    return 0 if results and all(r.deterministic for r in results) else 1


def _name(node: Mapping[str, Any]) -> str:
    return str(node.get("source2") or node.get("source1") or "?")


def _is_tool_entry(name: str) -> bool:
    return "{}" in name or name.startswith(_TOOL_ENTRIES)


def differing_members(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The members a diffoscope JSON report says differ, outermost archive first.

    An archive's members are its ``details`` entries; a decompression layer (one entry
    whose own name is the inner file, e.g. ``x.tar`` inside ``x.tar.gz``) is looked
    through. Entries that describe the archive itself (``zipinfo -v {}``, ``file list``)
    are reported once as ``(archive metadata)``. A plain file with a diff and no
    details is its own single member.
    """
    details = list(report.get("details") or ())
    while (
        len(details) == 1
        and not details[0].get("unified_diff")
        and details[0].get("details")
        and not _is_tool_entry(_name(details[0]))
    ):
        details = list(details[0]["details"])  # a decompression layer: look through it
    if not details:
        if report.get("unified_diff") or report.get("comments"):
            return (PurePosixPath(_name(report)).name,)
        return ()
    members: list[str] = []
    metadata = False
    for entry in details:
        name = _name(entry)
        if _is_tool_entry(name):
            metadata = True
        elif name not in members:
            members.append(name)
    if metadata:
        members.append("(archive metadata)")
    return tuple(members)


def _summary(name: str, members: Sequence[str], what: str) -> str:
    if not members or tuple(members) == (PurePosixPath(name).name,):
        return f"{name} {what}"  # no members: a plain file
    shown = ", ".join(members[:_MAX_NAMED])
    more = f" and {len(members) - _MAX_NAMED} more" if len(members) > _MAX_NAMED else ""
    return f"{name} {what} in {shown}{more}"


Explained = tuple[list[str], dict[str, tuple[str, ...]]]


def _explain(
    differing: Sequence[tuple[OutputComparison, Path, Path]], work: Path, diff: Diff, what: str
) -> Explained:
    """Run diffoscope on each (output, theirs, ours); one summary part per output."""
    parts: list[str] = []
    members: dict[str, tuple[str, ...]] = {}
    for i, (o, theirs, ours) in enumerate(differing):
        try:
            report = diff(theirs, ours, work / "diffoscope" / f"{i + 1}")
        except DiffoscopeError as exc:
            parts.append(f"{o.name} {what} (no diffoscope summary: {exc})")
            continue
        found = differing_members(report) if report is not None else ()
        members[o.name] = found
        parts.append(_summary(o.name, found, what))
    return parts, members


def _between_builds(
    outputs: Sequence[OutputComparison], runs: Sequence[BuildRun], work: Path, diff: Diff
) -> Explained:
    differing: list[tuple[OutputComparison, Path, Path]] = []
    notes: list[str] = []
    for o in outputs:
        one, two = runs[0].outputs.get(o.name), runs[1].outputs.get(o.name)
        if o.deterministic or (one is None and two is None):
            continue
        if one is None or two is None:
            notes.append(f"{o.name}: only build {1 if two is None else 2} produced it")
        else:
            differing.append((o, one, two))
    parts, members = _explain(differing, work, diff, "differs between the builds")
    return parts + notes, members


def _against_upstream(
    recipe: Recipe,
    outputs: Sequence[OutputComparison],
    run: BuildRun,
    work: Path,
    fetch: FetchUpstream,
    diff: Diff,
) -> Explained:
    differing: list[tuple[OutputComparison, Path, Path]] = []
    notes: list[str] = []
    refs = {u.output: u for u in recipe.upstream}
    for o in outputs:
        if o.upstream_state != "differ":
            continue
        ours, ref = run.outputs.get(o.name), refs[o.name]
        if ours is None:
            notes.append(f"{o.name}: upstream published it, the build did not produce it")
            continue
        if ref.url is None:
            notes.append(f"{o.name} differs from upstream (not compared: the recipe gives no url)")
            continue
        theirs = work / "upstream" / (PurePosixPath(o.name).name or "output")
        theirs.parent.mkdir(parents=True, exist_ok=True)
        try:
            fetch(ref.url, ref.sha256, theirs, recipe.limits.output_size)
        except FarmError as exc:
            notes.append(f"{o.name} differs from upstream (not compared: {exc})")
            continue
        differing.append((o, theirs, ours))
    parts, members = _explain(differing, work, diff, "differs from upstream")
    return parts + notes, members


def check_recipe(
    path: str,
    recipe: Recipe,
    work: Path,
    *,
    build: Build,
    fetch: FetchUpstream,
    diff: Diff,
    progress: Callable[[str], None] = lambda _m: None,
) -> CheckResult:
    """Build ``recipe`` twice (variations 0 and 1) under ``work``, compare, explain.

    Where the builds differ, diffoscope compares build 1's file with build 2's; where
    they agree but differ from upstream, upstream's file (downloaded by ``fetch``,
    checked against the reference) with the rebuild.
    """
    runs: list[BuildRun] = []
    for i in (0, 1):
        progress(f"{recipe.label}: build {i + 1} of 2")
        run = build(recipe, work / f"build-{i + 1}", i)
        if not run.ok:
            return CheckResult(path, recipe.label, "failed", f"build {i + 1}: {run.failure}")
        runs.append(run)
    outputs = compare_outputs(recipe, runs[0].digests, runs[1].digests, runs[0].arch)
    status = status_of(outputs)
    if status == "verified":
        return CheckResult(path, recipe.label, status, "", outputs)
    if status == "failed":
        return CheckResult(path, recipe.label, status, "the builds produced no output", outputs)
    progress(f"{recipe.label}: {status}; asking diffoscope why")
    if status == "not deterministic":
        parts, members = _between_builds(outputs, runs, work, diff)
    else:
        parts, members = _against_upstream(recipe, outputs, runs[0], work, fetch, diff)
    return CheckResult(path, recipe.label, status, "; ".join(parts), outputs, members)


def _lint_detail(problems: Sequence[LintProblem]) -> str:
    if not problems:
        return "lint: not a recipe file"
    first = sorted(problems)[0]
    where = f"line {first.line}: " if first.line else ""
    more = f" (and {len(problems) - 1} more: farm recipe lint)" if len(problems) > 1 else ""
    return f"lint: {where}{first.field}: {first.message}{more}"


def check_file(
    file: Path,
    work: Path,
    *,
    build: Build,
    fetch: FetchUpstream,
    diff: Diff,
    progress: Callable[[str], None] = lambda _m: None,
) -> CheckResult:
    """Lint ``file``, then (if it is valid) :func:`check_recipe` it. Never raises for bad input."""
    progress(f"{file}: lint")
    recipes, problems = lint_paths([file])
    if problems or not recipes:
        return CheckResult(str(file), None, "failed", _lint_detail(problems))
    return check_recipe(
        str(file), recipes[0], work, build=build, fetch=fetch, diff=diff, progress=progress
    )


def report_json(path: Path) -> Mapping[str, Any] | None:
    """diffoscope's JSON report at ``path`` (``None`` if it wrote none: no difference)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DiffoscopeError(f"cannot read diffoscope's report {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DiffoscopeError(f"diffoscope's report {path} is not a JSON object")
    return data


def run_diff(a: Path, b: Path, out_dir: Path) -> Mapping[str, Any] | None:
    """diffoscope ``a`` against ``b`` with the default limits; its JSON report, if they differ.

    Raises :class:`DiffoscopeError` (diffoscope missing, timed out, failed).
    """
    report = run_diffoscope(a, b, out_dir)
    return report_json(report.json) if report.differ else None
