"""verify_equivocation: real evidence verifies against the genesis keys, nothing else does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.block import VoteKind
from ledger.errors import ConsensusError
from ledger.messages import Equivocation, Message
from ledger.verify import verify_equivocation
from tests.support.equivocation import PUBLIC, double_vote, proposal, value, vote


def record(first: Message, second: Message, validator: str = "v1", **extra: Any) -> dict[str, Any]:
    """A record shaped like one ``GET /v1/evidence`` serves."""
    return {
        "validator": validator,
        "first": first.to_json(),
        "second": second.to_json(),
        **extra,
    }


def test_real_evidence_verifies() -> None:
    ev = double_vote("v1", height=4, round=3, kind=VoteKind.PRECOMMIT)
    got = verify_equivocation(
        record(ev.first, ev.second, height=4, round=3, kind="precommit", id=9), PUBLIC
    )
    assert got == ev and (got.height, got.round, got.kind) == (4, 3, "precommit")
    nil = verify_equivocation(record(vote("v2", value("a")), vote("v2", None), "v2"), PUBLIC)
    assert nil.second.block_hash is None  # type: ignore[union-attr]
    props = Equivocation("v1", proposal("v1", "p"), proposal("v1", "q"))
    assert verify_equivocation(record(props.first, props.second), PUBLIC) == props
    as_keys = {n: Ed25519PublicKey.from_public_bytes(k) for n, k in PUBLIC.items()}
    assert verify_equivocation(record(ev.first, ev.second), as_keys) == ev  # keys or bytes


def _tamper(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**data, **changes}


A = vote("v1", value("a"))
B = vote("v1", value("b"))

CASES: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
    ("record names another validator", lambda: record(A, B, "v2"), "by 'v1', not 'v2'"),
    (
        "messages by two validators",
        lambda: record(A, vote("v2", value("b"))),
        "second message is by 'v2'",
    ),
    ("unknown validator", lambda: record(A, B, "v9"), "not a known validator"),
    ("same value twice", lambda: record(A, vote("v1", value("a"))), "same value"),
    ("nil twice", lambda: record(vote("v1", None), vote("v1", None)), "same value"),
    (
        "second signed with another key",
        lambda: record(A, vote("v1", value("b"), signer="v2")),
        "second message does not carry a valid signature",
    ),
    (
        "signature of another message",
        lambda: {
            **record(A, B),
            "first": _tamper(A.to_json(), signature=B.signature.hex()),
        },
        "first message does not carry a valid signature",
    ),
    (
        "value changed after signing",
        lambda: {**record(A, B), "second": _tamper(B.to_json(), block_hash=value("c").hex())},
        "second message does not carry a valid signature",
    ),
    ("different heights", lambda: record(A, vote("v1", value("b"), height=2)), "different slots"),
    ("different rounds", lambda: record(A, vote("v1", value("b"), round=1)), "different slots"),
    (
        "prevote and precommit",
        lambda: record(A, vote("v1", value("b"), kind=VoteKind.PRECOMMIT)),
        "different slots",
    ),
    (
        "proposal and prevote",
        lambda: record(proposal("v1", "b"), vote("v1", value("b"))),
        "different slots",
    ),
    ("record claims another height", lambda: record(A, B, height=2), "names slot"),
    ("record claims another kind", lambda: record(A, B, kind="precommit"), "names slot"),
    ("a message missing", lambda: {"validator": "v1", "first": A.to_json()}, "two messages"),
    (
        "malformed message",
        lambda: {**record(A, B), "second": {"type": "farm-ledger/vote/v1"}},
        "malformed",
    ),
]


@pytest.mark.parametrize(("case", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_what_is_not_evidence_is_refused(
    case: str, make: Callable[[], dict[str, Any]], reason: str
) -> None:
    with pytest.raises(ConsensusError, match=reason):
        verify_equivocation(make(), PUBLIC)


def test_no_validators_fails_closed() -> None:
    with pytest.raises(ConsensusError, match="against nobody"):
        verify_equivocation(record(A, B), {})
