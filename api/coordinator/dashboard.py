"""The operator dashboard: server-rendered HTML over the coordinator's own reads.

``GET /`` shows recent builds with their verdicts and whether the agreed outputs match
what upstream published (a verified build can differ from upstream), the disputed ones
with links to their diffoscope reports, the builders (architectures, last seen, healthy
or not, builds done, agreement rate) and the ledger (height and latest checkpoint, or
why they cannot be shown). ``GET /builds/{id}`` shows one build: its verdict, every
builder's result with outputs and log, the attempts and the diffoscope reports.

Invariants:
  * every figure comes from the same functions the REST API serves
    (:mod:`farm.coordinator.service`, :mod:`~farm.coordinator.reports`,
    :mod:`~farm.coordinator.attestations`); this module runs no query of its own;
  * everything shown is escaped (Jinja2 autoescape): names, reasons and logs come
    from recipes and builders, which are untrusted;
  * no JavaScript, and a Content-Security-Policy that forbids it;
  * a ledger that is not configured or does not answer is shown as such; the page
    still renders;
  * the routes are not part of the OpenAPI document (``include_in_schema=False``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import attestations, reports, service
from farm.coordinator.errors import NotFoundError
from farm.coordinator.ledger_client import LedgerClient
from farm.coordinator.models import (
    Builder,
    BuilderPublic,
    BuildPublic,
    DiffReport,
    LedgerCheckpointPublic,
    LedgerStatusPublic,
)
from farm.coordinator.settings import CoordinatorSettings
from farm.coordinator.staging import Staging
from farm.errors import FarmError

__all__ = ["DASHBOARD_CSP", "router"]

log = logging.getLogger(__name__)

#: No scripts, no fetches, no framing: the pages are plain HTML with inline CSS.
DASHBOARD_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
RECENT_BUILDS = 25
DISPUTED_BUILDS = 10
LOG_TAIL_BYTES = 64 * 1024

_TEMPLATES = Path(__file__).with_name("templates")
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)

Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Builds to skip.")]


class _FarmState(Protocol):
    """What the dashboard reads from the coordinator app's state."""

    settings: CoordinatorSettings
    engine: Engine
    staging: Staging
    clock: Callable[[], datetime]
    ledger: LedgerClient | None


def _state(request: Request) -> _FarmState:
    state: _FarmState = request.app.state.farm
    return state


# ---- what the pages show ------------------------------------------------------------------


@dataclass(frozen=True)
class BuilderRow:
    """One builder as the overview lists it."""

    builder: BuilderPublic
    healthy: bool
    why: str
    """Why it is (not) healthy, in a few words."""


@dataclass(frozen=True)
class LedgerView:
    """The ledger as far as the coordinator can tell."""

    configured: bool
    status: LedgerStatusPublic | None = None
    """A validator's status (height, log size, ...), when one answered."""
    checkpoint: LedgerCheckpointPublic | None = None
    """The latest co-signed checkpoint a validator serves, when one answered."""
    problem: str | None = None
    """Why the live figures are missing (not configured, unreachable, ...)."""
    last_index: int | None = None
    """Ledger index of the newest attestation this coordinator committed."""
    last_checkpoint: str | None = None
    """The checkpoint stored with that attestation."""


@dataclass(frozen=True)
class LogView:
    """The tail of one builder's build log, read from staging by its signed digest."""

    sha256: str
    text: str | None
    truncated: bool
    problem: str | None


def _builder_public(builder: Builder) -> BuilderPublic:
    rate = builder.agreements / builder.builds_done if builder.builds_done else None
    return BuilderPublic.model_validate({**builder.model_dump(), "agreement_rate": rate})


def _builders(session: Session, state: _FarmState, now: datetime) -> list[BuilderRow]:
    within = state.settings.heartbeat_within
    rows = service.list_builders(session)
    healthy: set[str] = set()
    for arch in sorted({a for b in rows for a in b.arches}):
        healthy.update(
            b.id for b in service.healthy_builders(session, arch, now, within_seconds=within)
        )
    out = []
    for b in rows:
        if b.id in healthy:
            why = f"heartbeat within the last {within:g}s"
        elif not b.approved:
            why = "waiting for approval"
        elif b.last_seen is None:
            why = "never heard from"
        else:
            why = f"silent for more than {within:g}s"
        out.append(BuilderRow(_builder_public(b), b.id in healthy, why))
    return out


def _ledger(session: Session, client: LedgerClient | None) -> LedgerView:
    """What the coordinator recorded last; the validators are asked by :func:`_ledger_live`."""
    newest = attestations.list_attestations(session, limit=1).items
    return LedgerView(
        configured=client is not None,
        problem=None if client else "no ledger is configured (farm serve --ledger URL,...)",
        last_index=newest[0].ledger_index if newest else None,
        last_checkpoint=newest[0].checkpoint if newest else None,
    )


def _ledger_live(view: LedgerView, client: LedgerClient | None) -> LedgerView:
    """``view`` with the validators' status and checkpoint, or why there are none."""
    if client is None:
        return view
    try:
        status = client.read("/v1/status", LedgerStatusPublic)
    except FarmError as exc:
        return replace(view, problem=str(exc))
    checkpoint = None
    try:
        checkpoint = client.read("/v1/checkpoint", LedgerCheckpointPublic)
    except NotFoundError:
        pass  # no co-signed checkpoint yet: the page says so
    except FarmError as exc:
        log.warning("dashboard: ledger checkpoint unavailable: %s", exc)
    return replace(view, status=status, checkpoint=checkpoint)


def _log(staging: Staging, digest: str | None) -> LogView | None:
    if not digest:
        return None
    try:
        path = staging.path_for(digest)
        size = path.stat().st_size
        with path.open("rb") as f:
            f.seek(max(0, size - LOG_TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return LogView(digest, None, False, "the builder did not upload this log")
    except (OSError, FarmError) as exc:
        return LogView(digest, None, False, str(exc))
    return LogView(digest, tail.decode("utf-8", "replace"), size > LOG_TAIL_BYTES, None)


# ---- formatting (Jinja2 filters) ----------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _short(value: str | None, n: int = 12) -> str:
    return "" if value is None else value[:n]


_env.filters.update(when=_when, percent=_percent, short=_short)


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(
        html, status_code=status, headers={"Content-Security-Policy": DASHBOARD_CSP}
    )


# ---- routes -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, offset: Offset = 0) -> HTMLResponse:
    """Recent builds (``offset`` pages back), disputed builds with their diffs,
    builders, the ledger."""
    state = _state(request)
    now = state.clock()
    with Session(state.engine, expire_on_commit=False) as session:
        recent = service.list_builds(session, limit=RECENT_BUILDS, offset=offset)
        disputed = service.list_builds(session, verdict="disputed", limit=DISPUTED_BUILDS)
        diffs: dict[str, list[DiffReport]] = {
            b.id: reports.diff_reports(session, b.id) for b in disputed.items
        }
        builders = _builders(session, state, now)
        ledger = _ledger(session, state.ledger)
    # The validators are asked with no database session held open.
    ledger = _ledger_live(ledger, state.ledger)
    return _page(
        "overview.html",
        now=now,
        ago=lambda t: _ago(t, now),
        recent=recent,
        offset=offset,
        newer=max(0, offset - RECENT_BUILDS) if offset else None,
        disputed=disputed,
        diffs=diffs,
        builders=builders,
        ledger=ledger,
    )


@router.get("/builds/{build_id}", response_class=HTMLResponse)
def build_detail(request: Request, build_id: str) -> HTMLResponse:
    """One build: verdict, each builder's result with outputs and log, attempts, diffs."""
    state = _state(request)
    now = state.clock()
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            build: BuildPublic = service.build_public(session, build_id)
        except NotFoundError as exc:
            return _page("not_found.html", 404, now=now, message=str(exc))
        diffs = reports.diff_reports(session, build_id)
    logs = {r.id: _log(state.staging, r.log_sha256) for r in build.results}
    return _page(
        "build.html",
        now=now,
        ago=lambda t: _ago(t, now),
        build=build,
        verdict=build.verdict or {},
        logs=logs,
        diffs=diffs,
    )
