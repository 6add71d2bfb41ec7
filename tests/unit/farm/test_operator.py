"""The operator signs where they work: farm.operator, and the quorum's domain rule."""

from __future__ import annotations

import pytest

from farm.errors import ConfigError, DomainShortfallError, TransactionError
from farm.keys import generate_key
from farm.operator import Operator
from farm.quorum import require_domains
from farm.transactions import (
    EnrollTx,
    RetireTx,
    RevokeTx,
    decode_tx,
    verify_operator_signature,
)
from tests.support.attest_world import World
from tests.support.ledger_fixtures import CHAIN, genesis_for


def _shown(key_dict: dict[str, object]) -> dict[str, object]:
    """A pending enrollment as GET /v1/builders/{id} shows it."""
    return {"id": key_dict["keyid"], "public_key": key_dict, "arches": ["amd64"], "hostname": "h"}


def test_what_the_operator_signs_verifies_against_the_genesis_operators() -> None:
    world = World()
    genesis = genesis_for(world)
    operator = Operator.of(world.operator, genesis)
    builder = world.builders[0]
    enroll = decode_tx(operator.enroll(builder.keyid, _shown(builder.public_dict()), "site-b1"))
    retire = decode_tx(operator.retire(builder.keyid, "decommissioned"))
    revoke = decode_tx(operator.revoke("sha256:" + "ab" * 32, "CVE"))
    assert isinstance(enroll, EnrollTx) and enroll.domain == "site-b1"
    assert isinstance(retire, RetireTx) and isinstance(revoke, RevokeTx)
    for tx in (enroll, retire, revoke):
        assert tx.chain == CHAIN and tx.operator == world.operator.keyid
        assert verify_operator_signature(tx, genesis.operator_keys(), CHAIN) is None


def test_a_key_the_genesis_does_not_list_cannot_act_as_the_operator() -> None:
    world = World()
    with pytest.raises(ConfigError, match="is not an operator of ledger"):
        Operator.of(world.coordinator, genesis_for(world))


@pytest.mark.parametrize(
    ("shown_key", "domain", "message"),
    [
        ("other", "site-b1", "refusing to enroll a key other than the one named"),
        ("same", "", "domain"),
        ("same", "two words", "domain"),
    ],
)
def test_enroll_refuses_another_key_or_a_bad_domain(
    shown_key: str, domain: str, message: str
) -> None:
    world = World()
    operator = Operator.of(world.operator, genesis_for(world))
    builder = world.builders[0]
    shown = builder if shown_key == "same" else generate_key()
    with pytest.raises(TransactionError, match=message):
        operator.enroll(builder.keyid, _shown(shown.public_dict()), domain)


DOMAINS = {"b1": "org-a", "b2": "org-a", "b3": "org-b", "b4": "org-c"}


@pytest.mark.parametrize(
    ("builders", "quorum", "ok"),
    [
        (["b1", "b3", "b4"], 3, True),
        (["b1", "b2", "b3"], 3, False),
        (["b1", "b2", "b3"], 2, True),
        (["b1", "b2"], 1, True),
        ([], 1, False),
        (["b1", "b3", "b4"], 0, False),  # fail closed: a quorum below one never passes
        (["b1", "unknown-1", "unknown-2"], 3, True),  # unknown: each a domain of its own
    ],
)
def test_require_domains(builders: list[str], quorum: int, ok: bool) -> None:
    if ok:
        groups = require_domains(builders, DOMAINS.get, quorum)
        assert sum(len(g) for g in groups.values()) == len(set(builders))
    else:
        with pytest.raises(DomainShortfallError, match=r"farm\.quorum\.domain_shortfall"):
            require_domains(builders, DOMAINS.get, quorum)
