"""Alembic migrations of the coordinator's database (``versions/``, applied by ``db``).

``farm.coordinator.db.create_tables`` upgrades every database to the newest revision at
start; the chain starts at ``0001``, the schema as it was before migrations existed.
Each revision is plain ``op`` calls on portable types (SQLite and PostgreSQL).
"""
