"""Recipes written by the farm: ``farm recipe new NAME==VERSION``.

Read in pipeline order:

- :mod:`farm.infer.index` — PEP 691 project pages as values; the index as of a moment.
- :mod:`farm.infer.pypi` — the simple API over HTTP (the only network I/O here).
- :mod:`farm.infer.artifacts` — what the sdist and upstream's wheel say (Generator,
  zip times, mtimes, ``[build-system]``).
- :mod:`farm.infer.timing` — SOURCE_DATE_EPOCH and TZ candidates from those times.
- :mod:`farm.infer.strategies` — the backend and its candidate builds, best guess first.
- :mod:`farm.infer.resolve` — build dependencies pinned as of upstream's upload time.
- :mod:`farm.infer.writer` — a candidate as a recipe, its ``reproducibility`` text, YAML.
- :mod:`farm.infer.compare` — how close a rebuild came (which members differ).
- :mod:`farm.infer.engine` — the stages wired; the world through :mod:`farm.infer.ports`.
- :mod:`farm.infer.closure` — the dependency closure of pinned releases for the builder
  image (``farm recipe new -r``), each release then inferred by the engine.

The core imports no host package: the command line wires real downloads
(``builders.fetch``) and real hermetic rebuilds (``builders.local_build``) into it.
"""

from __future__ import annotations

from farm.infer.engine import Attempt, Inference, infer
from farm.infer.errors import InferError, NoMatchError

__all__ = ["Attempt", "InferError", "Inference", "NoMatchError", "infer"]
