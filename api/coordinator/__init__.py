"""The coordinator's HTTP surface: the REST API under ``/v1`` and the operator dashboard.

:mod:`.app` builds the FastAPI app; :mod:`.runtime` owns the process's services
(scheduler, ledger publisher, report worker, recipe follower) and their lifecycle;
:mod:`.deps` is what routes depend on (session, operator token, signed builder
request); :mod:`.routes` registers the routes, one module per domain; :mod:`.errors`
maps farm's errors to HTTP; :mod:`.dashboard` renders HTML; :mod:`._changes` turns
database commits into events a long-poll waits for. The service layer they call is
:mod:`farm.coordinator`.
"""

__all__: list[str] = []
