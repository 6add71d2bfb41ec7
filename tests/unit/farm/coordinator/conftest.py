"""A coordinator database per test: SQLite, and a real PostgreSQL where it is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from farm.coordinator.db import create_tables, make_engine
from tests.support.postgres import have_postgres, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL server for the whole session."""
    assert have_postgres(), "initdb/pg_ctl not installed (deploy/setup.sh installs postgresql)"
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty coordinator database."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    else:
        eng = make_engine(request.getfixturevalue("postgres_url"))
        SQLModel.metadata.drop_all(eng)
    create_tables(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the fresh database."""
    with Session(engine, expire_on_commit=False) as s:
        yield s
