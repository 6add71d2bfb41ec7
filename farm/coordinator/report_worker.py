"""Diffoscope reports made off the scheduler's and the API's threads.

A decided build that is disputed, or whose agreed outputs differ from upstream's, needs
reports (:func:`farm.coordinator.reports.make_reports`): an upstream download and one
diffoscope run per differing output, each bounded by its limits but minutes long at
worst. Made in the scheduler's pass, they held up every other build; made in a request's
background task, they took a server thread. :class:`ReportWorker` makes them one build at
a time in its own thread, from a queue; a build queued twice is made once. On start it
queues every decided build that needs reports and has none (the coordinator stopped
before making them), so a restart leaves no gap.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from farm.coordinator import reports
from farm.coordinator.models import Build, DiffReport
from farm.coordinator.staging import Staging
from farm.diffoscope import DiffoscopeLimits
from farm.errors import FarmError

__all__ = ["ReportWorker", "needs_reports"]

log = logging.getLogger(__name__)


def needs_reports(status: str, upstream_matches: bool | None) -> bool:
    """Whether a build decided ``status`` gets diffoscope reports: disputed, or its agreed
    outputs differ from upstream's (``upstream_matches`` False; None: no reference)."""
    return status == "disputed" or upstream_matches is False


class ReportWorker:
    """Makes the reports of the builds :meth:`submit` names, in :meth:`run`'s thread."""

    def __init__(
        self, engine: Engine, staging: Staging, reports_dir: Path, limits: DiffoscopeLimits
    ) -> None:
        self.engine = engine
        self.staging = staging
        self.reports_dir = reports_dir
        self.limits = limits
        self._queue: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, build_id: str) -> None:
        """Queue ``build_id``'s reports (nothing if it is queued already)."""
        with self._lock:
            if build_id in self._queued:
                return
            self._queued.add(build_id)
        self._queue.put(build_id)

    def pending(self) -> int:
        """Builds queued or being made."""
        with self._lock:
            return len(self._queued)

    def missing(self) -> list[str]:
        """Decided builds that need reports and have none, oldest first."""
        with Session(self.engine) as session:
            reported = select(DiffReport.build_id)
            rows = session.exec(
                select(Build.id, Build.status, Build.verdict)
                .where(col(Build.status).in_(("disputed", "verified")))
                .where(col(Build.id).not_in(reported))
                .order_by(col(Build.created_at))
            ).all()
        return [
            build_id
            for build_id, status, verdict in rows
            if needs_reports(status, (verdict or {}).get("upstream_matches"))
        ]

    def make(self, build_id: str) -> None:
        """Make ``build_id``'s reports now (errors are logged: the reports record them)."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                made = reports.make_reports(
                    session, self.staging, build_id, self.reports_dir, self.limits
                )
            except FarmError as exc:
                log.error("build %s: diffoscope reports failed: %s", build_id, exc)
                return
        log.info("build %s: %d diffoscope report(s)", build_id, len(made))

    def _made(self, build_id: str) -> None:
        try:
            self.make(build_id)
        except Exception:  # one build's failure must not end the worker
            log.exception("build %s: diffoscope reports failed", build_id)
        finally:
            with self._lock:
                self._queued.discard(build_id)

    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Queue what :meth:`missing` finds, then make reports as builds are submitted,
        until ``stop`` is set."""
        try:
            for build_id in self.missing():
                self.submit(build_id)
        except Exception:
            log.exception("could not list the builds that lack diffoscope reports")
        while not stop.is_set():
            try:
                build_id = self._queue.get(timeout=poll)
            except queue.Empty:
                continue
            self._made(build_id)
