"""The operator's own signing: enroll, retire and revoke transactions made where the
operator works, with the operator key, never by the coordinator.

Pure: a key and a genesis in, transaction bytes out. ``farm operator approve``,
``farm operator retire``, ``farm revoke``, ``farm up`` and ``farm cluster`` sign here
and hand the bytes to the coordinator, which checks and relays them
(:mod:`farm.coordinator.operator_txs`) but holds no operator key (ADR 34).

Invariants:

- :meth:`Operator.of` refuses a key the genesis does not list as an operator, so a
  transaction every validator would refuse is never made.
- :meth:`Operator.enroll` signs only the key whose id is the builder id the operator
  named: the coordinator shows the pending enrollment, but the key id is the key's
  hash, so a coordinator cannot slip another key under the id the builder host
  reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import ConfigError, SigningKeyError, TransactionError
from farm.genesis import Genesis
from farm.keys import KeyPair, public_key_from_dict
from farm.transactions import make_enroll, make_retire, make_revoke

__all__ = ["Operator"]


@dataclass(frozen=True)
class Operator:
    """An operator key and the chain its transactions are for."""

    key: KeyPair
    chain: str

    @classmethod
    def of(cls, key: KeyPair, genesis: Genesis) -> Operator:
        """The operator ``key`` on the ledger of ``genesis``.

        Raises :class:`ConfigError` if the genesis does not list the key as an operator.
        """
        if key.keyid not in genesis.operator_keys():
            raise ConfigError(
                f"key {key.keyid[:12]}… is not an operator of ledger {genesis.chain_id!r} "
                "(its genesis lists the operator keys); validators would refuse what it signs"
            )
        return cls(key, genesis.chain_id)

    def enroll(self, builder_id: str, builder: Mapping[str, Any], domain: str) -> bytes:
        """The enroll transaction of the pending builder ``builder`` (as the coordinator
        shows it: ``public_key``, ``arches``, ``hostname``) in independence ``domain``.

        Raises :class:`TransactionError` if the key shown is not the key whose id is
        ``builder_id``, or the domain or builder is malformed.
        """
        try:
            key = public_key_from_dict(dict(builder["public_key"]))
            arches = [str(a) for a in builder["arches"]]
            hostname = str(builder["hostname"])
        except (KeyError, TypeError, SigningKeyError) as exc:
            raise TransactionError(f"the pending enrollment shown is malformed: {exc}") from None
        if key.keyid != builder_id:
            raise TransactionError(
                f"the coordinator shows key {key.keyid[:12]}… for builder {builder_id[:12]}…; "
                "refusing to enroll a key other than the one named"
            )
        public = {"keyid": key.keyid, **key.to_dict()}
        return make_enroll(self.key, public, arches, hostname, domain=domain, chain=self.chain)

    def retire(self, builder_id: str, reason: str) -> bytes:
        """The retire transaction of builder ``builder_id``."""
        return make_retire(self.key, builder_id, reason, chain=self.chain)

    def revoke(self, sha256: str, reason: str) -> bytes:
        """The revoke transaction of artifact ``sha256`` (``sha256:`` prefix ok)."""
        return make_revoke(self.key, sha256, reason, chain=self.chain)
