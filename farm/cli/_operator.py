"""The operator key on the command line: ``--key`` and ``--genesis``, read here, where
the operator works (``farm operator approve``/``retire``, ``farm revoke``). The
coordinator never sees the key, only what it signed (ADR 34)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from farm.operator import Operator

__all__ = ["DomainOpt", "GenesisOpt", "KeyOpt", "load_operator"]

KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="FARM_OPERATOR_KEY",
        help="The operator's private key (listed in the ledger genesis); it signs here, "
        "the coordinator only relays what it signed.",
    ),
]
GenesisOpt = Annotated[
    Path | None,
    typer.Option(
        "--genesis",
        envvar="FARM_GENESIS",
        help="The ledger's genesis file: names the chain the transaction is for and "
        "the operator keys the validators accept.",
    ),
]
DomainOpt = Annotated[
    str,
    typer.Option(
        "--domain",
        help="The builder's independence domain: the organisation or site that controls "
        "it. Attestations need agreeing builders from quorum distinct domains.",
    ),
]


def load_operator(key: Path | None, genesis: Path | None, what: str) -> Operator:
    """The operator of ``--key`` on the ledger of ``--genesis``; :class:`ConfigError`
    saying which is missing or why it cannot sign for that ledger."""
    from farm.errors import ConfigError
    from farm.genesis import Genesis, load_genesis
    from farm.keys import load_key
    from farm.operator import Operator

    if key is None or genesis is None:
        raise ConfigError(
            f"{what} signs an operator transaction here: give --key OPERATOR_KEY and "
            "--genesis GENESIS (or $FARM_OPERATOR_KEY and $FARM_GENESIS)"
        )
    return Operator.of(load_key(key), load_genesis(genesis, Genesis))
