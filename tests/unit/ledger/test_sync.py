"""Catch-up trusts nothing a peer says: certificate, chain and contents are checked."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.block import Block, CommitCertificate, CommitSig, ValidatorSet, VoteKind
from ledger.errors import ConsensusError
from ledger.messages import sign_vote
from ledger.sync import verify_fetched


def _key(i: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"sync/{i}".encode()).digest())


KEYS = {f"v{i}": _key(i) for i in range(4)}
VS = ValidatorSet.of([(v, k.public_key()) for v, k in KEYS.items()])
PREV = hashlib.sha256(b"block 4").digest()


class _Node:
    """What verify_fetched reads of a node."""

    height = 4
    validators = VS
    state: Any = None
    last_hash = PREV

    def check_block(self, block: Block, state: Any, prev_hash: bytes) -> str | None:
        if block.prev_hash != prev_hash:
            return "does not extend our chain"
        return "bad transaction" if b"bad" in block.txs else None


def _block(**changes: Any) -> Block:
    b = Block(5, PREV, (b"tx",), hashlib.sha256(b"root").digest(), 1, "v1")
    return replace(b, **changes)


def _cert(block: Block, signers: list[str], height: int = 5) -> CommitCertificate:
    sigs = tuple(
        CommitSig(
            v,
            sign_vote(
                KEYS[v],
                kind=VoteKind.PRECOMMIT,
                height=height,
                round=0,
                block_hash=block.hash(),
                validator=v,
            ).signature,
        )
        for v in signers
    )
    return CommitCertificate(height, 0, block.hash(), sigs)


def test_a_certified_block_that_extends_the_chain_is_accepted() -> None:
    b = _block()
    verify_fetched(_Node(), b, _cert(b, ["v0", "v1", "v2"]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("block", "signers", "match"),
    [
        (_block(), ["v0", "v1"], "2/4 precommits, need 3"),
        (_block(height=6), ["v0", "v1", "v2"], "fetched block 6, wanted 5"),
        (_block(prev_hash=bytes(32)), ["v0", "v1", "v2"], "does not extend"),
        (_block(txs=(b"bad",)), ["v0", "v1", "v2"], "bad transaction"),
    ],
)
def test_a_doubtful_block_is_refused(block: Block, signers: list[str], match: str) -> None:
    with pytest.raises(ConsensusError, match=match):
        verify_fetched(_Node(), block, _cert(block, signers, block.height))  # type: ignore[arg-type]


def test_a_certificate_for_another_block_is_refused() -> None:
    b = _block()
    other = _block(txs=(b"other",))
    with pytest.raises(ConsensusError, match="certificate is for block"):
        verify_fetched(_Node(), b, _cert(other, ["v0", "v1", "v2"]))  # type: ignore[arg-type]
