"""api.coordinator.metrics: builds, durations, agreement and ledger latency read from
the database at scrape time (a real SQLite database; no broker, so no queue depth)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.coordinator.metrics import DURATION_BUCKETS, coordinator_registry, histogram
from api.coordinator.runtime import make_runtime
from farm.coordinator.db import create_tables, make_engine, session_scope
from farm.coordinator.models import Attestation, Build, Builder
from farm.coordinator.settings import CoordinatorSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def scrape(tmp_path: Path, rows: list[object]) -> dict[str, float]:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        for row in rows:
            session.add(row)
    settings = CoordinatorSettings(db_url=db, staging_dir=tmp_path / "staging")
    runtime = make_runtime(settings, engine, lambda: T0)
    text = generate_latest(coordinator_registry(runtime)).decode()
    engine.dispose()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def build(bid: str, status: str, seconds: float | None) -> Build:
    return Build(
        id=bid,
        recipe_digest="sha256:" + "0" * 64,
        recipe={},
        name="demo",
        version="1",
        arch="amd64",
        quorum=3,
        status=status,
        created_at=T0,
        updated_at=T0,
        finished_at=None if seconds is None else T0 + timedelta(seconds=seconds),
    )


def builder(bid: str, done: int, agreed: int) -> Builder:
    return Builder(
        id=bid,
        hostname="h",
        arches=["amd64"],
        public_key={},
        enrolled_at=T0,
        builds_done=done,
        agreements=agreed,
    )


def test_histogram_is_cumulative() -> None:
    counts, total, n = histogram([0.5, 3, 3, 7000], DURATION_BUCKETS)
    assert (total, n) == (7006.5, 4)
    assert counts[0] == 1  # <= 1 s
    assert counts[1] == 3  # <= 5 s
    assert counts[-1] == 4  # <= 6 h


def test_empty_database_has_no_rate_and_empty_histograms(tmp_path: Path) -> None:
    got = scrape(tmp_path, [])
    assert math.isnan(got["farm_coordinator_agreement_rate"])
    assert got["farm_coordinator_build_duration_seconds_count"] == 0
    assert got["farm_coordinator_submit_to_commit_seconds_count"] == 0
    assert not any(k.startswith("farm_coordinator_queue_depth") for k in got)


def test_builds_by_status_durations_agreement_and_ledger_latency(tmp_path: Path) -> None:
    rows: list[object] = [
        build("b1", "verified", 40),
        build("b2", "verified", 200),
        build("b3", "disputed", 90),
        build("b4", "running", None),
        build("b5", "pending", None),
        builder("k1", 4, 4),
        builder("k2", 4, 2),
        builder("k3", 0, 0),
        Attestation(
            tx_id="t1",
            build_id="b1",
            status="committed",
            name="demo",
            version="1",
            arch="amd64",
            recipe_digest="sha256:" + "0" * 64,
            bundle={},
            submitted_at=T0 + timedelta(seconds=43),
        ),
    ]
    got = scrape(tmp_path, rows)
    assert got["farm_coordinator_builds{status=verified}"] == 2
    assert got["farm_coordinator_builds{status=disputed}"] == 1
    assert got["farm_coordinator_builds{status=running}"] == 1
    assert got["farm_coordinator_builds{status=pending}"] == 1
    assert got["farm_coordinator_build_duration_seconds_count"] == 3
    assert got["farm_coordinator_build_duration_seconds_sum"] == 330
    assert got["farm_coordinator_build_duration_seconds_bucket{le=60.0}"] == 1
    assert got["farm_coordinator_build_duration_seconds_bucket{le=120.0}"] == 2
    assert got["farm_coordinator_agreement_rate"] == 6 / 8
    assert got["farm_coordinator_builder_agreement_rate{builder=k2}"] == 0.5
    assert "farm_coordinator_builder_agreement_rate{builder=k3}" not in got
    assert got["farm_coordinator_attestations{status=committed}"] == 1
    assert got["farm_coordinator_submit_to_commit_seconds_count"] == 1
    assert got["farm_coordinator_submit_to_commit_seconds_sum"] == 3
