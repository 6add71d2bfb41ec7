"""Independence the ledger checks: agreeing builders from quorum distinct domains, and
operator transactions only from genesis operators (ADR 34, 35)."""

from __future__ import annotations

import json

import pytest

from farm.canonical import canonical_json
from farm.keys import generate_key
from farm.transactions import make_attest, make_enroll, make_retire
from ledger.genesis import Genesis, GenesisBuilder
from ledger.state import LedgerState
from tests.support.attest_world import World
from tests.support.ledger_fixtures import CHAIN, genesis_for


def _state(world: World, domains: list[str], genesis: Genesis | None = None) -> LedgerState:
    state = LedgerState.from_genesis(genesis or genesis_for(world))
    for i, (k, d) in enumerate(zip(world.builders, domains, strict=False)):
        state.apply(
            make_enroll(world.operator, k.public_dict(), ["amd64"], f"h{i}", domain=d, chain=CHAIN)
        )
    return state


@pytest.mark.parametrize(
    ("domains", "accepted"),
    [
        (["org-a", "org-b", "org-c"], True),
        (["org-a", "org-a", "org-b"], False),
        (["org-a", "org-a", "org-a"], False),
        # One machine, three domains: the hostname decides nothing.
        (["local-1", "local-2", "local-3"], True),
    ],
)
def test_an_attestation_needs_quorum_distinct_domains(domains: list[str], accepted: bool) -> None:
    world = World()
    state = _state(world, domains)
    reason = state.check(make_attest(world.bundle()))
    if accepted:
        assert reason is None
    else:
        assert reason is not None and reason.startswith("farm.quorum.domain_shortfall")
        assert f"span {len(set(domains))} independence domain(s), 3 needed" in reason


def test_the_builders_records_show_their_domain() -> None:
    world = World()
    state = _state(world, ["org-a", "org-b", "org-c"])
    assert sorted(b.to_json()["domain"] for b in state.builders()) == ["org-a", "org-b", "org-c"]


def test_genesis_builders_without_a_domain_are_each_a_domain_of_their_own() -> None:
    world = World()
    base = genesis_for(world)
    builders = tuple(
        GenesisBuilder(key=k.public_dict(), arches=("amd64",)) for k in world.builders[:3]
    )
    legacy = base.model_copy(update={"builders": builders})
    assert LedgerState.from_genesis(legacy).check(make_attest(world.bundle())) is None
    # Listed without a domain, the genesis keeps the hash it had before domains.
    assert all("domain" not in b for b in legacy.to_json()["builders"])
    shared = base.model_copy(
        update={
            "builders": tuple(
                GenesisBuilder(key=k.public_dict(), arches=("amd64",), domain="one-org")
                for k in world.builders[:3]
            )
        }
    )
    reason = LedgerState.from_genesis(shared).check(make_attest(world.bundle()))
    assert reason is not None and "domain_shortfall" in reason


def test_operator_transactions_signed_by_any_other_key_are_refused() -> None:
    world = World()
    state = _state(world, ["org-a", "org-b", "org-c"])
    coordinator_signed = make_enroll(
        world.coordinator, world.builders[3].public_dict(), ["amd64"], "h3", domain="org-d",
        chain=CHAIN,
    )  # fmt: skip
    reason = state.check(coordinator_signed)
    assert reason is not None and "unknown operator" in reason
    stranger = generate_key()
    reason = state.check(make_retire(stranger, world.builders[0].keyid, "r", chain=CHAIN))
    assert reason is not None and "unknown operator" in reason
    assert (
        state.check(make_retire(world.operator, world.builders[0].keyid, "r", chain=CHAIN)) is None
    )


def test_an_enroll_without_a_domain_is_malformed() -> None:
    world = World()
    state = LedgerState.from_genesis(genesis_for(world))
    data = make_enroll(
        world.operator, world.builders[0].public_dict(), ["amd64"], "h0", domain="d", chain=CHAIN
    )
    value = json.loads(data)
    del value["domain"]
    reason = state.check(canonical_json(value))
    assert (
        reason is not None
        and "malformed enroll transaction: enroll.domain: Field required" in reason
    )
