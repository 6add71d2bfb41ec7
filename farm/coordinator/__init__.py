"""The coordinator: enrolled builders, builds, results and their verdicts, in a database.

Read in order: ``models`` (tables and wire schemas), ``db`` (engine and sessions),
``auth`` (operator tokens and signed builder requests), ``staging`` (uploaded outputs),
``service`` (enrollment, results intake, the verdict), ``scheduler`` (requested builds
to builders, replacements, the verdict; ``celery_dispatch`` is its queue),
``recipes_repo`` (the followed recipe repository), ``reports`` (diffoscope reports
of disputed builds), ``settings``; ``client`` is the HTTP client builders and
operators use. The HTTP API itself is ``api.coordinator``.
"""

from __future__ import annotations

__all__ = [
    "auth",
    "celery_dispatch",
    "client",
    "db",
    "errors",
    "models",
    "recipes_repo",
    "reports",
    "scheduler",
    "service",
    "settings",
    "staging",
]
