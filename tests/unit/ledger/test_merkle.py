"""The Merkle log against RFC 6962 test vectors, an RFC reference, and properties."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.merkle import (
    EMPTY_ROOT,
    MerkleLog,
    consistency_proof_length,
    hash_children,
    hash_leaf,
    inclusion_proof_length,
    root,
    verify_consistency,
    verify_inclusion,
)
from ledger.errors import ProofError


def h(hex_digest: str) -> bytes:
    raw = bytes.fromhex(hex_digest)
    assert len(raw) == 32
    return raw


# The RFC 6962 vectors of Certificate Transparency, Trillian and transparency-dev/merkle
# (proof/verify_test.go): eight leaves, the roots of sizes 1..8, and known proofs.
LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# (leaf number counted from 1, tree size, proof) as in the Go vectors.
INCLUSION_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def log8() -> MerkleLog:
    return MerkleLog(hash_leaf(leaf) for leaf in LEAVES)


# --- an independent reference: RFC 9162 sections 2.1.1, 2.1.3.1, 2.1.4.1 verbatim ----------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- hashing and known answers ------------------------------------------------------------


def test_hash_functions_use_the_rfc_domain_prefixes() -> None:
    assert h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert hash_leaf(b"") == ROOTS[0]
    assert hash_leaf(b"x") == hashlib.sha256(b"\x00x").digest()
    assert hash_children(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_empty_log_has_the_empty_root() -> None:
    assert MerkleLog().root() == EMPTY_ROOT
    assert root([]) == EMPTY_ROOT
    assert len(MerkleLog()) == 0


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(log8: MerkleLog, size: int) -> None:
    assert log8.root(size) == ROOTS[size - 1]
    assert root([hash_leaf(leaf) for leaf in LEAVES[:size]]) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_VECTORS)
def test_known_inclusion_proofs(log8: MerkleLog, leaf: int, size: int, proof: list[bytes]) -> None:
    assert list(log8.inclusion_proof(leaf - 1, size)) == proof
    verify_inclusion(hash_leaf(LEAVES[leaf - 1]), leaf - 1, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_known_consistency_proofs(log8: MerkleLog, old: int, new: int, proof: list[bytes]) -> None:
    assert list(log8.consistency_proof(old, new)) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


# --- corrupted proofs, after transparency-dev/merkle's corruptInclusionProof --------------


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root_hash: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", index - 1, size, proof, root_hash, leaf),
        ("index + 1", index + 1, size, proof, root_hash, leaf),
        ("index ^ 2", index ^ 2, size, proof, root_hash, leaf),
        ("size * 2", index, size * 2, proof, root_hash, leaf),
        ("size // 2", index, size // 2, proof, root_hash, leaf),
        ("wrong leaf", index, size, proof, root_hash, SOME_HASH),
        ("empty root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing root", index, size, [*proof, root_hash], root_hash, leaf),
        ("preceding root", index, size, [root_hash, *proof], root_hash, leaf),
        ("trailing short", index, size, [*proof, b""], root_hash, leaf),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((f"proof[{i}] bit 3 flipped", index, size, flipped, root_hash, leaf))
    if proof:
        probes.append(("truncated", index, size, proof[:-1], root_hash, leaf))
    if len(proof) > 1:
        probes.append(("inserted", index, size, [proof[0], SOME_HASH, *proof[1:]], root_hash, leaf))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_VECTORS)
def test_corrupted_inclusion_proofs_fail(leaf: int, size: int, proof: list[bytes]) -> None:
    probes = _inclusion_probes(leaf - 1, size, proof, ROOTS[size - 1], hash_leaf(LEAVES[leaf - 1]))
    for desc, index, s, p, r, lh in probes:
        with pytest.raises(ProofError):
            verify_inclusion(lh, index, s, p, r)
            pytest.fail(f"corrupted inclusion proof verified: {desc}")


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("old - 1", old - 1, new, r1, r2, proof),
        ("old + 1", old + 1, new, r1, r2, proof),
        ("old ^ 2", old ^ 2, new, r1, r2, proof),
        ("new * 2", old, new * 2, r1, r2, proof),
        ("new // 2", old, new // 2, r1, r2, proof),
        ("wrong old root", old, new, SOME_HASH, r2, proof),
        ("wrong new root", old, new, r1, SOME_HASH, proof),
        ("swapped roots", old, new, r2, r1, proof),
        ("empty proof", old, new, r1, r2, []),
        ("trailing old root", old, new, r1, r2, [*proof, r1]),
        ("trailing new root", old, new, r1, r2, [*proof, r2]),
        ("preceding old root", old, new, r1, r2, [r1, *proof]),
        ("preceding new root", old, new, r1, r2, [r2, *proof]),
        ("preceding proof[0]", old, new, r1, r2, [proof[0], *proof]),
        ("trailing short", old, new, r1, r2, [*proof, b""]),
        ("truncated", old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((f"proof[{i}] bit 4 flipped", old, new, r1, r2, flipped))
    for desc, s1, s2, root1, root2, p in probes:
        with pytest.raises(ProofError):
            verify_consistency(s1, s2, root1, root2, p)
            pytest.fail(f"corrupted consistency proof verified: {desc}")


_ANY1 = hashlib.sha256(b"don't care 1").digest()
_ANY2 = hashlib.sha256(b"don't care 2").digest()


# (old size, new size, old root, new root, proof), verified or not.
ConsistencyCase = tuple[int, int, bytes, bytes, list[bytes]]


@pytest.mark.parametrize(
    ("case", "ok"),
    [
        ((0, 0, EMPTY_ROOT, EMPTY_ROOT, []), True),
        ((0, 1, EMPTY_ROOT, _ANY2, []), True),
        ((1, 1, _ANY2, _ANY2, []), True),
        ((0, 0, _ANY1, _ANY2, []), False),  # one size, two roots
        ((1, 1, _ANY1, _ANY2, []), False),
        ((0, 1, _ANY1, _ANY2, []), False),  # the empty tree has one root
        ((1, 0, _ANY1, _ANY2, []), False),  # time travel to the past
        ((2, 1, _ANY1, _ANY2, []), False),
        ((-1, 1, _ANY1, _ANY2, []), False),
        ((1, 2, _ANY1, _ANY2, []), False),  # empty proof
        ((0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), False),  # roots match, proof is not empty
        ((0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), False),
        ((1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]), False),
    ],
)
def test_consistency_edge_cases(case: ConsistencyCase, ok: bool) -> None:
    if ok:
        verify_consistency(*case)
    else:
        with pytest.raises(ProofError):
            verify_consistency(*case)


@pytest.mark.parametrize(
    ("index", "size", "leaf", "root_hash"),
    [
        (0, 0, SOME_HASH, EMPTY_ROOT),
        (0, 1, b"", ROOTS[0]),
        (1, 0, SOME_HASH, EMPTY_ROOT),
        (2, 1, SOME_HASH, EMPTY_ROOT),
        (0, 1, ROOTS[0], b""),
        (-1, 1, ROOTS[0], ROOTS[0]),
    ],
)
def test_inclusion_edge_cases(index: int, size: int, leaf: bytes, root_hash: bytes) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, [], root_hash)


def test_single_leaf_tree_root_is_the_leaf_hash() -> None:
    leaf = hash_leaf(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)


def test_errors_say_why(log8: MerkleLog) -> None:
    proof = list(log8.inclusion_proof(5, 8))
    leaf = log8.leaf_hash(5)
    with pytest.raises(ProofError, match="out of range for tree size 8"):
        verify_inclusion(leaf, 8, 8, proof, ROOTS[7])
    with pytest.raises(ProofError, match="has 2 hashes, want 3"):
        verify_inclusion(leaf, 5, 8, proof[:2], ROOTS[7])
    with pytest.raises(ProofError, match="inclusion proof hash 1 is 31 bytes, want 32"):
        verify_inclusion(leaf, 5, 8, [proof[0], proof[1][:31], proof[2]], ROOTS[7])
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(leaf, 5, 8, proof, ROOTS[6])
    with pytest.raises(ProofError, match="consistency proof from size 6 to 8 has 2 hashes"):
        verify_consistency(6, 8, ROOTS[5], ROOTS[7], list(log8.consistency_proof(6, 8))[:2])
    with pytest.raises(ProofError, match="for old size 6"):
        verify_consistency(6, 8, ROOTS[4], ROOTS[7], list(log8.consistency_proof(6, 8)))


def test_producers_refuse_impossible_requests(log8: MerkleLog) -> None:
    with pytest.raises(ProofError, match="leaf index 8 out of range for tree size 8"):
        log8.inclusion_proof(8)
    with pytest.raises(ProofError, match="leaf index 5 out of range for tree size 5"):
        log8.inclusion_proof(5, 5)
    with pytest.raises(ProofError, match=re.escape("tree size 9 is not within 0..8")):
        log8.root(9)
    with pytest.raises(ProofError, match=re.escape("old size 7 is not within 0..6")):
        log8.consistency_proof(7, 6)
    with pytest.raises(ProofError, match="leaf hash is 3 bytes"):
        MerkleLog().append(b"abc")
    assert log8.consistency_proof(0, 8) == ()
    assert log8.consistency_proof(8) == ()


def test_log_is_rebuilt_from_its_stored_leaf_hashes(log8: MerkleLog) -> None:
    stored = log8.leaf_hashes()
    assert stored == tuple(hash_leaf(leaf) for leaf in LEAVES)
    rebuilt = MerkleLog(stored)
    assert rebuilt.size == 8
    assert [rebuilt.root(s) for s in range(9)] == [log8.root(s) for s in range(9)]
    assert rebuilt.inclusion_proof(3, 7) == log8.inclusion_proof(3, 7)
    assert log8.leaf_hashes(2, 4) == stored[2:4]


def test_append_returns_the_index_and_old_roots_stay_fixed() -> None:
    log = MerkleLog()
    roots = []
    for i, leaf in enumerate(LEAVES):
        assert log.append(hash_leaf(leaf)) == i
        roots.append(log.root())
    assert roots == ROOTS
    assert [log.root(s) for s in range(1, 9)] == ROOTS


# --- properties ---------------------------------------------------------------------------

_leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


@given(_leaf_lists)
@settings(max_examples=60, deadline=None)
def test_every_inclusion_proof_verifies_at_every_size(leaves: list[bytes]) -> None:
    hashes = [hash_leaf(leaf) for leaf in leaves]
    log = MerkleLog(hashes)
    for size in range(1, len(hashes) + 1):
        root_hash = log.root(size)
        assert root_hash == ref_mth(hashes[:size]) == root(hashes[:size])
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert list(proof) == ref_path(index, hashes[:size])
            assert len(proof) == inclusion_proof_length(index, size)
            verify_inclusion(hashes[index], index, size, proof, root_hash)


@given(_leaf_lists)
@settings(max_examples=60, deadline=None)
def test_every_pair_of_sizes_has_a_valid_consistency_proof(leaves: list[bytes]) -> None:
    hashes = [hash_leaf(leaf) for leaf in leaves]
    log = MerkleLog(hashes)
    roots = [log.root(s) for s in range(len(hashes) + 1)]
    for old in range(len(hashes) + 1):
        for new in range(old, len(hashes) + 1):
            proof = log.consistency_proof(old, new)
            if 0 < old < new:
                assert list(proof) == ref_subproof(old, hashes[:new], True)
            assert len(proof) == consistency_proof_length(old, new)
            verify_consistency(old, new, roots[old], roots[new], proof)


@st.composite
def _inclusion_case(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=3000))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return index, size


_BIG = MerkleLog(hash_leaf(i.to_bytes(4, "big")) for i in range(3000))


@given(_inclusion_case(), st.data())
@settings(max_examples=200, deadline=None)
def test_corrupted_inclusion_proofs_never_verify(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    proof = list(_BIG.inclusion_proof(index, size))
    root_hash = _BIG.root(size)
    leaf = _BIG.leaf_hash(index)
    verify_inclusion(leaf, index, size, proof, root_hash)
    mutation = data.draw(st.sampled_from(["index", "size", "flip", "truncate", "extend"]))
    if mutation == "index":
        other = data.draw(st.integers(min_value=0, max_value=size).filter(lambda i: i != index))
        args = (leaf, other, size, proof, root_hash)
    elif mutation == "size":
        # The other tree's genuine root: a checkpoint binds size and root together.
        other = data.draw(st.integers(min_value=1, max_value=3000).filter(lambda s: s != size))
        args = (leaf, index, other, proof, _BIG.root(other))
    elif mutation == "flip" and proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) * 256 - 1))
        flipped = list(proof)
        hash_at, bit = divmod(at, 256)
        raw = bytearray(flipped[hash_at])
        raw[bit // 8] ^= 1 << (bit % 8)
        flipped[hash_at] = bytes(raw)
        args = (leaf, index, size, flipped, root_hash)
    elif mutation == "truncate" and proof:
        args = (leaf, index, size, proof[:-1], root_hash)
    else:
        args = (
            leaf,
            index,
            size,
            [*proof, data.draw(st.binary(min_size=32, max_size=32))],
            root_hash,
        )
    with pytest.raises(ProofError):
        verify_inclusion(*args)


@st.composite
def _consistency_case(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=2, max_value=3000))
    old = draw(st.integers(min_value=1, max_value=new - 1))
    return old, new


@given(_consistency_case(), st.data())
@settings(max_examples=200, deadline=None)
def test_corrupted_consistency_proofs_never_verify(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    proof = list(_BIG.consistency_proof(old, new))
    r1, r2 = _BIG.root(old), _BIG.root(new)
    verify_consistency(old, new, r1, r2, proof)
    mutation = data.draw(st.sampled_from(["old", "new", "flip", "truncate", "extend"]))
    # A changed size comes with that tree's genuine root, as a checkpoint would give it.
    if mutation == "old":
        other = data.draw(st.integers(min_value=1, max_value=new).filter(lambda s: s != old))
        args = (other, new, _BIG.root(other), r2, proof)
    elif mutation == "new":
        other = data.draw(st.integers(min_value=old, max_value=3000).filter(lambda s: s != new))
        args = (old, other, r1, _BIG.root(other), proof)
    elif mutation == "flip":
        at = data.draw(st.integers(min_value=0, max_value=len(proof) * 256 - 1))
        flipped = list(proof)
        hash_at, bit = divmod(at, 256)
        raw = bytearray(flipped[hash_at])
        raw[bit // 8] ^= 1 << (bit % 8)
        flipped[hash_at] = bytes(raw)
        args = (old, new, r1, r2, flipped)
    elif mutation == "truncate":
        args = (old, new, r1, r2, proof[:-1])
    else:
        args = (old, new, r1, r2, [*proof, data.draw(st.binary(min_size=32, max_size=32))])
    with pytest.raises(ProofError):
        verify_consistency(*args)
