"""A throwaway PostgreSQL server in a temporary directory (for coordinator tests).

The server itself is the product's (:mod:`farm.coordinator.throwaway_pg`, which ``farm
bench api`` uses too); the names here are what the tests' fixtures import.
"""

from __future__ import annotations

from farm.coordinator.throwaway_pg import have_postgres
from farm.coordinator.throwaway_pg import throwaway_postgres as postgres_server

__all__ = ["have_postgres", "postgres_server"]
