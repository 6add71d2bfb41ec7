"""The builder host: fetch pinned sources, run the hermetic build, sign the result.

Pipeline order: :mod:`builders.identity` → :mod:`builders.fetch` →
:mod:`builders.runner` → :mod:`builders.outputs` → :mod:`builders.build` (wires them)
→ :mod:`builders.tasks` (the Celery edge).
"""

__all__: list[str] = []
