"""Diffoscope reports of disputed builds are stored, failures with their reason."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.coordinator import reports, service
from farm.coordinator.errors import NotFoundError
from farm.coordinator.report_worker import ReportWorker, needs_reports
from farm.coordinator.staging import Staging
from farm.diffoscope import DiffoscopeLimits
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, envelope, recipe, sha
from tests.unit.farm.coordinator.test_service import KEYS, setup_build, upload


def disputed(session: Session, staging: Staging) -> str:
    build_id = setup_build(session, staging)
    for key, data in zip(KEYS[:3], (GOOD, GOOD, BAD), strict=True):
        upload(session, staging, key, data)
        env = envelope(key, recipe(), build_id, data)
        service.record_result(session, staging, build_id, key.keyid, env, NOW)
    return build_id


def test_missing_staged_blob_is_a_recorded_error(session: Session, tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = disputed(session, staging)
    staging.path_for(sha(BAD)).unlink()
    (row,) = reports.make_diff_reports(session, staging, build_id, tmp_path / "reports")
    assert row.status == "error"
    assert row.error is not None and "not in staging" in row.error
    assert (row.sha256_a, row.sha256_b) == (sha(GOOD), sha(BAD))
    # Stored, and not recomputed on a second call.
    assert reports.make_diff_reports(session, staging, build_id, tmp_path / "r2") == [row]
    with pytest.raises(NotFoundError):
        assert row.id is not None
        reports.report_file(session, row.id, "html")


def test_report_files_are_stored(session: Session, tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = disputed(session, staging)
    (row,) = reports.make_diff_reports(session, staging, build_id, tmp_path / "reports")
    assert row.status == "done", row.error
    assert row.id is not None
    assert reports.report_file(session, row.id, "html").is_file()
    assert reports.report_file(session, row.id, "json").is_file()


def test_agreeing_build_has_nothing_to_compare(session: Session, tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = setup_build(session, staging)
    for key in KEYS[:3]:
        upload(session, staging, key, GOOD)
        env = envelope(key, recipe(), build_id)
        service.record_result(session, staging, build_id, key.keyid, env, NOW)
    assert reports.make_diff_reports(session, staging, build_id, tmp_path / "reports") == []


def test_the_worker_makes_missing_reports_once_in_its_own_thread(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = disputed(session, staging)
    worker = ReportWorker(engine, staging, tmp_path / "reports", DiffoscopeLimits(timeout=60))
    # Decided and disputed with no report yet (the coordinator stopped before making it).
    assert worker.missing() == [build_id]
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, 0.05))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (worker.missing() or worker.pending()) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.submit(build_id)  # made already: made again stores no second row
        while worker.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert worker.missing() == []
    session.expire_all()
    (row,) = reports.diff_reports(session, build_id)
    assert row.status == "done", row.error


def test_only_disputed_or_upstream_differing_builds_need_reports() -> None:
    assert needs_reports("disputed", None)
    assert needs_reports("verified", False)
    assert not needs_reports("verified", True)
    assert not needs_reports("verified", None)
    assert not needs_reports("failed", None)
