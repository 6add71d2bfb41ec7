"""What a consumer trusts before it talks to any server: the pinned genesis, and what it
remembers of the ledger from earlier verifications.

:class:`TrustRoot` is derived from the genesis file the user pins (validator keys and
the 2f+1 threshold, operator, coordinator and genesis builder keys, the quorum).
:class:`TrustMemory` is the largest tree size this machine has verified and its root,
so that a later, smaller tree (rollback) or one that does not extend it (fork) is
refused. Both are plain values; reading and writing them is :mod:`farm.consumer.state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from securesystemslib.signer import SSlibKey

from farm.keys import public_key_from_dict
from ledger.genesis import Genesis
from ledger.verify import signature_threshold

__all__ = ["GenesisBuilderKey", "TrustMemory", "TrustRoot"]


@dataclass(frozen=True)
class GenesisBuilderKey:
    """A builder enrolled in the genesis: its key, architectures (empty: any) and
    independence domain (empty: a domain of its own)."""

    key: SSlibKey
    arches: tuple[str, ...]
    domain: str = ""

    def allows(self, arch: str) -> bool:
        """Whether the builder may attest ``arch``."""
        return not self.arches or arch in self.arches


@dataclass(frozen=True)
class TrustRoot:
    """The keys and rules of one ledger, as the user pinned them in its genesis."""

    origin: str
    genesis_hash: str
    validators: Mapping[str, Ed25519PublicKey]
    threshold: int
    operators: Mapping[str, SSlibKey]
    coordinators: Mapping[str, SSlibKey]
    builders: Mapping[str, GenesisBuilderKey]
    quorum: int

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> TrustRoot:
        """Derive the trust root of ``genesis`` (checkpoint origin = its chain id)."""
        builders: dict[str, GenesisBuilderKey] = {}
        for b in genesis.genesis_builders():
            key = public_key_from_dict(b.key)
            builders[key.keyid] = GenesisBuilderKey(key, tuple(b.arches), b.domain)
        return cls(
            origin=genesis.chain_id,
            genesis_hash=genesis.hash,
            validators={v.name: v.ed25519_key() for v in genesis.validators},
            threshold=signature_threshold(genesis.n),
            operators=genesis.operator_keys(),
            coordinators=genesis.coordinator_keys(),
            builders=builders,
            quorum=genesis.quorum,
        )


class TrustMemory(BaseModel):
    """The largest checkpoint this machine has verified for one ledger."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    genesis_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    tree_size: int = Field(ge=1)
    root_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="Root at tree_size, hex.")
    checkpoint_time: int | None = Field(
        default=None, description="Unix time 2f+1 validators vouched for that checkpoint."
    )

    @property
    def root(self) -> bytes:
        """The root hash as bytes."""
        return bytes.fromhex(self.root_hash)
