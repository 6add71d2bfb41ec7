"""Schema migrations on SQLite and a real PostgreSQL: data survives, head equals the models."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, select

from farm.coordinator.db import FIRST_REVISION, MIGRATIONS, create_tables, make_engine
from farm.coordinator.db import schema_revision as revision_of
from farm.coordinator.errors import NotFoundError
from farm.coordinator.models import (
    Attestation,
    Build,
    Builder,
    DiffReport,
    Revocation,
)
from farm.coordinator.revocations import request_revocation
from farm.errors import ConfigError
from farm.transactions import RevokeTx, decode_tx, make_revoke
from tests.unit.farm.coordinator._ledger import CHAIN
from tests.unit.farm.coordinator.test_ledger_client import OPERATOR

_SCRIPTS = Config()
_SCRIPTS.set_main_option("script_location", MIGRATIONS)
HEAD = ScriptDirectory.from_config(_SCRIPTS).get_current_head()
T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "ab" * 32


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = conn
    return config


def _drop_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        names = inspect(conn).get_table_names()
        if engine.dialect.name == "postgresql":
            for name in names:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        else:
            SQLModel.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind (nothing, not even ``alembic_version``)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"))
        _drop_everything(engine)
    yield engine
    if request.param == "postgresql":
        _drop_everything(engine)
    engine.dispose()


def _at_first_revision_with_data(engine: Engine) -> None:
    """The schema of the first revision, with rows a running farm would have made."""
    with engine.begin() as conn:
        command.upgrade(_config(conn), FIRST_REVISION)
        ts = T.replace(tzinfo=None)
        conn.execute(
            text(
                "INSERT INTO builder (id, hostname, arches, public_key, enrolled_at, approved,"
                " builds_done, agreements, ledger_index) VALUES ('b1', 'host-1', :arches,"
                " :key, :ts, true, 4, 3, 0)"
            ),
            {"arches": '["amd64"]', "key": '{"keytype": "ed25519"}', "ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO build (id, recipe_digest, recipe, name, version, arch, quorum,"
                " builders, status, verdict, retries, created_at, updated_at, origin, managed)"
                " VALUES ('build-1', :digest, '{}', 'demo', '1.0', 'amd64', 3, '[\"b1\"]',"
                " 'verified', :verdict, 1, :ts, :ts, 'api', true)"
            ),
            {"digest": f"sha256:{SHA}", "verdict": '{"status": "verified"}', "ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO attestation (tx_id, build_id, status, name, version, arch,"
                " recipe_digest, bundle, ledger_index, inclusion_proof, submitted_at)"
                " VALUES (:tx, 'build-1', 'committed', 'demo', '1.0', 'amd64', :digest,"
                " '{}', 3, '[]', :ts)"
            ),
            {"tx": "cd" * 32, "digest": f"sha256:{SHA}", "ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO attestationartifact (tx_id, name, sha256) VALUES (:tx, 'a.whl', :sha)"
            ),
            {"tx": "cd" * 32, "sha": SHA},
        )
        conn.execute(
            text(
                "INSERT INTO diff_report (build_id, output, sha256_a, sha256_b, status,"
                " created_at) VALUES ('build-1', 'a.whl', :sha, :sha, 'done', :ts)"
            ),
            {"sha": SHA, "ts": ts},
        )


def _check_data(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session:
        builder = session.get(Builder, "b1")
        assert builder is not None and builder.arches == ["amd64"] and builder.approved
        assert builder.enrolled_at == T and builder.builds_done == 4
        build = session.get(Build, "build-1")
        assert build is not None and build.verdict == {"status": "verified"}
        assert build.managed and build.retries == 1 and build.created_at == T
        att = session.get(Attestation, "cd" * 32)
        assert att is not None and att.ledger_index == 3 and att.submitted_at == T
        (report,) = session.exec(select(DiffReport)).all()
        assert report.against == "builders" and report.sha256_a == SHA
        # The new table works on the old data: the attested artifact can be revoked.
        row = request_revocation(session, *_revoke(SHA), "op", T)
        assert row.id is not None and session.get(Revocation, row.id) is not None
        with pytest.raises(NotFoundError):
            request_revocation(session, *_revoke("ef" * 32), "op", T)
        # Migration 0008: builders carry the domain and the enroll tx the operator signed.
        assert builder.domain is None and builder.enroll_tx is None
        builder.domain = "site-b1"
        session.add(builder)
        session.commit()
        session.refresh(builder)
        assert builder.domain == "site-b1"


def _revoke(sha: str) -> tuple[RevokeTx, bytes]:
    data = make_revoke(OPERATOR, sha, "r", chain=CHAIN)
    tx = decode_tx(data)
    assert isinstance(tx, RevokeTx)
    return tx, data


def test_a_database_at_the_first_revision_upgrades_with_its_data(empty: Engine) -> None:
    _at_first_revision_with_data(empty)
    assert revision_of(empty) == FIRST_REVISION
    assert "revocation" not in inspect(empty).get_table_names()
    create_tables(empty)
    assert revision_of(empty) == HEAD
    _check_data(empty)
    create_tables(empty)  # at head: nothing to do, nothing lost
    _check_data_again = revision_of(empty)
    assert _check_data_again == HEAD


def test_a_database_made_before_migrations_is_stamped_then_upgraded(empty: Engine) -> None:
    _at_first_revision_with_data(empty)
    with empty.begin() as conn:  # what create_all made before this session: no version table
        conn.execute(text("DROP TABLE alembic_version"))
    assert revision_of(empty) is None
    create_tables(empty)
    assert revision_of(empty) == HEAD
    _check_data(empty)


def test_head_is_exactly_the_models(empty: Engine) -> None:
    create_tables(empty)
    with empty.connect() as conn, warnings.catch_warnings():
        # Expression indexes cannot be reflected on every backend; checked by name below.
        warnings.filterwarnings("ignore", "autogenerate skipping", UserWarning)
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    expression_indexes = {
        str(i.name)
        for t in SQLModel.metadata.sorted_tables
        for i in t.indexes
        if any(not hasattr(e, "name") for e in i.expressions)
    }
    approximate = [
        d
        for d in diffs
        if d[0] in ("add_index", "remove_index") and str(d[1].name) in expression_indexes
    ]
    assert [d for d in diffs if d not in approximate] == []
    insp = inspect(empty)
    for table in SQLModel.metadata.sorted_tables:
        have = {i["name"] for i in insp.get_indexes(table.name)}
        want = {str(i.name) for i in table.indexes}
        assert want <= have, (table.name, want - have)


def test_every_revision_goes_down_and_up_again(empty: Engine) -> None:
    create_tables(empty)
    with empty.begin() as conn:
        command.downgrade(_config(conn), "base")
    assert set(inspect(empty).get_table_names()) <= {"alembic_version"}
    create_tables(empty)
    assert revision_of(empty) == HEAD


def test_two_processes_starting_together_both_succeed(empty: Engine) -> None:
    engines = [make_engine(empty.url.render_as_string(hide_password=False)) for _ in range(3)]
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            create_tables(engine)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert revision_of(empty) == HEAD
    for e in engines:
        e.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    import farm.coordinator.migrations as pkg

    versions = Path(pkg.__file__).parent / "versions"
    names = sorted(p.name for p in versions.glob("0*.py"))
    assert names[0] == "0001_initial.py" and len(names) >= 2
    assert (Path(pkg.__file__).parent / "env.py").is_file()


def test_a_database_from_a_newer_farm_is_refused_clearly(empty: Engine) -> None:
    create_tables(empty)
    with empty.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match=r"cannot migrate the coordinator's database: .*9999"):
        create_tables(empty)
