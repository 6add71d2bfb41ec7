"""The coordinator: enrolled builders, builds, results and their verdicts, in a database.

Read in order: ``models`` (tables and wire schemas), ``db`` (engine and sessions),
``auth`` (operator tokens and signed builder requests), ``staging`` (uploaded outputs),
``service`` (enrollment, results intake, the verdict), ``scheduler`` (requested builds
to builders, replacements, the verdict; ``celery_dispatch`` is its queue),
``recipes_repo`` (the followed recipe repository), ``reports`` (diffoscope reports
of disputed builds) and ``upstream`` (of rebuilds that differ from upstream's
artifact), ``attestations`` and ``revocations`` (what the ledger committed, and
withdrawals of it), ``operator_txs`` (operator-signed transactions checked and
relayed: the coordinator holds no operator key), ``ledger_client`` (transactions to,
and reads from, the validators), ``settings``; ``client`` is the HTTP client builders
and operators use; ``throwaway_pg`` starts a local PostgreSQL for benchmarks and tests.
The schema's history is ``migrations`` (Alembic). The HTTP API is ``api.coordinator.app``.
"""

from __future__ import annotations

__all__ = [
    "attestations",
    "auth",
    "celery_dispatch",
    "client",
    "db",
    "errors",
    "ledger_client",
    "models",
    "operator_txs",
    "recipes_repo",
    "reports",
    "revocations",
    "scheduler",
    "service",
    "settings",
    "staging",
    "throwaway_pg",
    "upstream",
]
