"""Diffoscope reports of a disputed build, from the staged outputs.

For every output on which builders disagree, the agreed (majority) digest is compared
with each other digest builders produced, with :func:`farm.diffoscope.run_diffoscope`
and its limits. Each comparison is stored as a :class:`DiffReport` row — ``done`` with
the paths of its HTML and JSON reports, or ``error`` with the reason — so a failed or
timed-out diffoscope is visible, never a silent gap. Comparisons with what upstream
published are :mod:`farm.coordinator.upstream`'s (``against="upstream"``);
:func:`make_reports` makes both kinds for a decided build.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from sqlmodel import Session, col, select

from farm.coordinator.errors import NotFoundError
from farm.coordinator.models import DiffReport, utcnow
from farm.coordinator.service import get_build
from farm.coordinator.staging import Staging
from farm.coordinator.upstream import make_upstream_reports
from farm.diffoscope import DiffoscopeError, DiffoscopeLimits, run_diffoscope

__all__ = ["diff_reports", "make_diff_reports", "make_reports", "report_file"]

log = logging.getLogger(__name__)


def _pairs(verdict: dict[str, Any]) -> list[tuple[str, str, str]]:
    pairs: list[tuple[str, str, str]] = []
    outputs = verdict.get("outputs", [])
    assert isinstance(outputs, list)
    for out in outputs:
        produced = [str(p) for p in out.get("produced", [])]
        base = out.get("sha256") or (produced[0] if produced else None)
        if base is None:
            continue
        pairs.extend((str(out["name"]), str(base), other) for other in produced if other != base)
    # A pure wheel that differs across architectures (farm.cross_arch): each other
    # architecture's bytes against the first's; staging holds every build's outputs.
    cross = verdict.get("cross_arch") or {}
    for name, info in (cross.get("outputs") or {}).items():
        if info.get("agreed"):
            continue
        digests = [str(d) for _, d in sorted(info.get("sha256", {}).items())]
        base = digests[0] if digests else None
        pairs.extend(
            (str(name), str(base), other)
            for other in dict.fromkeys(digests[1:])
            if other != base and (str(name), str(base), other) not in pairs
        )
    return pairs


def make_diff_reports(
    session: Session,
    staging: Staging,
    build_id: str,
    reports_dir: Path,
    limits: DiffoscopeLimits | None = None,
) -> list[DiffReport]:
    """Run diffoscope on every differing output of a decided build; store and return rows.

    Does nothing for a build without differing outputs; a build compared before is not
    compared again.
    """
    build = get_build(session, build_id)
    if build.verdict is None:
        return []
    existing = [r for r in diff_reports(session, build_id) if r.against == "builders"]
    if existing:
        return existing
    rows = []
    for name, a, b in _pairs(build.verdict):
        row = DiffReport(
            build_id=build_id,
            output=name,
            sha256_a=a,
            sha256_b=b,
            status="error",
            created_at=utcnow(),
        )
        out_dir = reports_dir / build_id / f"{a[:16]}-{b[:16]}"
        try:
            report = _compare(staging, name, a, b, out_dir, limits)
        except (DiffoscopeError, NotFoundError) as exc:
            row.error = str(exc)
            log.warning("build %s: no diffoscope report for %s: %s", build_id, name, exc)
        else:
            row.status = "done"
            row.html_path = str(report[0]) if report[0].is_file() else None
            row.json_path = str(report[1]) if report[1].is_file() else None
        session.add(row)
        rows.append(row)
    session.commit()
    return rows


def _compare(
    staging: Staging,
    name: str,
    a: str,
    b: str,
    out_dir: Path,
    limits: DiffoscopeLimits | None,
) -> tuple[Path, Path]:
    # diffoscope recognises formats partly by file name: give both sides the output's name.
    base = PurePosixPath(name).name or "output"
    with tempfile.TemporaryDirectory(prefix="farm-diff-") as tmp:
        sides = []
        for side, digest in (("a", a), ("b", b)):
            if not staging.has(digest):
                raise NotFoundError(f"sha256:{digest} of {name} is not in staging")
            target = Path(tmp, side, base)
            target.parent.mkdir()
            shutil.copyfile(staging.path_for(digest), target)
            sides.append(target)
        report = run_diffoscope(sides[0], sides[1], out_dir, limits)
    return report.html, report.json


def make_reports(
    session: Session,
    staging: Staging,
    build_id: str,
    reports_dir: Path,
    limits: DiffoscopeLimits | None = None,
) -> list[DiffReport]:
    """Every report a decided build needs: builders' differing outputs (when disputed),
    and outputs whose agreed digest differs from upstream's (when the recipe has a URL)."""
    rows = make_diff_reports(session, staging, build_id, reports_dir, limits)
    return rows + make_upstream_reports(session, staging, build_id, reports_dir, limits)


def diff_reports(session: Session, build_id: str) -> list[DiffReport]:
    """The diffoscope reports stored for a build."""
    rows = session.exec(
        select(DiffReport).where(DiffReport.build_id == build_id).order_by(col(DiffReport.id))
    )
    return list(rows)


def report_file(session: Session, report_id: int, kind: str) -> Path:
    """The HTML or JSON file of a report; raise :class:`NotFoundError` if there is none."""
    row = session.get(DiffReport, report_id)
    path = None
    if row is not None:
        path = row.html_path if kind == "html" else row.json_path if kind == "json" else None
    if path is None or not Path(path).is_file():
        raise NotFoundError(f"diffoscope report {report_id} has no {kind} file")
    return Path(path)
