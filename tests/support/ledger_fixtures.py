"""A genesis and a populated world for the ledger application tests."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.transactions import make_attest, make_enroll
from ledger.genesis import Genesis, ValidatorInfo
from tests.support.attest_world import World

CHAIN = "farm-test"
"""The chain id of :func:`genesis_for` (operator transactions are signed for it)."""


def validator_info(i: int, key: Ed25519PrivateKey | None = None) -> ValidatorInfo:
    key = key or Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return ValidatorInfo(
        name=f"v{i}",
        public_key=raw.hex(),
        p2p=f"127.0.0.1:{7000 + i}",
        http=f"127.0.0.1:{8000 + i}",
    )


def genesis_for(world: World, *, validators: int = 4, quorum: int = 3) -> Genesis:
    return Genesis(
        chain_id=CHAIN,
        genesis_time="2026-01-01T00:00:00Z",
        validators=tuple(validator_info(i) for i in range(validators)),
        operators=(world.operator.public_dict(),),
        coordinators=(world.coordinator.public_dict(),),
        quorum=quorum,
    )


def enroll_all(world: World, arches: tuple[str, ...] = ("amd64",)) -> list[bytes]:
    """Enroll transactions for every builder of ``world``."""
    return [
        make_enroll(
            world.operator,
            k.public_dict(),
            arches,
            f"host{i}",
            domain=f"host{i}",
            chain=CHAIN,
            issued_at="t0",
        )
        for i, k in enumerate(world.builders)
    ]


def attests(world: World, n: int, start: int = 0) -> list[bytes]:
    """``n`` distinct valid attest transactions (distinct builds and outputs)."""
    return [
        make_attest(world.bundle(build_id=f"build-{i}", sha=f"{i:064x}"))
        for i in range(start, start + n)
    ]
