"""The throwaway PostgreSQL of benchmarks and tests, on a real server: a cluster that
answers and is gone afterwards, scratch databases that start empty and are dropped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from farm.cluster import free_port
from farm.coordinator.db import create_tables, make_engine
from farm.coordinator.throwaway_pg import (
    have_postgres,
    scratch_database,
    server_url,
    throwaway_postgres,
)
from farm.errors import ConfigError


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    assert have_postgres(), "initdb/pg_ctl not installed (deploy/setup.sh installs postgresql)"
    with throwaway_postgres() as url:
        yield url


def _databases(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


def test_throwaway_cluster_answers_and_is_gone_after() -> None:
    with throwaway_postgres() as url:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    with pytest.raises(OperationalError):
        engine.connect()
    engine.dispose()


def test_scratch_database_is_empty_usable_and_dropped(server: str) -> None:
    before = _databases(server)
    with scratch_database(server, prefix="farm_test") as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("farm_test_") and name not in before
        engine = make_engine(url)
        assert inspect(engine).get_table_names() == []
        create_tables(engine)
        assert "attestation" in inspect(engine).get_table_names()
        # A connection still open when the block ends does not stop the drop.
        with engine.connect():
            assert name in _databases(server)
    engine.dispose()
    assert _databases(server) == before


def test_two_scratch_databases_are_distinct(server: str) -> None:
    with scratch_database(server) as a, scratch_database(server) as b:
        assert a != b


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///farm.db", "not a PostgreSQL URL"),
        ("nonsense", "not a database URL"),
    ],
)
def test_a_url_that_is_not_postgresql_is_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        server_url(url)
    with pytest.raises(ConfigError, match=message), scratch_database(url):
        pass


def test_an_unreachable_server_says_so() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with (
        pytest.raises(ConfigError, match=r"cannot create a scratch database on .*127\.0\.0\.1"),
        scratch_database(url),
    ):
        pass
