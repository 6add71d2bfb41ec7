"""Transaction wire form, signatures, and the genesis file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.canonical import canonical_json
from farm.errors import ConfigError
from farm.keys import generate_key
from farm.transactions import (
    AttestTx,
    EnrollTx,
    RetireTx,
    RevokeTx,
    decode_tx,
    make_attest,
    make_enroll,
    make_retire,
    make_revoke,
    tx_id,
    verify_operator_signature,
)
from ledger.errors import TransactionError
from ledger.genesis import Genesis, genesis_hash, load_genesis, save_genesis
from ledger.transactions import summarize_tx
from tests.support.attest_world import SHA, World
from tests.support.ledger_fixtures import CHAIN, genesis_for


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_round_trips(world: World) -> None:
    op = world.operator
    attest = make_attest(world.bundle())
    enroll = make_enroll(
        op, world.builders[0].public_dict(), ["amd64"], "host0", domain="host0", chain=CHAIN
    )
    retire = make_retire(op, world.builders[0].keyid, "lost", chain=CHAIN)
    revoke = make_revoke(op, "sha256:" + SHA, "bad", chain=CHAIN)
    for data, cls in [
        (attest, AttestTx),
        (enroll, EnrollTx),
        (retire, RetireTx),
        (revoke, RevokeTx),
    ]:
        tx = decode_tx(data)
        assert isinstance(tx, cls)
        assert canonical_json(tx.model_dump(mode="json")) == data
        assert len(tx_id(data)) == 64
    assert summarize_tx(attest) == ("attest", (SHA,))
    assert summarize_tx(revoke) == ("revoke", ())
    keys = {op.keyid: op.public}
    for data in (enroll, retire, revoke):
        tx = decode_tx(data)
        assert not isinstance(tx, AttestTx)
        assert verify_operator_signature(tx, keys, CHAIN) is None


MALFORMED = [
    ("not json", b"{nope", "not JSON"),
    ("not canonical (spaces)", b'{"type": "retire"}', "not in canonical form"),
    ("not canonical (key order)", b'{"type":"retire","builder":"x"}', "not in canonical form"),
    ("no type", b'{"a":1}', "has no type"),
    ("unknown type", b'{"type":"mint"}', "malformed mint transaction"),
    ("array", b"[1]", "has no type"),
    ("missing fields", b'{"type":"revoke"}', "malformed revoke transaction"),
    ("float", b'{"type":"revoke","x":1.5}', "malformed revoke"),
    ("huge", b'{"a":"' + b"x" * (1 << 20) + b'"}', "more than"),
]


@pytest.mark.parametrize(
    ("data", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(TransactionError, match=message):
        decode_tx(data)


def test_extra_field_refused(world: World) -> None:
    value = json.loads(make_retire(world.operator, world.builders[0].keyid, "x", chain=CHAIN))
    value["extra"] = 1
    with pytest.raises(TransactionError, match="extra"):
        decode_tx(canonical_json(value))


def test_operator_signature_bound_to_content(world: World) -> None:
    op = world.operator
    keys = {op.keyid: op.public}
    value = json.loads(make_revoke(op, SHA, "bad", chain=CHAIN))
    value["reason"] = "something else"
    tx = decode_tx(canonical_json(value))
    assert not isinstance(tx, AttestTx)
    assert (
        verify_operator_signature(tx, keys, CHAIN)
        == f"revoke signature of operator {op.keyid[:12]}… does not verify"
    )
    other = generate_key()
    tx = decode_tx(make_revoke(other, SHA, "bad", chain=CHAIN))
    assert not isinstance(tx, AttestTx)
    assert (
        verify_operator_signature(tx, keys, CHAIN)
        == f"revoke signed by unknown operator {other.keyid[:12]}…"
    )


def test_operator_transactions_count_only_on_the_chain_they_name(world: World) -> None:
    """A revoke, enroll or retire signed for one ledger is refused by another that
    trusts the same operator key, and the chain cannot be edited after signing."""
    op = world.operator
    keys = {op.keyid: op.public}
    made = (
        make_revoke(op, SHA, "bad", chain="farm-staging"),
        make_enroll(
            op, world.builders[0].public_dict(), ["amd64"], "h", domain="h", chain="farm-staging"
        ),
        make_retire(op, world.builders[0].keyid, "lost", chain="farm-staging"),
    )
    for data in made:
        tx = decode_tx(data)
        assert not isinstance(tx, AttestTx)
        assert verify_operator_signature(tx, keys, "farm-staging") is None
        assert verify_operator_signature(tx, keys, CHAIN) == (
            f"{tx.type} is signed for ledger 'farm-staging', this ledger is {CHAIN!r} "
            "(an operator transaction counts only on the chain it names)"
        )
        value = json.loads(data)
        value["chain"] = CHAIN  # re-aimed at this ledger: the signature no longer holds
        moved = decode_tx(canonical_json(value))
        assert not isinstance(moved, AttestTx)
        reason = verify_operator_signature(moved, keys, CHAIN)
        assert reason is not None and "does not verify" in reason
    value = json.loads(made[0])
    del value["chain"]
    with pytest.raises(TransactionError, match="chain"):
        decode_tx(canonical_json(value))
    with pytest.raises(TransactionError, match="chain"):
        make_revoke(op, SHA, "bad", chain="no spaces allowed")


def test_enroll_refuses_a_bad_key(world: World) -> None:
    data = world.builders[0].public_dict()
    data["keyid"] = "0" * 64
    with pytest.raises(TransactionError, match="cannot enroll"):
        make_enroll(world.operator, data, ["amd64"], "h", domain="h", chain=CHAIN)


# ------------------------------------------------------------------------- genesis


def test_genesis_round_trip_and_hash(tmp_path: Path, world: World) -> None:
    g = genesis_for(world, validators=4)
    path = tmp_path / "genesis.json"
    save_genesis(g, path)
    again = load_genesis(path)
    assert again == g
    assert genesis_hash(again) == g.hash == genesis_hash(g)
    assert g.f == 1 and g.n == 4
    vs = g.validator_set()
    assert vs.ids == ("v0", "v1", "v2", "v3") and vs.quorum == 3
    assert g.operator_keys().keys() == {world.operator.keyid}
    other = g.model_copy(update={"quorum": 2})
    assert other.hash != g.hash


@pytest.mark.parametrize(("n", "f"), [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (7, 2), (10, 3)])
def test_any_n(world: World, n: int, f: int) -> None:
    assert genesis_for(world, validators=n).f == f


def test_genesis_builders_bare_or_full(world: World) -> None:
    g = genesis_for(world).model_copy()
    data = g.to_json()
    data["builders"] = [
        world.builders[0].public_dict(),
        {"key": world.builders[1].public_dict(), "arches": ["arm64"], "hostname": "h1"},
    ]
    g2 = Genesis.model_validate(data)
    assert [b.arches for b in g2.builders] == [(), ("arm64",)]
    assert Genesis.model_validate(g2.to_json()) == g2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(validators=[]), "validators"),
        (lambda d: d["validators"].append(dict(d["validators"][0])), "distinct"),
        (lambda d: d["operators"].append({"keyid": "00"}), "operators"),
        (lambda d: d.update(quorum=0), "quorum"),
        (lambda d: d["validators"][0].update(p2p="nohost"), "p2p"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_bad_genesis(tmp_path: Path, world: World, change: object, message: str) -> None:
    data = genesis_for(world).to_json()
    assert callable(change)
    change(data)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_genesis(path)


def test_missing_genesis(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no genesis file"):
        load_genesis(tmp_path / "nope.json")
