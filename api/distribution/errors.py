"""Errors of the distribution node, rooted at :class:`farm.errors.FarmError`.

The tree::

    FarmError
    └── DistError           anything the distribution node refuses or cannot do
        ├── FollowError     a validator's answer that does not check out, or no validator
        └── MirrorError     a blob that cannot be fetched, or whose bytes are not its digest

The HTTP layer answers the reader's own mistakes (unknown artifact, revoked artifact,
bad range) itself; these errors are about what the node is told by others.
"""

from __future__ import annotations

from farm.errors import FarmError

__all__ = ["DistError", "FollowError", "MirrorError"]


class DistError(FarmError):
    """Something the distribution node refuses or cannot do."""


class FollowError(DistError):
    """A block, certificate or checkpoint from a validator that does not verify, or no
    validator that answers."""


class MirrorError(DistError):
    """A blob that cannot be fetched from the coordinator, or whose bytes do not hash to
    the committed digest (or overrun the size the builders signed)."""
