"""``farm bench api`` on PostgreSQL queries tables in the state a running server keeps
them in: planner statistics and visibility map up to date, as autovacuum leaves them,
not the transient state right after a bulk load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from farm.bench.api_load import analyze, make_attestations, store_attestations
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.throwaway_pg import have_postgres, scratch_database, throwaway_postgres

COUNT = 40


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    assert have_postgres(), "initdb/pg_ctl not installed (deploy/setup.sh installs postgresql)"
    with throwaway_postgres() as url:
        yield url


def test_stored_attestations_are_vacuumed_and_analyzed(server: str) -> None:
    made, builders, _ = make_attestations(COUNT, workers=1)
    with scratch_database(server) as url:
        engine = make_engine(url)
        try:
            create_tables(engine)
            store_attestations(engine, made, builders)
            analyze(engine)
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
                        " AS done FROM pg_stat_user_tables"
                        " WHERE relname IN ('attestation', 'attestationartifact')"
                    )
                ).all()
                stats = {row.relname: row.done for row in rows}
                # The planner knows how many rows there are (a fresh table: it guesses).
                estimate = conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE relname = 'attestation'")
                ).scalar_one()
        finally:
            engine.dispose()
    assert stats == {"attestation": True, "attestationartifact": True}
    assert estimate == COUNT
