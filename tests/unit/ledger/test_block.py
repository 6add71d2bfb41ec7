"""Blocks, quorum sizes and commit certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from farm.canonical import canonical_json
from farm.merkle import EMPTY_ROOT, MerkleLog, hash_leaf
from ledger.block import (
    Block,
    CommitCertificate,
    CommitSig,
    ValidatorSet,
    VoteKind,
    quorum_size,
    skip_size,
    txs_root,
    verify_commit_certificate,
    vote_sign_bytes,
)
from ledger.errors import ConsensusError

H = 7
R = 2


def _key(i: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"block-test/{i}".encode()).digest())


KEYS = {f"v{i}": _key(i) for i in range(4)}
PUBLIC: dict[str, Ed25519PublicKey] = {v: k.public_key() for v, k in KEYS.items()}
OUTSIDER = _key(99)


def _block(height: int = H, txs: tuple[bytes, ...] = (b"tx1", b"tx2")) -> Block:
    return Block(
        height=height,
        prev_hash=bytes(32),
        txs=txs,
        log_root=hashlib.sha256(b"root").digest(),
        log_size=2,
        proposer="v0",
    )


BLOCK_HASH = _block().hash()
OTHER_HASH = _block(txs=(b"other",)).hash()


def _sig(
    v: str,
    *,
    key: Ed25519PrivateKey | None = None,
    kind: VoteKind = VoteKind.PRECOMMIT,
    height: int = H,
    round: int = R,
    block_hash: bytes | None = BLOCK_HASH,
) -> CommitSig:
    message = vote_sign_bytes(kind, height, round, block_hash, v)
    return CommitSig(v, (key or KEYS[v]).sign(message))


def _cert(*sigs: CommitSig) -> CommitCertificate:
    return CommitCertificate(H, R, BLOCK_HASH, sigs)


@dataclass(frozen=True)
class Case:
    name: str
    cert: Callable[[], CommitCertificate]
    error: str | None  # a fragment of the ConsensusError message, or None for success
    block_hash: bytes = BLOCK_HASH
    height: int | None = H


CASES = [
    Case("3 of 4", lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2")), None),
    Case("4 of 4", lambda: _cert(*(_sig(v) for v in KEYS)), None),
    Case(
        "any height when not asked",
        lambda: _cert(_sig("v1"), _sig("v2"), _sig("v3")),
        None,
        height=None,
    ),
    Case("2 of 4", lambda: _cert(_sig("v0"), _sig("v1")), "2/4 precommits, need 3"),
    Case("none", _cert, "0/4 precommits, need 3"),
    Case(
        "duplicate signer counted once",
        lambda: _cert(_sig("v0"), _sig("v0"), _sig("v1")),
        "2/4 precommits, need 3",
    ),
    Case(
        "unknown validator",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("mallory", key=OUTSIDER)),
        "precommit from unknown validator 'mallory'",
    ),
    Case(
        "signature by another key",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", key=KEYS["v3"])),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "corrupted signature",
        lambda: _cert(_sig("v0"), _sig("v1"), CommitSig("v2", bytes(64))),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "signed for another round",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", round=R + 1)),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "signed for another height",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", height=H + 1)),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "signed for another block",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", block_hash=OTHER_HASH)),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "a nil precommit",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", block_hash=None)),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "a prevote, not a precommit",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2", kind=VoteKind.PREVOTE)),
        "bad precommit signature from 'v2'",
    ),
    Case(
        "certificate for another block",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2")),
        "certificate is for block",
        block_hash=OTHER_HASH,
    ),
    Case(
        "certificate for another height",
        lambda: _cert(_sig("v0"), _sig("v1"), _sig("v2")),
        f"certificate is for height {H}, expected {H + 1}",
        height=H + 1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verify_commit_certificate(case: Case) -> None:
    cert = case.cert()
    if case.error is None:
        verify_commit_certificate(cert, case.block_hash, PUBLIC, height=case.height)
    else:
        with pytest.raises(ConsensusError, match=case.error):
            verify_commit_certificate(cert, case.block_hash, PUBLIC, height=case.height)


def test_no_validators_never_verifies() -> None:
    with pytest.raises(ConsensusError, match="no validators"):
        verify_commit_certificate(_cert(), BLOCK_HASH, {})


def test_forged_round_in_certificate_fails() -> None:
    cert = replace(_cert(_sig("v0"), _sig("v1"), _sig("v2")), round=R + 1)
    with pytest.raises(ConsensusError, match="bad precommit signature"):
        verify_commit_certificate(cert, BLOCK_HASH, PUBLIC)


@pytest.mark.parametrize(
    ("n", "quorum", "skip"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 1), (4, 3, 2), (5, 4, 2), (7, 5, 3), (10, 7, 4), (31, 21, 11)],
)
def test_quorum_and_skip_sizes(n: int, quorum: int, skip: int) -> None:
    assert (quorum_size(n), skip_size(n)) == (quorum, skip)
    f = (n - 1) // 3
    # Two quorums overlap in more than f validators, so in at least one honest one.
    assert 2 * quorum - n > f


def test_block_hash_is_canonical_and_round_trips() -> None:
    block = _block()
    again = Block.from_json(block.to_json())
    assert again == block
    assert again.hash() == block.hash() == hashlib.sha256(block.canonical_bytes()).digest()
    assert block.canonical_bytes().startswith(b'{"height":7,')  # RFC 8785 key order
    assert _block(txs=(b"tx2", b"tx1")).hash() != block.hash()


def test_block_hash_commits_to_the_transactions_through_their_merkle_root() -> None:
    block = _block()
    header = block.header_json()
    assert "txs" not in header
    assert header["tx_count"] == 2
    assert header["txs_root"] == MerkleLog([hash_leaf(b"tx1"), hash_leaf(b"tx2")]).root().hex()
    assert txs_root(()) == EMPTY_ROOT
    assert block.hash() == hashlib.sha256(canonical_json(header)).digest()
    # any change to any transaction, their order or their number changes the hash
    assert _block(txs=(b"tx1", b"tx3")).hash() != block.hash()
    assert _block(txs=(b"tx1",)).hash() != block.hash()
    assert _block(txs=(b"tx1", b"tx2", b"")).hash() != block.hash()
    assert _block(txs=(b"tx1tx2",)).hash() != block.hash()
    assert _block(txs=()).hash() != block.hash()


@pytest.mark.parametrize(
    "data",
    [
        {"type": "farm-ledger/vote/v1"},
        {"type": "farm-ledger/block/v1", "height": 1},
        {**_block().to_json(), "prev_hash": "zz"},
        {**_block().to_json(), "log_root": "00"},
        {**_block().to_json(), "height": -1},
    ],
)
def test_malformed_block_json_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConsensusError):
        Block.from_json(data)


def test_validator_set_round_robin() -> None:
    vs = ValidatorSet.of(list(PUBLIC.items()))
    assert [vs.proposer(5, r) for r in range(5)] == ["v1", "v2", "v3", "v0", "v1"]
    assert (vs.n, vs.quorum, vs.skip) == (4, 3, 2)
    with pytest.raises(ConsensusError, match="distinct"):
        ValidatorSet.of([("v0", PUBLIC["v0"]), ("v0", PUBLIC["v1"])])
    with pytest.raises(ConsensusError, match="at least one"):
        ValidatorSet.of([])
