"""``farm coverage``'s verdict: what the node answered, per requirement → a report.

Pure: :class:`Observation` values in (gathered by :mod:`farm.consumer.coverage_flow`),
a :class:`CoverageReport` out. A requirement is *covered* only when the node serves its
release and every artifact chosen for this machine verified the way ``farm pull``
verifies it (:func:`farm.consumer.flow.verify_served`): the node is untrusted, so
"listed" is not "covered". Fail closed: a release the node lists with no artifact for
this machine, or whose evidence or bytes do not check out, is not covered; an empty
requirements list is refused before this module is reached.

Whether a covered artifact *matches upstream* is a separate column: its file name and
sha256 against the upstream index's listing of the same release (PyPI by default, read
over its own TLS connection, not through the node). It is reported, and fails the
report only when ``require_match`` is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from farm.consumer.verify import VerifiedArtifact
from farm.requirements import Pinned

__all__ = [
    "CoverageReport",
    "Observation",
    "Row",
    "UpstreamListing",
    "build_report",
    "upstream_match",
]

Served = Literal["yes", "no", "-"]
Verified = Literal["yes", "no", "-"]
Matches = Literal["yes", "no", "unknown", "not checked", "-"]


@dataclass(frozen=True)
class UpstreamListing:
    """The upstream index's files of one release (file name → sha256), or why none."""

    files: Mapping[str, str] | None
    problem: str | None = None


@dataclass(frozen=True)
class Observation:
    """What was found for one requirement.

    ``outcome``: ``verified`` (``artifacts`` hold what verified), ``refused`` (the node
    serves it, verification failed: ``message`` says why), ``absent`` (the node does not
    serve it, or could not be asked: ``message``), ``not-needed`` (its marker is false
    for this environment). ``upstream`` is None when not checked.
    """

    requirement: Pinned
    outcome: Literal["verified", "refused", "absent", "not-needed"]
    artifacts: tuple[VerifiedArtifact, ...] = ()
    message: str = ""
    upstream: UpstreamListing | None = None


@dataclass(frozen=True)
class Row:
    """One line of the table (and one object of ``--json``)."""

    requirement: str
    where: str
    served: Served
    verified: Verified
    matches_upstream: Matches
    note: str
    covered: bool
    files: tuple[dict[str, Any], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return {
            "requirement": self.requirement,
            "where": self.where,
            "served": self.served,
            "verified": self.verified,
            "matches_upstream": self.matches_upstream,
            "covered": self.covered,
            "note": self.note,
            "files": list(self.files),
        }


@dataclass(frozen=True)
class CoverageReport:
    """Every requirement's row, and whether the whole list is covered."""

    rows: tuple[Row, ...]
    require_match: bool = False

    @property
    def missing(self) -> tuple[Row, ...]:
        """Rows not served or not verified (or, with ``require_match``, not matching)."""
        return tuple(r for r in self.rows if not self._ok(r))

    def _ok(self, row: Row) -> bool:
        if not row.covered:
            return False
        return not self.require_match or row.matches_upstream in ("yes", "-")

    @property
    def ok(self) -> bool:
        """Everything needed is served and verified (fail closed: no rows is not ok)."""
        return bool(self.rows) and not self.missing

    def summary(self) -> str:
        """One line: how many of how many are covered."""
        needed = [r for r in self.rows if r.served != "-"]
        covered = sum(r.covered for r in needed)
        text = f"{covered}/{len(needed)} requirement(s) served and verified"
        if self.missing:
            text += "; missing or failing: " + ", ".join(r.requirement for r in self.missing)
        return text

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (``--json``)."""
        return {
            "ok": self.ok,
            "covered": sum(r.covered for r in self.rows if r.served != "-"),
            "total": sum(r.served != "-" for r in self.rows),
            "missing": [r.requirement for r in self.missing],
            "rows": [r.as_json() for r in self.rows],
        }


def upstream_match(
    artifacts: Sequence[VerifiedArtifact], listing: UpstreamListing | None
) -> tuple[Matches, str]:
    """(column value, note) for verified ``artifacts`` against upstream's ``listing``."""
    if listing is None:
        return "not checked", ""
    if listing.files is None:
        return "unknown", f"upstream not read: {listing.problem}"
    notes: list[str] = []
    for art in artifacts:
        theirs = listing.files.get(art.filename)
        if theirs is None:
            notes.append(f"upstream has no {art.filename}")
        elif theirs != art.sha256:
            notes.append(f"{art.filename}: sha256 {art.sha256[:12]}…, upstream's is {theirs[:12]}…")
    return ("no", "; ".join(notes)) if notes else ("yes", "")


def _row(obs: Observation) -> Row:
    req = obs.requirement
    if obs.outcome == "not-needed":
        note = f"not needed here (marker: {req.marker})"
        return Row(req.spec, req.where, "-", "-", "-", note, covered=True)
    if obs.outcome == "absent":
        return Row(req.spec, req.where, "no", "-", "-", obs.message, covered=False)
    if obs.outcome == "refused":
        return Row(req.spec, req.where, "yes", "no", "-", obs.message, covered=False)
    if not obs.artifacts:  # fail closed: "verified" with nothing verified is not coverage
        return Row(req.spec, req.where, "yes", "no", "-", "no artifact verified", covered=False)
    matches, note = upstream_match(obs.artifacts, obs.upstream)
    files = tuple(
        {"filename": a.filename, "sha256": a.sha256, "arch": a.arch, "builders": len(a.builders)}
        for a in obs.artifacts
    )
    if not note:
        note = ", ".join(
            f"{a.filename}: {len(a.builders)} builders agree, ledger index {a.attestation_index}"
            for a in obs.artifacts
        )
    return Row(req.spec, req.where, "yes", "yes", matches, note, covered=True, files=files)


def build_report(
    observations: Sequence[Observation], *, require_match: bool = False
) -> CoverageReport:
    """The report of ``observations``, in their order."""
    return CoverageReport(tuple(_row(o) for o in observations), require_match)
