"""The ledger application state: every rule with its reason, determinism, batches."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.attestation import build_bundle
from farm.keys import generate_key
from farm.merkle import MerkleLog, hash_leaf
from farm.transactions import make_attest, make_enroll, make_retire, make_revoke, tx_id
from ledger.block import Block
from ledger.errors import TransactionError
from ledger.genesis import Genesis
from ledger.state import LedgerState, _Attested
from tests.support.attest_world import BUILD, RECIPE, SHA, WHEEL, World, result
from tests.support.ledger_fixtures import CHAIN, attests, genesis_for


def short(hex_id: str) -> str:
    return hex_id[:12] + "…"


@dataclass
class Scene:
    """A chain with builders 0-3 enrolled (4 is not), one attestation of SHA at entry 4."""

    world: World
    genesis: Genesis
    history: list[bytes]
    tx: dict[str, bytes] = field(default_factory=dict)

    def state(self) -> LedgerState:
        s = LedgerState.from_genesis(self.genesis)
        for data in self.history:
            s.apply(data)
        return s


@pytest.fixture(scope="module")
def scene() -> Scene:
    w = World()
    op = w.operator
    g = genesis_for(w)
    b = w.builders
    enrolls = [
        make_enroll(
            op, k.public_dict(), ["amd64"], f"h{i}", domain=f"h{i}", chain=CHAIN, issued_at="t0"
        )
        for i, k in enumerate(b[:4])
    ]
    attest0 = make_attest(w.bundle())
    history = [*enrolls, attest0]
    stranger = generate_key()
    arm = [result(k, arch="arm64") for k in b[:3]]
    other_coordinator = World(builders=w.builders, operator=w.operator)
    tx = {
        "attest0": attest0,
        "attest1": make_attest(w.bundle(build_id="build-2", sha="5" * 64)),
        "enroll0": enrolls[0],
        "unenrolled builder": make_attest(w.bundle([result(k) for k in (b[0], b[1], b[4])])),
        "two builders": make_attest(w.bundle([result(k) for k in b[:2]], quorum=2)),
        "same builder twice": make_attest(
            w.bundle([result(b[0]), result(b[0], exit_code=3), result(b[1])], quorum=2)
        ),
        "wrong arch": make_attest(
            build_bundle(RECIPE, "demo", "1.0", "arm64", BUILD, arm, w.coordinator, 3)
        ),
        "unknown coordinator": make_attest(other_coordinator.bundle()),
        "revoke": make_revoke(op, SHA, "miscompiled", chain=CHAIN, issued_at="t1"),
        "revoke again": make_revoke(op, SHA, "still bad", chain=CHAIN, issued_at="t2"),
        "revoke unattested": make_revoke(op, "9" * 64, "bad", chain=CHAIN, issued_at="t1"),
        "revoke by stranger": make_revoke(stranger, SHA, "bad", chain=CHAIN, issued_at="t1"),
        "revoke for staging": make_revoke(op, SHA, "bad", chain="farm-staging", issued_at="t1"),
        "enroll for staging": make_enroll(
            op,
            b[4].public_dict(),
            ["amd64"],
            "h4",
            domain="h4",
            chain="farm-staging",
            issued_at="t1",
        ),
        "enroll again": make_enroll(
            op, b[0].public_dict(), ["amd64"], "h0", domain="h0", chain=CHAIN, issued_at="t9"
        ),
        "enroll 3 again": make_enroll(
            op, b[3].public_dict(), ["amd64"], "h3", domain="h3", chain=CHAIN, issued_at="t9"
        ),
        "enroll builder 4": make_enroll(
            op, b[4].public_dict(), ["amd64"], "h4", domain="h4", chain=CHAIN, issued_at="t1"
        ),
        "enroll by stranger": make_enroll(
            stranger, b[4].public_dict(), ["amd64"], "h4", domain="h4", chain=CHAIN
        ),
        "retire 3": make_retire(op, b[3].keyid, "compromised", chain=CHAIN, issued_at="t1"),
        "retire 3 again": make_retire(op, b[3].keyid, "compromised", chain=CHAIN, issued_at="t2"),
        "retire unknown": make_retire(op, stranger.keyid, "who?", chain=CHAIN, issued_at="t1"),
        "retire by stranger": make_retire(stranger, b[0].keyid, "x", chain=CHAIN),
        "attest 1,2,3": make_attest(
            w.bundle([result(k, build_id="build-3") for k in b[1:4]], build_id="build-3")
        ),
        "malformed": b'{"type": "attest"}',
    }
    return Scene(world=w, genesis=g, history=history, tx=tx)


def snapshot(s: LedgerState) -> tuple[Any, ...]:
    return (
        s.size,
        s.root,
        s.builders(),
        {b.keyid: b.retired_at for b in s.builders()},
        {sha: s.attestations_for(sha) for sha in (SHA, "5" * 64)},
        s.is_revoked(SHA),
        s.log.root(),
    )


# (name, transactions applied first, transaction checked, expected reason)
CASES: list[tuple[str, list[str], str, str | None]] = [
    ("valid attest", [], "attest1", None),
    ("attest by 3 of 4 enrolled", [], "attest 1,2,3", None),
    ("duplicate", [], "attest0", "duplicate of entry 4"),
    ("duplicate enroll", [], "enroll0", "duplicate of entry 0"),
    ("unenrolled builder", [], "unenrolled builder", "builder {b4} is not enrolled"),
    (
        "two builder signatures",
        [],
        "two builders",
        "2/3 distinct enrolled builders signed " + WHEEL,
    ),
    (
        "same builder twice",
        [],
        "same builder twice",
        "2/3 distinct enrolled builders signed " + WHEEL,
    ),
    (
        "builder not enrolled for arch",
        [],
        "wrong arch",
        "is not enrolled for arch arm64",
    ),
    ("unknown coordinator", [], "unknown coordinator", "which is unknown"),
    ("retired builder's result", ["retire 3"], "attest 1,2,3", "builder {b3} is not enrolled"),
    ("revoke", [], "revoke", None),
    (
        "revoke twice",
        ["revoke"],
        "revoke again",
        "artifact sha256:{sha} is already revoked (entry 5)",
    ),
    ("revoke unattested", [], "revoke unattested", "artifact sha256:999999999999… is not attested"),
    ("revoke by unknown operator", [], "revoke by stranger", "revoke signed by unknown operator"),
    (
        "revoke signed for another ledger",
        [],
        "revoke for staging",
        f"revoke is signed for ledger 'farm-staging', this ledger is {CHAIN!r}",
    ),
    (
        "enroll signed for another ledger",
        [],
        "enroll for staging",
        f"enroll is signed for ledger 'farm-staging', this ledger is {CHAIN!r}",
    ),
    (
        "attest a revoked artifact",
        ["revoke"],
        "attest 1,2,3",
        "artifact sha256:{sha} is revoked (entry 5)",
    ),
    ("enroll", [], "enroll builder 4", None),
    ("then the new builder counts", ["enroll builder 4"], "unenrolled builder", None),
    ("enroll an enrolled key", [], "enroll again", "builder {b0} is already enrolled (entry 0)"),
    (
        "enroll a retired key",
        ["retire 3"],
        "enroll again",
        "builder {b0} is already enrolled (entry 0)",
    ),
    ("enroll by unknown operator", [], "enroll by stranger", "enroll signed by unknown operator"),
    ("retire", [], "retire 3", None),
    ("retire twice", ["retire 3"], "retire 3 again", "builder {b3} is already retired (entry 5)"),
    ("retire unknown key", [], "retire unknown", "builder {stranger} is not enrolled"),
    ("retire by unknown operator", [], "retire by stranger", "retire signed by unknown operator"),
    ("malformed", [], "malformed", "not in canonical form"),
]


@pytest.mark.parametrize(
    ("before", "tx", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rules(scene: Scene, before: list[str], tx: str, reason: str | None) -> None:
    s = scene.state()
    for name in before:
        s.apply(scene.tx[name])
    b = scene.world.builders
    stranger_id = decode_operator(scene.tx["retire unknown"])
    expected = (
        None
        if reason is None
        else reason.format(
            b0=short(b[0].keyid),
            b3=short(b[3].keyid),
            b4=short(b[4].keyid),
            sha=short(SHA),
            stranger=short(stranger_id),
        )
    )
    before_snapshot = snapshot(s)
    got = s.check(scene.tx[tx])
    assert snapshot(s) == before_snapshot, "check must not mutate"
    if expected is None:
        assert got is None
        index = s.apply(scene.tx[tx])
        assert index == len(scene.history) + len(before)
        assert s.entry_index(tx_id(scene.tx[tx])) == index
    else:
        assert got is not None and expected in got, got
        with pytest.raises(TransactionError) as info:
            s.apply(scene.tx[tx])
        assert str(info.value) == got
        assert snapshot(s) == before_snapshot


def decode_operator(data: bytes) -> str:
    import json

    return str(json.loads(data)["builder"])


def test_revoked_artifact_cannot_be_attested_again(scene: Scene) -> None:
    s = scene.state()
    s.apply(scene.tx["revoke"])
    again = make_attest(scene.world.bundle(build_id="rebuild"))
    assert s.check(again) == f"artifact sha256:{short(SHA)} is revoked (entry 5)"


def test_queries(scene: Scene) -> None:
    s = scene.state()
    assert s.attestations_for(SHA) == (4,) == s.attestations_for("sha256:" + SHA)
    assert not s.is_revoked(SHA)
    s.apply(scene.tx["revoke"])
    assert s.is_revoked("sha256:" + SHA)
    rev = s.revocation(SHA)
    assert rev is not None and (rev.reason, rev.index) == ("miscompiled", 5)
    s.apply(scene.tx["retire 3"])
    records = {b.keyid: b for b in s.builders()}
    b3 = records[scene.world.builders[3].keyid]
    assert (b3.active, b3.retired_at, b3.retire_reason, b3.enrolled_at) == (
        False,
        6,
        "compromised",
        3,
    )
    assert b3.to_json()["hostname"] == "h3"
    assert scene.world.builders[3].keyid not in s.active_builder_keys()
    assert s.entry_index("0" * 64) is None


def test_cached_verification_does_not_outlive_a_retirement(scene: Scene) -> None:
    s = scene.state()
    tx = scene.tx["attest 1,2,3"]
    assert s.check(tx) is None  # verified and cached
    s.apply(scene.tx["retire 3"])
    assert s.check(tx) == f"builder {short(scene.world.builders[3].keyid)} is not enrolled"


def test_a_verified_attestation_is_cached_small_and_not_verified_again(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scene.state()
    tx = scene.tx["attest 1,2,3"]
    assert s.check(tx) is None
    cached = s._cache[tx_id(tx)]
    assert cached == _Attested(cached.builder_ids, "amd64", (SHA,))  # no parsed bundle
    assert s.summary(tx) == ("attest", (SHA,))

    def refuse(*_: object) -> None:
        raise AssertionError("verified twice")

    monkeypatch.setattr("ledger.state.verify_bundle", refuse)
    assert s.check_block([tx]) is None
    s.apply(tx)
    assert s.attestations_for(SHA) == (4, 5)


def test_same_txs_same_root(scene: Scene) -> None:
    extra = [
        scene.tx[n]
        for n in ("attest1", "enroll builder 4", "unenrolled builder", "revoke", "retire 3")
    ]
    a, b = scene.state(), scene.state()
    for tx in extra:
        a.apply(tx)
    assert b.check_block(extra) is None
    predicted = b.root_after(extra)
    b.apply_block(extra)
    assert (a.root, a.size) == (b.root, b.size) == predicted
    leaves = [hash_leaf(t) for t in [*scene.history, *extra]]
    assert a.root == MerkleLog(leaves).root() == a.log.root()
    assert snapshot(a) == snapshot(b)


def test_check_block_sees_earlier_txs_of_the_batch(scene: Scene) -> None:
    s = scene.state()
    before = snapshot(s)
    tx = scene.tx
    assert s.check_block([tx["enroll builder 4"], tx["unenrolled builder"]]) is None
    assert s.check_block([tx["attest1"], tx["attest1"]]) == (
        f"transaction 1 {short(tx_id(tx['attest1']))}: duplicate of entry 5"
    )
    got = s.check_block([tx["retire 3"], tx["attest 1,2,3"]])
    assert got is not None and got.endswith(
        f"builder {short(scene.world.builders[3].keyid)} is not enrolled"
    )
    got = s.check_block([tx["revoke"], tx["revoke again"]])
    assert got is not None and "already revoked (entry 5)" in got
    fresh = make_revoke(scene.world.operator, "5" * 64, "bad", chain=CHAIN, issued_at="t1")
    assert s.check_block([fresh]) is not None
    assert s.check_block([tx["attest1"], fresh]) is None
    assert s.check_block([]) is None
    assert snapshot(s) == before
    with pytest.raises(TransactionError, match="transaction 1"):
        s.apply_block([tx["attest1"], tx["attest1"]])
    assert snapshot(s) == before


def test_filter_valid(scene: Scene) -> None:
    s = scene.state()
    tx = scene.tx
    pool = [
        tx["attest1"],
        tx["attest0"],
        tx["attest1"],
        tx["malformed"],
        tx["enroll builder 4"],
        tx["unenrolled builder"],
    ]
    accepted, rejected = s.filter_valid(pool)
    assert accepted == [tx["attest1"], tx["enroll builder 4"], tx["unenrolled builder"]]
    assert [r for _, r in rejected][:2] == ["duplicate of entry 4", "duplicate of entry 5"]
    assert s.check_block(accepted) is None


def test_copy_is_independent(scene: Scene) -> None:
    s = scene.state()
    c = s.copy()
    assert snapshot(c) == snapshot(s)
    c.apply(scene.tx["attest1"])
    c.apply(scene.tx["retire 3"])
    assert c.size == s.size + 2 and c.root != s.root
    assert s.check(scene.tx["attest1"]) is None
    assert scene.world.builders[3].keyid in s.active_builder_keys()
    assert c.log.inclusion_proof(5) and s.log.size == 5


def test_random_schedules_are_deterministic(scene: Scene) -> None:
    """Two validators fed the same random stream (valid and invalid mixed) agree."""
    pool = list(scene.tx.values())
    rng = random.Random(7)
    stream = [rng.choice(pool) for _ in range(60)]
    a, b = scene.state(), scene.state()
    outcome_a: list[str] = []
    for t in stream:
        try:
            a.apply(t)
        except TransactionError as exc:
            outcome_a.append(str(exc))
    outcome_b: list[str] = []
    for t in stream:
        reason = b.check(t)
        if reason is None:
            b.apply(t)
        else:
            outcome_b.append(reason)
    assert outcome_a == outcome_b
    assert len(outcome_a) < len(stream)
    assert (a.root, a.size) == (b.root, b.size)


def test_genesis_builders_are_enrolled(scene: Scene) -> None:
    w = scene.world
    g = scene.genesis.model_copy(
        update={
            "builders": tuple(
                type(scene.genesis)
                .model_validate(
                    {
                        **scene.genesis.to_json(),
                        "builders": [k.public_dict() for k in w.builders[:3]],
                    }
                )
                .builders
            )
        }
    )
    s = LedgerState.from_genesis(g)
    assert s.check(scene.tx["attest0"]) is None
    assert s.builders()[0].enrolled_at is None
    retire = make_retire(w.operator, w.builders[0].keyid, "x", chain=CHAIN, issued_at="t")
    s.apply(retire)
    again = make_retire(w.operator, w.builders[0].keyid, "x", chain=CHAIN, issued_at="t2")
    assert s.check(again) == f"builder {short(w.builders[0].keyid)} is already retired (entry 0)"


def test_many_attestations(scene: Scene) -> None:
    s = scene.state()
    batch = attests(scene.world, 20)
    assert s.check_block(batch) is None
    s.apply_block(batch)
    assert s.size == len(scene.history) + 20
    assert s.attestations_for(f"{3:064x}") == (len(scene.history) + 3,)


def test_validate_block(scene: Scene) -> None:
    s = scene.state()
    txs = (scene.tx["attest1"], scene.tx["revoke"])
    root, size = s.root_after(txs)

    def block(**changes: Any) -> Block:
        values: dict[str, Any] = {
            "height": 2,
            "prev_hash": b"\x00" * 32,
            "txs": txs,
            "log_root": root,
            "log_size": size,
            "proposer": "v0",
        }
        values.update(changes)
        return Block(**values)

    assert s.validate_block(block()) is None
    assert s.validate_block(block(log_size=size + 1)) == (
        f"block says log size {size + 1}, its transactions give {size}"
    )
    got = s.validate_block(block(log_root=b"\x01" * 32))
    assert got is not None and got.startswith("block says log root 0101")
    got = s.validate_block(block(txs=(scene.tx["attest0"],), log_size=s.size + 1))
    assert got is not None and got.endswith("duplicate of entry 4")


# Any batch drawn from the pool: check_block accepts it exactly when applying one by
# one succeeds, root_after predicts the root, and checking never changes anything.
POOL = [
    "attest1",
    "attest0",
    "revoke",
    "revoke again",
    "enroll builder 4",
    "unenrolled builder",
    "retire 3",
    "attest 1,2,3",
    "retire 3 again",
    "two builders",
    "malformed",
    "enroll 3 again",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(POOL), max_size=7))
def test_batch_check_matches_sequential_apply(scene: Scene, names: list[str]) -> None:
    base = _base_state(scene)
    txs = [scene.tx[n] for n in names]
    before = snapshot(base)
    verdict = base.check_block(txs)
    predicted = base.root_after(txs)
    assert snapshot(base) == before
    s = base.copy()
    try:
        for tx in txs:
            s.apply(tx)
        sequential_ok = True
    except TransactionError:
        sequential_ok = False
    assert (verdict is None) == sequential_ok
    if sequential_ok:
        assert (s.root, s.size) == predicted
    assert snapshot(base) == before


_BASES: dict[int, LedgerState] = {}


def _base_state(scene: Scene) -> LedgerState:
    if id(scene) not in _BASES:
        _BASES[id(scene)] = scene.state()
    return _BASES[id(scene)]
