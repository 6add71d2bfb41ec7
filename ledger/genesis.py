"""Genesis: the one file every validator of a chain starts from.

The file's model, its hash and its reading and writing are :mod:`farm.genesis` (the
coordinator reads it too, and never imports the ledger package: ADR 0030); this
module adds the consensus validator set and reads files as this :class:`Genesis`.
"""

from __future__ import annotations

from pathlib import Path

from farm import genesis as _file
from farm.genesis import GenesisBuilder, ValidatorInfo, genesis_hash, save_genesis
from ledger.block import ValidatorSet

__all__ = [
    "Genesis",
    "GenesisBuilder",
    "ValidatorInfo",
    "genesis_hash",
    "load_genesis",
    "save_genesis",
]


class Genesis(_file.Genesis):
    """A genesis file, with the validator set consensus runs on."""

    def validator_set(self) -> ValidatorSet:
        """The consensus validator set, ids = names, in genesis order."""
        return ValidatorSet.of([(v.name, v.ed25519_key()) for v in self.validators])


def load_genesis(path: Path) -> Genesis:
    """Read and validate a genesis file. Raises :class:`ConfigError` saying what is wrong."""
    return _file.load_genesis(path, Genesis)
