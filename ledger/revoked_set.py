"""The revoked set: what every co-signed checkpoint says about which artifacts are revoked.

A log entry proves that an artifact *was* revoked; nothing in an append-only log proves
that one was *not*, so a node that serves artifacts (the distribution node) could
simply leave a revoke entry out. Each checkpoint therefore also commits to the whole
set of revoked artifacts at its tree size, and a consumer asks for a proof of absence
against it.

``R(s)``: the distinct artifact sha256 digests (32 bytes) revoked by entries
``[0, s)``, sorted ascending as bytes. Its commitment is the RFC 6962 Merkle tree hash
of the list (leaf ``i`` = ``hash_leaf(R[i])``; the empty list hashes to
``sha256(b"")``), carried in the checkpoint as one extension line (C2SP
tlog-checkpoint allows extension lines after the root)::

    farm-revoked/v1 <count> <base64 root>

Every validator computes it from its own state, so honest validators sign the same
text; a checkpoint of this ledger without the line, or with a second one, is refused by
:func:`commitment_of`.

Proof that ``d`` is not in ``R`` (:class:`AbsenceProof`): the members next to where
``d`` would be, each with its index and inclusion proof: ``left`` the largest member
below ``d`` and ``right`` the smallest above it. Both present means adjacent indexes;
``left`` absent means ``d`` is below the first member (``right`` is member 0);
``right`` absent means ``d`` is above the last (``left`` is member count-1); both
absent only for the empty set. Because the leaves are sorted and each is proven at
its index, no member can sit between the two: :func:`verify_absent` checks exactly
that, and nothing else is needed.

Pure: no I/O. :mod:`ledger.verify` re-exports what a consumer needs.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from farm.checkpoint import Checkpoint
from farm.merkle import EMPTY_ROOT, MerkleLog, hash_leaf, verify_inclusion
from ledger.errors import CheckpointError, ProofError

__all__ = [
    "EXTENSION_PREFIX",
    "AbsenceProof",
    "Neighbor",
    "RevokedSet",
    "commitment_of",
    "revoked_at",
    "verify_absent",
]

EXTENSION_PREFIX = "farm-revoked/v1"
_LINE = re.compile(r"^farm-revoked/v1 (0|[1-9][0-9]{0,15}) ([A-Za-z0-9+/]{43}=)$")
DIGEST_SIZE = 32


def _digest(value: bytes | str) -> bytes:
    """32 raw bytes of an artifact sha256 given raw or as hex (``sha256:`` allowed)."""
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.removeprefix("sha256:"))
        except ValueError:
            raise ProofError(f"artifact digest {value!r} is not hex") from None
    else:
        raw = value
    if len(raw) != DIGEST_SIZE:
        raise ProofError(f"artifact digest is {len(raw)} bytes, want {DIGEST_SIZE}")
    return raw


@dataclass(frozen=True)
class Neighbor:
    """A member of the revoked set, at ``index``, with its inclusion proof."""

    index: int
    digest: bytes
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sha256": self.digest.hex(),
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Neighbor:
        """Parse; raises ProofError on anything malformed."""
        try:
            index = value["index"]
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError("index is not an integer")
            digest = _digest(str(value["sha256"]))
            path = tuple(bytes.fromhex(h) for h in value["path"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError(f"malformed revoked-set neighbour: {exc}") from None
        return cls(index, digest, path)


@dataclass(frozen=True)
class AbsenceProof:
    """Proof that a digest is not in a revoked set of ``count`` members (module docs)."""

    count: int
    left: Neighbor | None
    right: Neighbor | None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "left": None if self.left is None else self.left.to_json(),
            "right": None if self.right is None else self.right.to_json(),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AbsenceProof:
        """Parse; raises ProofError on anything malformed."""
        try:
            count = value["count"]
            if not isinstance(count, int) or isinstance(count, bool):
                raise TypeError("count is not an integer")
            left, right = value["left"], value["right"]
        except (KeyError, TypeError) as exc:
            raise ProofError(f"malformed absence proof: {exc}") from None
        return cls(
            count,
            None if left is None else Neighbor.from_json(left),
            None if right is None else Neighbor.from_json(right),
        )


class RevokedSet:
    """The sorted revoked digests of one tree size, with their Merkle tree."""

    def __init__(self, digests: Iterable[bytes | str] = ()) -> None:
        self._sorted: list[bytes] = sorted({_digest(d) for d in digests})
        self._tree: MerkleLog | None = None

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes | str):
            return False
        raw = _digest(digest)
        i = bisect.bisect_left(self._sorted, raw)
        return i < len(self._sorted) and self._sorted[i] == raw

    def add(self, digest: bytes | str) -> None:
        """Add one digest (no-op if present)."""
        raw = _digest(digest)
        i = bisect.bisect_left(self._sorted, raw)
        if i == len(self._sorted) or self._sorted[i] != raw:
            self._sorted.insert(i, raw)
            self._tree = None

    def _merkle(self) -> MerkleLog:
        if self._tree is None:
            self._tree = MerkleLog(hash_leaf(d) for d in self._sorted)
        return self._tree

    def root(self) -> bytes:
        """RFC 6962 tree hash of the sorted digests (``sha256(b"")`` when empty)."""
        if not self._sorted:
            return EMPTY_ROOT
        return self._merkle().root()

    def extension(self) -> str:
        """The checkpoint extension line committing to this set."""
        root = base64.b64encode(self.root()).decode("ascii")
        return f"{EXTENSION_PREFIX} {len(self._sorted)} {root}"

    def _neighbor(self, index: int) -> Neighbor:
        return Neighbor(index, self._sorted[index], self._merkle().inclusion_proof(index))

    def absence_proof(self, digest: bytes | str) -> AbsenceProof:
        """Proof that ``digest`` is not revoked. Raises ProofError if it is."""
        raw = _digest(digest)
        i = bisect.bisect_left(self._sorted, raw)
        if i < len(self._sorted) and self._sorted[i] == raw:
            raise ProofError(f"sha256:{raw.hex()[:12]}… is revoked: no proof of absence")
        left = self._neighbor(i - 1) if i > 0 else None
        right = self._neighbor(i) if i < len(self._sorted) else None
        return AbsenceProof(len(self._sorted), left, right)


def commitment_of(checkpoint: Checkpoint) -> tuple[int, bytes]:
    """(count, root) of the revoked set a checkpoint commits to.

    Raises:
        CheckpointError: the checkpoint has no ``farm-revoked/v1`` line, has two, or
            one that is malformed.
    """
    lines = [e for e in checkpoint.extensions if e.split(" ", 1)[0] == EXTENSION_PREFIX]
    if len(lines) != 1:
        what = "no" if not lines else f"{len(lines)}"
        raise CheckpointError(
            f"checkpoint of size {checkpoint.size} has {what} {EXTENSION_PREFIX} lines, "
            "want exactly one (it commits to the revoked artifacts)"
        )
    m = _LINE.fullmatch(lines[0])
    if m is None:
        raise CheckpointError(f"malformed revoked-set line {lines[0]!r}")
    try:
        root = base64.b64decode(m.group(2), validate=True)
    except binascii.Error:
        raise CheckpointError(f"malformed revoked-set root in {lines[0]!r}") from None
    if base64.b64encode(root).decode("ascii") != m.group(2):
        raise CheckpointError(f"revoked-set root in {lines[0]!r} is not canonical base64")
    return int(m.group(1)), root


def _check_member(n: Neighbor, count: int, root: bytes, side: str) -> None:
    try:
        verify_inclusion(hash_leaf(n.digest), n.index, count, n.path, root)
    except ProofError as exc:
        raise ProofError(f"the {side} neighbour is not in the revoked set: {exc}") from None


def verify_absent(digest: bytes | str, count: int, root: bytes, proof: AbsenceProof) -> None:
    """Check that ``digest`` is not in the revoked set of ``count`` members whose tree
    hash is ``root`` (as :func:`commitment_of` read them from a trusted checkpoint).

    Raises:
        ProofError: naming what does not hold: the proof is for another set size, a
            neighbour is not a member at its index, they are not adjacent or not on
            either side of ``digest``, or the digest is one of them.
    """
    raw = _digest(digest)
    if proof.count != count:
        raise ProofError(f"the absence proof is for {proof.count} revocations, not {count}")
    left, right = proof.left, proof.right
    if count == 0:
        if left is not None or right is not None:
            raise ProofError("an empty revoked set has no neighbours")
        if root != EMPTY_ROOT:
            raise ProofError("the revoked set is empty but its root is not the empty hash")
        return
    if left is None and right is None:
        raise ProofError(f"no neighbours given in a revoked set of {count}")
    if left is not None:
        _check_member(left, count, root, "left")
        if not left.digest < raw:
            raise ProofError("the left neighbour is not below the digest")
    if right is not None:
        _check_member(right, count, root, "right")
        if not raw < right.digest:
            raise ProofError("the right neighbour is not above the digest")
    if left is None and right is not None and right.index != 0:
        raise ProofError("with no left neighbour the right one must be the first member")
    if right is None and left is not None and left.index != count - 1:
        raise ProofError("with no right neighbour the left one must be the last member")
    if left is not None and right is not None and right.index != left.index + 1:
        raise ProofError(
            f"neighbours at {left.index} and {right.index} are not adjacent: a member "
            "could sit between them"
        )


def revoked_at(revocations: Mapping[str, int], size: int) -> RevokedSet:
    """The revoked set at tree ``size`` from sha256 hex → index of its revoke entry."""
    return RevokedSet(sha for sha, index in revocations.items() if index < size)
