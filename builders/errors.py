"""Errors only the builder host raises, rooted at :class:`farm.errors.FarmError`.

The tree (the parents live in :mod:`farm.errors`)::

    FarmError
    ├── FetchError               a source or dependency not fetched or not matching its pin
    └── BuildError               a build that could not run to a result
        ├── ArchitectureError    an architecture this builder cannot build
        ├── SandboxError         the container could not be set up or cleaned up
        │   └── EngineError      this host's Docker Engine could not be reached or failed
        └── OutputError          an output that escapes, is a symlink, or is too large

Callers catch ``FarmError`` (or ``BuildError``); the command line turns it into one
line and exit status 1. A build that fails with :class:`EngineError` (or any error while
the engine does not answer) is signed as an ``infrastructure`` failure, not the build's
own (:data:`farm.result.FAILURE_KINDS`).
"""

from __future__ import annotations

from farm.errors import BuildError, FarmError

__all__ = ["ArchitectureError", "EngineError", "FetchError", "OutputError", "SandboxError"]


class FetchError(FarmError):
    """A source or dependency that cannot be fetched or does not match its pin."""


class ArchitectureError(BuildError):
    """An architecture this builder host cannot build."""


class SandboxError(BuildError):
    """The hermetic container could not be created, run or removed."""


class EngineError(SandboxError):
    """This host's Docker Engine could not be reached, or failed while it ran a build."""


class OutputError(BuildError):
    """An output that escapes the output directory, is a link, or exceeds a limit."""
