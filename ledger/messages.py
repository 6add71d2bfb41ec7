"""The consensus messages on the wire: proposals and votes, the exact bytes each
signs, their JSON form, and :class:`Equivocation` (two signed messages of one validator
for one slot).

This is what a verifier needs to check a signed consensus message or equivocation
evidence (:mod:`ledger.verify`) without the state machine (:mod:`ledger.consensus`),
which consumes and produces these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.canonical import canonical_json
from ledger.block import Block, VoteKind, vote_sign_bytes
from ledger.errors import ConsensusError

__all__ = [
    "PROPOSAL_TYPE",
    "Equivocation",
    "Message",
    "Proposal",
    "Vote",
    "message_from_json",
    "message_kind",
    "message_value",
    "proposal_sign_bytes",
    "sign_proposal",
    "sign_vote",
]

PROPOSAL_TYPE = "farm-ledger/proposal/v1"


def proposal_sign_bytes(
    height: int, round: int, block_hash: bytes, valid_round: int, proposer: str
) -> bytes:
    """The exact bytes a proposer signs; the block is covered by its hash."""
    return canonical_json(
        {
            "type": PROPOSAL_TYPE,
            "height": height,
            "round": round,
            "block_hash": block_hash.hex(),
            "valid_round": valid_round,
            "proposer": proposer,
        }
    )


@dataclass(frozen=True)
class Proposal:
    """⟨PROPOSAL, h, r, v, vr⟩ signed by ``proposer``."""

    height: int
    round: int
    block: Block
    valid_round: int
    proposer: str
    signature: bytes

    @property
    def sender(self) -> str:
        """Who signed it."""
        return self.proposer

    def sign_bytes(self) -> bytes:
        """What :attr:`signature` covers."""
        return proposal_sign_bytes(
            self.height, self.round, self.block.hash(), self.valid_round, self.proposer
        )

    def to_json(self) -> dict[str, Any]:
        """Wire form (bytes as hex)."""
        return {
            "type": PROPOSAL_TYPE,
            "height": self.height,
            "round": self.round,
            "block": self.block.to_json(),
            "valid_round": self.valid_round,
            "proposer": self.proposer,
            "signature": self.signature.hex(),
        }


@dataclass(frozen=True)
class Vote:
    """⟨PREVOTE|PRECOMMIT, h, r, id(v) or nil⟩ signed by ``validator``."""

    kind: VoteKind
    height: int
    round: int
    block_hash: bytes | None
    validator: str
    signature: bytes

    @property
    def sender(self) -> str:
        """Who signed it."""
        return self.validator

    def sign_bytes(self) -> bytes:
        """What :attr:`signature` covers (:func:`ledger.block.vote_sign_bytes`)."""
        return vote_sign_bytes(self.kind, self.height, self.round, self.block_hash, self.validator)

    def to_json(self) -> dict[str, Any]:
        """Wire form (bytes as hex, nil as null)."""
        return {
            "type": "farm-ledger/vote/v1",
            "kind": str(self.kind),
            "height": self.height,
            "round": self.round,
            "block_hash": None if self.block_hash is None else self.block_hash.hex(),
            "validator": self.validator,
            "signature": self.signature.hex(),
        }


Message = Proposal | Vote


def message_kind(msg: Message) -> str:
    """``"proposal"``, ``"prevote"`` or ``"precommit"``."""
    return "proposal" if isinstance(msg, Proposal) else str(msg.kind)


def message_value(msg: Message) -> bytes | None:
    """The block hash a message proposes or votes for (None: a nil vote)."""
    return msg.block.hash() if isinstance(msg, Proposal) else msg.block_hash


def message_from_json(data: dict[str, Any]) -> Message:
    """Parse the wire form of a proposal or vote (signature not checked here).

    Raises:
        ConsensusError: the value is not a well-formed proposal or vote.
    """
    try:
        kind = data["type"]
        if kind == PROPOSAL_TYPE:
            return Proposal(
                height=int(data["height"]),
                round=int(data["round"]),
                block=Block.from_json(data["block"]),
                valid_round=int(data["valid_round"]),
                proposer=str(data["proposer"]),
                signature=bytes.fromhex(data["signature"]),
            )
        if kind == "farm-ledger/vote/v1":
            bh = data["block_hash"]
            return Vote(
                kind=VoteKind(data["kind"]),
                height=int(data["height"]),
                round=int(data["round"]),
                block_hash=None if bh is None else bytes.fromhex(bh),
                validator=str(data["validator"]),
                signature=bytes.fromhex(data["signature"]),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsensusError(f"malformed consensus message: {exc}") from None
    raise ConsensusError(f"not a consensus message: type {kind!r}")


def sign_proposal(
    key: Ed25519PrivateKey,
    *,
    height: int,
    round: int,
    block: Block,
    valid_round: int,
    proposer: str,
) -> Proposal:
    """A proposal signed with ``key`` (no double-sign check: that is the machine's job)."""
    sig = key.sign(proposal_sign_bytes(height, round, block.hash(), valid_round, proposer))
    return Proposal(height, round, block, valid_round, proposer, sig)


def sign_vote(
    key: Ed25519PrivateKey,
    *,
    kind: VoteKind,
    height: int,
    round: int,
    block_hash: bytes | None,
    validator: str,
) -> Vote:
    """A vote signed with ``key`` (no double-sign check: that is the machine's job)."""
    sig = key.sign(vote_sign_bytes(kind, height, round, block_hash, validator))
    return Vote(kind, height, round, block_hash, validator, sig)


@dataclass(frozen=True)
class Equivocation:
    """Two different signed messages from one validator for one (height, round, kind)."""

    validator: str
    first: Message
    second: Message

    @property
    def height(self) -> int:
        """The height both messages are for."""
        return self.second.height

    @property
    def round(self) -> int:
        """The round both messages are for."""
        return self.second.round

    @property
    def kind(self) -> str:
        """``"proposal"``, ``"prevote"`` or ``"precommit"``."""
        return message_kind(self.second)
