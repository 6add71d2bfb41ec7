"""Where a rebuild differs from what upstream published: fetch upstream's artifact, diff it.

For every output of a decided build whose agreed digest differs from the recipe's
upstream reference (:class:`farm.recipe.UpstreamReference`) and whose reference has a
URL, the upstream artifact is downloaded — streamed, its sha256 computed on the way and
checked against the reference, its size bounded by the recipe's output limit — and
compared with the agreed rebuild (from staging) by :func:`farm.diffoscope.run_diffoscope`
with the coordinator's limits. Each comparison is a :class:`DiffReport` with
``against="upstream"`` (``sha256_a`` upstream, ``sha256_b`` the rebuild): ``done``
with its reports, or ``error`` with why (unreachable, wrong digest, too large,
diffoscope failed). The build's verdict lists them under ``upstream_reports``.

Invariant: bytes whose sha256 is not the reference's are never compared — a diff
against the wrong file would explain nothing.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
from sqlmodel import Session, col, select

from farm.coordinator.errors import CoordinatorError, NotFoundError
from farm.coordinator.models import DiffReport, utcnow
from farm.coordinator.service import get_build
from farm.coordinator.staging import Staging
from farm.diffoscope import DiffoscopeError, DiffoscopeLimits, run_diffoscope

__all__ = ["UpstreamFetchError", "fetch_upstream", "make_upstream_reports", "upstream_pairs"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16

Fetch = Callable[[str, str, Path, int], None]


class UpstreamFetchError(CoordinatorError):
    """The upstream artifact could not be fetched, or is not what the recipe says."""


def fetch_upstream(
    url: str, sha256: str, dest: Path, max_bytes: int, *, timeout: float = 120.0
) -> None:
    """Download ``url`` to ``dest``, checking its sha256 and size while streaming.

    Raises:
        UpstreamFetchError: not http(s), unreachable, an HTTP error, more than
            ``max_bytes``, or a sha256 other than ``sha256`` (``dest`` is then removed).
    """
    if not url.startswith(("https://", "http://")):
        raise UpstreamFetchError(f"upstream URL {url[:200]!r} is not http(s)")
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response,
            dest.open("wb") as out,
        ):
            if response.status_code != 200:
                raise UpstreamFetchError(f"upstream {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UpstreamFetchError(
                        f"upstream {url}: larger than the recipe's output limit ({max_bytes} bytes)"
                    )
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise UpstreamFetchError(
                f"upstream {url} has sha256 {digest.hexdigest()}, "
                f"not the recipe's reference {sha256}"
            )
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise UpstreamFetchError(f"upstream {url}: {type(exc).__name__}: {exc}") from None
    except UpstreamFetchError:
        dest.unlink(missing_ok=True)
        raise


def upstream_pairs(
    verdict: dict[str, Any], recipe: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(output, upstream sha256, agreed sha256, URL) of each output to compare."""
    urls = {
        str(u["output"]): str(u["url"])
        for u in recipe.get("upstream", ())
        if isinstance(u, dict) and u.get("url")
    }
    pairs = []
    for out in verdict.get("outputs", ()):
        name, agreed, ref = out.get("name"), out.get("sha256"), out.get("upstream_sha256")
        if out.get("upstream") == "differ" and agreed and ref and name in urls:
            pairs.append((str(name), str(ref), str(agreed), urls[str(name)]))
    return pairs


def make_upstream_reports(
    session: Session,
    staging: Staging,
    build_id: str,
    reports_dir: Path,
    limits: DiffoscopeLimits | None = None,
    fetch: Fetch = fetch_upstream,
) -> list[DiffReport]:
    """Compare each output that differs from upstream; store rows, note them in the verdict.

    Does nothing for an undecided build or one without such outputs; a build compared
    before is not compared again.
    """
    build = get_build(session, build_id)
    if build.verdict is None:
        return []
    existing = list(
        session.exec(
            select(DiffReport)
            .where(DiffReport.build_id == build_id, DiffReport.against == "upstream")
            .order_by(col(DiffReport.id))
        )
    )
    if existing:
        return existing
    max_bytes = int(build.recipe.get("limits", {}).get("output_size") or 512 * 2**20)
    rows = []
    for name, ref, agreed, url in upstream_pairs(build.verdict, build.recipe):
        row = DiffReport(
            build_id=build_id,
            output=name,
            sha256_a=ref,
            sha256_b=agreed,
            status="error",
            created_at=utcnow(),
            against="upstream",
        )
        out_dir = reports_dir / build_id / f"upstream-{ref[:16]}-{agreed[:16]}"
        try:
            html, js = _compare(staging, name, ref, agreed, url, out_dir, max_bytes, limits, fetch)
        except (DiffoscopeError, CoordinatorError) as exc:
            row.error = str(exc)[:2000]
            log.warning("build %s: no upstream diff for %s: %s", build_id, name, exc)
        else:
            row.status = "done"
            row.html_path = str(html) if html.is_file() else None
            row.json_path = str(js) if js.is_file() else None
        session.add(row)
        rows.append(row)
    if rows:
        session.flush()
        build.verdict = {
            **build.verdict,
            "upstream_reports": [
                {"output": r.output, "report_id": r.id, "status": r.status, "error": r.error}
                for r in rows
            ],
        }
        session.add(build)
    session.commit()
    return rows


def _compare(
    staging: Staging,
    name: str,
    ref: str,
    agreed: str,
    url: str,
    out_dir: Path,
    max_bytes: int,
    limits: DiffoscopeLimits | None,
    fetch: Fetch,
) -> tuple[Path, Path]:
    # diffoscope recognises formats partly by file name: both sides get the output's name.
    base = PurePosixPath(name).name or "output"
    if not staging.has(agreed):
        raise NotFoundError(f"sha256:{agreed} of {name} is not in staging")
    with tempfile.TemporaryDirectory(prefix="farm-upstream-") as tmp:
        upstream = Path(tmp, "upstream", base)
        rebuilt = Path(tmp, "rebuilt", base)
        upstream.parent.mkdir()
        rebuilt.parent.mkdir()
        fetch(url, ref, upstream, max_bytes)
        shutil.copyfile(staging.path_for(agreed), rebuilt)
        report = run_diffoscope(upstream, rebuilt, out_dir, limits)
    return report.html, report.json
