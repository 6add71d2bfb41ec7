"""The revoked set a checkpoint commits to: every absence proof an honest node makes
verifies, no member ever has one, and no corruption of a proof or of the checkpoint's
line is believed."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.checkpoint import Checkpoint
from farm.merkle import EMPTY_ROOT, MerkleLog, hash_leaf
from ledger.errors import CheckpointError, ProofError
from ledger.revoked_set import (
    AbsenceProof,
    Neighbor,
    RevokedSet,
    commitment_of,
    revoked_at,
    verify_absent,
)

LOW, HIGH = b"\x00" * 32, b"\xff" * 32
digests = st.binary(min_size=32, max_size=32)
revoked_sets = st.lists(digests, max_size=40, unique=True)


def _flip(value: bytes, bit: int = 0) -> bytes:
    raw = bytearray(value)
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return bytes(raw)


def _check(rs: RevokedSet, digest: bytes | str, proof: AbsenceProof) -> None:
    verify_absent(digest, len(rs), rs.root(), proof)


@settings(max_examples=150, deadline=None)
@given(members=revoked_sets, data=st.data())
def test_every_non_member_is_proven_absent_and_no_member_is(
    members: list[bytes], data: st.DataObject
) -> None:
    rs = RevokedSet(members)
    assert len(rs) == len(members)
    queries = [LOW, HIGH, *data.draw(st.lists(digests, max_size=5))]
    if members:
        lo, hi = min(members), max(members)
        queries += [_flip(lo, 255), _flip(hi, 255)]  # next to the ends, either side
    for q in queries:
        if q in members:
            assert q in rs
            with pytest.raises(ProofError, match="is revoked"):
                rs.absence_proof(q)
            continue
        assert q not in rs
        proof = rs.absence_proof(q)
        _check(rs, q, proof)
        _check(rs, "sha256:" + q.hex(), proof)  # hex, as consumers hold it, works too
        assert proof.count == len(members)
        below = [m for m in members if m < q]
        above = [m for m in members if m > q]
        assert (proof.left is None) == (not below) and (proof.right is None) == (not above)
        if proof.left is not None:
            assert proof.left.digest == max(below)
        if proof.right is not None:
            assert proof.right.digest == min(above)
    for m in members:
        with pytest.raises(ProofError):
            rs.absence_proof(m)


def test_ends_and_the_empty_set() -> None:
    empty = RevokedSet()
    assert empty.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert empty.absence_proof(LOW) == AbsenceProof(0, None, None)
    _check(empty, LOW, AbsenceProof(0, None, None))
    rs = RevokedSet([b"\x10" * 32, b"\x20" * 32, b"\x30" * 32])
    first = rs.absence_proof(b"\x01" * 32)
    assert first.left is None and first.right is not None and first.right.index == 0
    last = rs.absence_proof(b"\x40" * 32)
    assert last.right is None and last.left is not None and last.left.index == 2
    middle = rs.absence_proof(b"\x25" * 32)
    assert middle.left is not None and middle.right is not None
    assert (middle.left.index, middle.right.index) == (1, 2)
    for digest, proof in ((b"\x01" * 32, first), (b"\x40" * 32, last), (b"\x25" * 32, middle)):
        _check(rs, digest, proof)
    # An empty set with a neighbour, or with a root that is not the empty hash.
    bogus = Neighbor(0, b"\x10" * 32, ())
    with pytest.raises(ProofError, match="no neighbours"):
        verify_absent(LOW, 0, EMPTY_ROOT, AbsenceProof(0, None, bogus))
    with pytest.raises(ProofError, match="not the empty hash"):
        verify_absent(LOW, 0, b"\x01" * 32, AbsenceProof(0, None, None))


def test_root_is_the_rfc6962_tree_of_the_sorted_digests() -> None:
    members = [hashlib.sha256(bytes([i])).digest() for i in range(7)]
    rs = RevokedSet(reversed(members))
    log = MerkleLog(hash_leaf(d) for d in sorted(members))
    assert rs.root() == log.root()
    grown = RevokedSet(members[:6])
    grown.add(members[6].hex())
    grown.add(members[6])  # twice: no-op
    assert grown.root() == rs.root() and len(grown) == 7
    at = revoked_at({m.hex(): i for i, m in enumerate(members)}, 3)
    assert len(at) == 3 and at.root() == RevokedSet(members[:3]).root()


def _with(proof: AbsenceProof, side: str, nb: Neighbor) -> AbsenceProof:
    if side == "left":
        return dataclasses.replace(proof, left=nb)
    return dataclasses.replace(proof, right=nb)


def _corruptions(rs: RevokedSet, q: bytes, proof: AbsenceProof) -> dict[str, AbsenceProof]:
    """Ways to damage an honest proof that ``q`` is absent (each must be refused)."""
    n = len(rs)
    out: dict[str, AbsenceProof] = {
        "count + 1": dataclasses.replace(proof, count=n + 1),
        "count - 1": dataclasses.replace(proof, count=n - 1),
        "both dropped": AbsenceProof(n, None, None),
    }
    left, right = proof.left, proof.right
    if left is not None and right is not None:
        out["swapped"] = AbsenceProof(n, right, left)
        out["left dropped"] = AbsenceProof(n, None, right)
        out["right dropped"] = AbsenceProof(n, left, None)
    for side, nb in (("left", left), ("right", right)):
        if nb is None:
            continue
        if nb.path:
            flipped = dataclasses.replace(nb, path=(_flip(nb.path[0], 3), *nb.path[1:]))
            out[f"{side} path bit"] = _with(proof, side, flipped)
        out[f"{side} digest bit"] = _with(
            proof, side, dataclasses.replace(nb, digest=_flip(nb.digest, 200))
        )
        # A member of the set, proven at its own index, but not the adjacent one.
        step = -1 if side == "left" else 1
        far = nb.index + step
        if 0 <= far < n:
            far_nb = rs.absence_proof(_flip(rs._sorted[far], 255))
            candidate = far_nb.left if far_nb.left and far_nb.left.index == far else far_nb.right
            assert candidate is not None and candidate.index == far
            out[f"{side} not adjacent"] = _with(proof, side, candidate)
    return out


@settings(max_examples=100, deadline=None)
@given(members=st.lists(digests, min_size=1, max_size=40, unique=True), q=digests)
def test_corrupted_proofs_are_refused(members: list[bytes], q: bytes) -> None:
    rs = RevokedSet(members)
    if q in rs:
        return
    proof = rs.absence_proof(q)
    _check(rs, q, proof)
    for what, bad in _corruptions(rs, q, proof).items():
        with pytest.raises(ProofError):
            _check(rs, q, bad)
            pytest.fail(f"{what} was believed")


@settings(max_examples=60, deadline=None)
@given(members=st.lists(digests, min_size=3, max_size=40, unique=True), data=st.data())
def test_a_member_cannot_be_proven_absent_with_any_neighbours(
    members: list[bytes], data: st.DataObject
) -> None:
    """A member between its own neighbours (skipping it), or as its own neighbour."""
    rs = RevokedSet(members)
    i = data.draw(st.integers(0, len(rs) - 1))
    m = sorted(members)[i]
    own = rs._neighbor(i)
    proofs = {"itself left": AbsenceProof(len(rs), own, None)}
    proofs["itself right"] = AbsenceProof(len(rs), None, own)
    if 0 < i < len(rs) - 1:
        skip = AbsenceProof(len(rs), rs._neighbor(i - 1), rs._neighbor(i + 1))
        proofs["skipping it"] = skip
    if i + 1 < len(rs):
        proofs["itself and next"] = AbsenceProof(len(rs), own, rs._neighbor(i + 1))
    if i > 0:
        proofs["previous and itself"] = AbsenceProof(len(rs), rs._neighbor(i - 1), own)
    for what, bad in proofs.items():
        with pytest.raises(ProofError):
            _check(rs, m, bad)
            pytest.fail(f"{what} was believed")


@settings(max_examples=60, deadline=None)
@given(members=revoked_sets, q=digests)
def test_json_round_trip(members: list[bytes], q: bytes) -> None:
    rs = RevokedSet(members)
    if q in rs:
        return
    proof = rs.absence_proof(q)
    again = AbsenceProof.from_json(json.loads(json.dumps(proof.to_json())))
    assert again == proof
    _check(rs, q, again)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"count": 1, "left": None},
        {"count": True, "left": None, "right": None},
        {"count": "1", "left": None, "right": None},
        {"count": 1, "left": None, "right": {"index": 0, "sha256": "zz" * 32, "path": []}},
        {"count": 1, "left": None, "right": {"index": 0, "sha256": "ab" * 31, "path": []}},
        {"count": 1, "left": None, "right": {"index": False, "sha256": "ab" * 32, "path": []}},
        {"count": 1, "left": None, "right": {"index": 0, "sha256": "ab" * 32, "path": ["x"]}},
        {"count": 1, "left": None, "right": {"index": 0, "sha256": "ab" * 32}},
    ],
)
def test_malformed_json_is_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ProofError, match=r"malformed|not hex|31 bytes"):
        AbsenceProof.from_json(value)


def _cp(*extensions: str) -> Checkpoint:
    return Checkpoint("farm-test", 9, b"\x07" * 32, extensions)


@settings(max_examples=40, deadline=None)
@given(members=revoked_sets)
def test_commitment_round_trips_through_the_checkpoint(members: list[bytes]) -> None:
    rs = RevokedSet(members)
    cp = Checkpoint.from_body(_cp("example.org/other x", rs.extension()).body())
    assert commitment_of(cp) == (len(members), rs.root())


def test_commitment_refuses_missing_duplicate_malformed_and_non_canonical_lines() -> None:
    line = RevokedSet([b"\x05" * 32]).extension()
    prefix, count, root = line.split(" ")
    assert (prefix, count) == ("farm-revoked/v1", "1") and root.endswith("=")
    with pytest.raises(CheckpointError, match="has no farm-revoked/v1 lines"):
        commitment_of(_cp())
    with pytest.raises(CheckpointError, match="has no farm-revoked/v1 lines"):
        commitment_of(_cp("farm-revoked/v2 1 " + root))
    with pytest.raises(CheckpointError, match="has 2 farm-revoked/v1 lines"):
        commitment_of(_cp(line, line))
    raw = base64.b64decode(root)
    # The same 32 bytes with non-zero padding bits: decodes, but is not canonical.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(root[-2])
    odd = root[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last ^ 1]
    assert base64.b64decode(odd + "=") == raw
    with pytest.raises(CheckpointError, match="not canonical base64"):
        commitment_of(_cp(f"{prefix} {count} {odd}="))
    malformed = [
        f"{prefix} 01 {root}",  # leading zero
        f"{prefix} -1 {root}",
        f"{prefix}  1 {root}",  # two spaces
        f"{prefix} 1 {root} ",  # trailing space
        f"{prefix} 1 {root[:-1]}",  # no padding
        f"{prefix} 1 {base64.b64encode(raw[:31]).decode()}",  # 31 bytes
        f"{prefix} 1 {base64.b64encode(raw + b'x').decode()}",  # 33 bytes
        f"{prefix} 1",
        f"{prefix} 12345678901234567 {root}",  # 17 digits
        f"{prefix} one {root}",
    ]
    for bad in malformed:
        with pytest.raises(CheckpointError, match="malformed revoked-set line"):
            commitment_of(_cp(bad))
    assert commitment_of(_cp(line)) == (1, raw)


def test_digests_that_are_not_sha256_are_refused() -> None:
    with pytest.raises(ProofError, match="not hex"):
        RevokedSet(["nothex"])
    with pytest.raises(ProofError, match="31 bytes"):
        RevokedSet([b"\x00" * 31])
    rs = RevokedSet([b"\x05" * 32])
    with pytest.raises(ProofError, match="not hex"):
        verify_absent("zz", 1, rs.root(), rs.absence_proof(LOW))
    assert 5 not in rs  # not a digest at all: not a member
