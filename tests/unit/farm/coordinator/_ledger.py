"""A log that answers like validators do, with real Merkle proofs and real co-signatures.

Tests of the coordinator's receipts make receipts with the ledger's own code
(:class:`farm.merkle.MerkleLog`, :func:`farm.checkpoint.cosign_checkpoint`) and real
Ed25519 validator keys, so a receipt is proven or refused by the same checks a real
validator's answer meets. ``signers`` chooses who co-signs, and ``strangers`` are keys
that are not in the trust (a forger's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farm.checkpoint import Checkpoint, cosign_checkpoint
from farm.coordinator.receipts import LedgerTrust
from farm.merkle import MerkleLog, hash_leaf
from farm.transactions import tx_id

CHAIN = "farm-testnet"
NAMES = ("v0", "v1", "v2", "v3")
KEYS = {name: Ed25519PrivateKey.generate() for name in NAMES}
STRANGERS = {name: Ed25519PrivateKey.generate() for name in NAMES}
"""Keys with the validators' names that no genesis knows."""
TRUST4 = LedgerTrust(CHAIN, {n: k.public_key() for n, k in KEYS.items()}, threshold=3, faults=1)
"""Four validators: 3 co-signatures make a checkpoint, 2 refusals a final one."""
TRUST1 = LedgerTrust(CHAIN, {"v0": KEYS["v0"].public_key()}, threshold=1, faults=0)
"""One validator: its co-signature and its refusal suffice."""
NOW = 1_760_000_000


class SignedLog:
    """A Merkle log whose checkpoints the chosen validators co-sign."""

    def __init__(self) -> None:
        self.log = MerkleLog()
        self.entries: list[bytes] = []

    def append(self, tx: bytes) -> int:
        """Add ``tx`` as the next entry; its index."""
        self.entries.append(tx)
        return self.log.append(hash_leaf(tx))

    def note(
        self,
        size: int | None = None,
        signers: Sequence[str] = NAMES,
        keys: dict[str, Ed25519PrivateKey] = KEYS,
    ) -> str:
        """The checkpoint of the first ``size`` entries (all), co-signed by ``signers``."""
        size = len(self.entries) if size is None else size
        note: Checkpoint | str = Checkpoint(CHAIN, size, self.log.root(size))
        for name in signers:
            note = cosign_checkpoint(note, name, keys[name], NOW)
        assert isinstance(note, str)
        return note

    def receipt(self, index: int, **note: Any) -> dict[str, Any]:
        """What ``POST /v1/tx`` answers for entry ``index`` at the current size."""
        size = len(self.entries)
        return {
            "index": index,
            "tx_id": tx_id(self.entries[index]),
            "height": index + 1,
            "tree_size": size,
            "inclusion_proof": [h.hex() for h in self.log.inclusion_proof(index, size)],
            "checkpoint": self.note(size, **note),
        }
