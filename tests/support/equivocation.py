"""Validators with fixed keys and the conflicting messages an equivocator signs."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.block import Block, VoteKind
from ledger.messages import Equivocation, Proposal, Vote, sign_proposal, sign_vote


def _key(i: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"evidence/{i}".encode()).digest())


KEYS = {f"v{i}": _key(i) for i in range(4)}
PUBLIC = {name: key.public_key().public_bytes_raw() for name, key in KEYS.items()}


def value(tag: str) -> bytes:
    """A block hash standing for the value ``tag``."""
    return hashlib.sha256(tag.encode()).digest()


def vote(
    name: str,
    block_hash: bytes | None,
    *,
    height: int = 1,
    round: int = 0,
    kind: VoteKind = VoteKind.PREVOTE,
    signer: str | None = None,
) -> Vote:
    """A vote for ``block_hash`` by ``name``, signed with ``signer``'s key (default: its own)."""
    return sign_vote(
        KEYS[signer or name],
        kind=kind,
        height=height,
        round=round,
        block_hash=block_hash,
        validator=name,
    )


def block(tag: str, height: int = 1, proposer: str = "v1") -> Block:
    """A block holding one transaction ``tag``."""
    return Block(height, bytes(32), (tag.encode(),), value(tag), 1, proposer)


def proposal(name: str, tag: str, *, height: int = 1, round: int = 0) -> Proposal:
    """A proposal of ``block(tag)`` by ``name``."""
    return sign_proposal(
        KEYS[name],
        height=height,
        round=round,
        block=block(tag, height, name),
        valid_round=-1,
        proposer=name,
    )


def double_vote(
    name: str = "v1",
    *,
    height: int = 1,
    round: int = 0,
    kind: VoteKind = VoteKind.PREVOTE,
    tags: tuple[str, str] = ("a", "b"),
) -> Equivocation:
    """``name`` voting for two values at one (height, round, kind)."""
    first, second = (vote(name, value(t), height=height, round=round, kind=kind) for t in tags)
    return Equivocation(name, first, second)
