"""The ledger's append-only log: an RFC 6962 / RFC 9162 Merkle tree and its proofs.

Every committed ledger transaction is one leaf. The hashes are those of RFC 9162
section 2.1.1 (identical to RFC 6962)::

    leaf  = SHA-256(0x00 || data)
    node  = SHA-256(0x01 || left || right)
    empty = SHA-256("")

Invariants:

- :class:`MerkleLog` only ever grows; the root, inclusion proofs and consistency
  proofs for *any* earlier size stay available and never change.
- The log state is exactly its sequence of leaf hashes: storage keeps that list, and
  ``MerkleLog(stored_hashes)`` rebuilds the same tree.
- The verifiers (:func:`verify_inclusion`, :func:`verify_consistency`) are pure: they
  take hashes and sizes, follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step,
  return ``None`` on success and raise :class:`~farm.errors.ProofError` saying why
  otherwise. They need no log and no server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from farm.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleLog",
    "consistency_proof_length",
    "hash_children",
    "hash_leaf",
    "inclusion_proof_length",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def hash_leaf(data: bytes) -> bytes:
    """The leaf hash of one entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a whole sequence of leaf hashes.

    One pass with a stack of full-subtree hashes, O(n) hashing, O(log n) memory.
    Raises ProofError if a leaf hash is not 32 bytes.
    """
    # stack[i] = (height, hash) of completed full subtrees, heights strictly decreasing.
    stack: list[tuple[int, bytes]] = []
    for i, leaf in enumerate(leaf_hashes):
        _check_hash(leaf, f"leaf hash {i}")
        height, node = 0, leaf
        while stack and stack[-1][0] == height:
            node = hash_children(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
    if not stack:
        return EMPTY_ROOT
    node = stack.pop()[1]
    while stack:
        node = hash_children(stack.pop()[1], node)
    return node


class MerkleLog:
    """An in-memory, append-only RFC 6962 log over leaf hashes.

    It keeps every full-subtree hash (``levels[h][i]`` is the hash of leaves
    ``[i * 2**h, (i + 1) * 2**h)``), about two hashes per leaf. Appending is O(1)
    amortised (O(log n) worst case); a root, an inclusion proof or a consistency proof
    for any size up to the current one costs O(log² n) hashing at worst, usually less.

    Not safe for concurrent mutation; callers that share one log serialise ``append``.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        """Rebuild a log from stored leaf hashes, in order (each 32 bytes)."""
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def size(self) -> int:
        """The number of leaves in the log."""
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; return its index. Raises ProofError if not 32 bytes."""
        _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        levels[0].append(leaf_hash)
        index = len(levels[0]) - 1
        height, node = 0, leaf_hash
        # A full subtree completes at every height where the new count is even.
        while len(levels[height]) % 2 == 0:
            node = hash_children(levels[height][-2], node)
            height += 1
            if height == len(levels):
                levels.append([])
            levels[height].append(node)
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``. Raises ProofError if out of range."""
        self._check_index(index, self.size)
        return self._levels[0][index]

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> tuple[bytes, ...]:
        """Leaf hashes ``[start, end)`` in order: the storage form of the log."""
        return tuple(self._levels[0][start:end])

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of the first ``size`` leaves (default: all).

        Raises ProofError if ``size`` is negative or larger than the log.
        """
        size = self._check_size(size)
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[bytes, ...]:
        """The RFC 9162 inclusion proof (PATH, section 2.1.3.1) of leaf ``index``
        in the tree of the first ``size`` leaves (default: all), lowest level first.

        Raises ProofError if ``size`` exceeds the log or ``index`` is not below it.
        """
        size = self._check_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _largest_power_of_two_below(n)
            if m < k:
                path.append(self._range_hash(start + k, start + n))
                n = k
            else:
                path.append(self._range_hash(start, start + k))
                start, n, m = start + k, n - k, m - k
        path.reverse()
        return tuple(path)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> tuple[bytes, ...]:
        """The RFC 9162 consistency proof (PROOF / SUBPROOF, section 2.1.4.1) that the
        tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` (default:
        all). Empty when ``old_size`` is 0 or equals ``new_size``.

        Raises ProofError unless ``0 <= old_size <= new_size <= len(self)``.
        """
        new_size = self._check_size(new_size)
        if old_size < 0 or old_size > new_size:
            raise ProofError(f"old size {old_size} is not within 0..{new_size}")
        if old_size in (0, new_size):
            return ()
        path: list[bytes] = []
        start, n, m, whole = 0, new_size, old_size, True
        while m != n:
            k = _largest_power_of_two_below(n)
            if m <= k:
                path.append(self._range_hash(start + k, start + n))
                n = k
            else:
                path.append(self._range_hash(start, start + k))
                start, n, m, whole = start + k, n - k, m - k, False
        if not whole:
            path.append(self._range_hash(start, start + n))
        path.reverse()
        return tuple(path)

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)``, where ``start`` is a multiple of the largest
        power of two not above ``end - start`` (true for every range the RFC recursion
        visits). Full subtrees come from the cache; only the right border is hashed.
        """
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        # Split into full subtrees from the left, then fold them from the right.
        parts: list[bytes] = []
        while n > 0:
            height = n.bit_length() - 1
            parts.append(self._levels[height][start >> height])
            start += 1 << height
            n -= 1 << height
        node = parts.pop()
        while parts:
            node = hash_children(parts.pop(), node)
        return node

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if size < 0 or size > self.size:
            raise ProofError(f"tree size {size} is not within 0..{self.size}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if index < 0 or index >= size:
            raise ProofError(f"leaf index {index} out of range for tree size {size}")


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf ``index`` in a tree of ``size`` has.

    The path splits where the paths to ``index`` and ``size - 1`` diverge: below it one
    sibling per level, above it one left sibling per set bit. Requires 0 <= index < size.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """How many hashes the consistency proof from ``old_size`` to ``new_size`` has
    (0 when ``old_size`` is 0 or equals ``new_size``). Requires 0 <= old <= new.
    """
    if old_size in (0, new_size):
        return 0
    shift = ((old_size & -old_size).bit_length()) - 1  # trailing zero bits of old_size
    inner = (((old_size - 1) ^ (new_size - 1)).bit_length()) - shift
    border = ((old_size - 1) >> (inner + shift)).bit_count()
    seeded = 0 if old_size == 1 << shift else 1
    return seeded + inner + border


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose
    root is ``root_hash``, by the algorithm of RFC 9162 section 2.1.3.2.

    Raises ProofError naming the reason: a hash of the wrong length, an index out of
    range, a proof of the wrong length, or a computed root that does not match.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root_hash, "root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {i}")
    if size < 0 or index < 0 or index >= size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof for leaf {index} in tree size {size} has {len(proof)} "
            f"hashes, want {want}"
        )

    # RFC 9162 2.1.3.2, steps 2-5.
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root_hash:
        raise ProofError(
            f"root mismatch: inclusion proof for leaf {index} in tree size {size} gives "
            f"{r.hex()}, want {root_hash.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with root ``old_root`` is a prefix of
    the tree of ``new_size`` leaves with root ``new_root``, by RFC 9162 section 2.1.4.2.

    Edge cases, all fail-closed: equal sizes need an empty proof and equal roots; an
    old size of 0 needs an empty proof and ``old_root`` equal to the empty-tree hash.
    Raises ProofError naming the reason otherwise (sizes out of order, a hash of the
    wrong length, a proof of the wrong length, either root mismatching).
    """
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof hash {i}")
    if old_size < 0 or old_size > new_size:
        raise ProofError(f"old tree size {old_size} is not within 0..{new_size}")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    # RFC 9162 2.1.4.2, step 1.
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    want = consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} has {len(proof)} "
            f"hashes, want {want}"
        )
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise ProofError(
            f"root mismatch: consistency proof gives {fr.hex()} for old size {old_size}, "
            f"want {old_root.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"root mismatch: consistency proof gives {sr.hex()} for new size {new_size}, "
            f"want {new_root.hex()}"
        )


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """The cases RFC 9162 leaves out: equal sizes, and an empty old tree."""
    if proof:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} must be empty, "
            f"has {len(proof)} hashes"
        )
    if old_size == new_size and old_root != new_root:
        raise ProofError(
            f"root mismatch: tree size {old_size} has two roots "
            f"{old_root.hex()} and {new_root.hex()}"
        )
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError(f"root mismatch: the empty tree's root is not {old_root.hex()}")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 2-7 (for 0 < old < new, non-empty proof): the old and new
    roots the proof implies. Raises ProofError if the proof does not end at the root.
    """
    # Step 2: a complete old tree is its own first node.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Steps 5-6.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7 (the root comparisons are the caller's).
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return fr, sr
