"""Alembic's environment: runs on the connection ``farm.coordinator.db`` hands it.

There is no ``alembic.ini``: :func:`farm.coordinator.db.create_tables` builds the
configuration in code and passes an open connection in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from farm.coordinator import models as _models  # registers the tables

del _models

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a misconfigured caller
    raise RuntimeError("farm's migrations run on a connection given by farm.coordinator.db")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
