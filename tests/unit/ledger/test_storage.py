"""The SQLite ledger store: round trips, atomic commits, crash consistency, replay."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from farm.canonical import canonical_json
from farm.merkle import EMPTY_ROOT
from farm.transactions import make_retire, make_revoke, tx_id
from ledger.block import Block, CommitCertificate, CommitSig
from ledger.errors import StorageError
from ledger.genesis import Genesis, save_genesis
from ledger.state import LedgerState
from ledger.storage import LedgerStore, certificate_from_json
from ledger.transactions import summarize_tx
from tests.support.attest_world import World
from tests.support.ledger_fixtures import CHAIN, attests, enroll_all, genesis_for

REPO = Path(__file__).resolve().parents[3]


def fake_attest(i: int) -> bytes:
    """An attest-shaped entry (not valid: storage does not validate, replay trusts)."""
    payload = canonical_json({"subject": [{"name": "x", "digest": {"sha256": f"{i:064x}"}}]})
    return canonical_json(
        {"type": "attest", "bundle": {"envelope": {"payload": base64.b64encode(payload).decode()}}}
    )


def cert_for(block: Block) -> CommitCertificate:
    return CommitCertificate(
        height=block.height,
        round=0,
        block_hash=block.hash(),
        signatures=(CommitSig("v0", b"\x01" * 64), CommitSig("v1", b"\x02" * 64)),
    )


def next_block(store: LedgerStore, root: bytes, size: int, txs: list[bytes]) -> Block:
    last = store.last_block()
    prev = EMPTY_ROOT if last is None else last[0].hash()
    return Block(
        height=store.height() + 1,
        prev_hash=prev,
        txs=tuple(txs),
        log_root=root,
        log_size=size,
        proposer="v0",
    )


def commit(store: LedgerStore, state: LedgerState, txs: list[bytes]) -> Block:
    """What a validator does: check, compute the root, store atomically, then apply."""
    assert state.check_block(txs) is None
    root, size = state.root_after(txs)
    block = next_block(store, root, size, txs)
    store.commit_block(block, cert_for(block), state.size)
    state.apply_block(txs)
    return block


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def genesis(world: World) -> Genesis:
    return genesis_for(world)


@pytest.fixture(scope="module")
def batches(world: World) -> list[list[bytes]]:
    op = world.operator
    a = attests(world, 8)
    return [
        enroll_all(world),
        a[:3],
        [],
        [*a[3:8], make_revoke(op, f"{2:064x}", "bad", chain=CHAIN, issued_at="t1")],
        [make_retire(op, world.builders[4].keyid, "old", chain=CHAIN, issued_at="t1")],
    ]


def live_chain(
    path: Path, genesis: Genesis, batches: list[list[bytes]]
) -> tuple[LedgerStore, LedgerState, list[Block]]:
    store = LedgerStore(path, genesis)
    state = LedgerState.from_genesis(genesis)
    blocks = [commit(store, state, b) for b in batches]
    return store, state, blocks


def test_round_trip(tmp_path: Path, genesis: Genesis, batches: list[list[bytes]]) -> None:
    store, state, blocks = live_chain(tmp_path / "l.db", genesis, batches)
    assert store.height() == len(blocks) == 5
    for block in blocks:
        got = store.block(block.height)
        assert got is not None
        assert got[0] == block and got[0].hash() == block.hash()
        assert got[1] == cert_for(block)
    assert [b for b, _ in store.blocks(2, 4)] == blocks[1:4]
    assert store.block(99) is None
    txs = [t for b in batches for t in b]
    assert store.size() == state.size == len(txs)
    assert store.entries(0, len(txs)) == txs
    assert store.entry(3) == txs[3] and store.entry(len(txs)) is None
    assert store.entry_index(tx_id(txs[7])) == 7 and store.entry_height(7) == 2
    assert store.leaf_hashes() == list(state.log.leaf_hashes())
    assert certificate_from_json(cert_for(blocks[0]).to_json()) == cert_for(blocks[0])


def snapshot(s: LedgerState) -> tuple[object, ...]:
    return (
        s.size,
        s.root,
        [b.to_json() for b in s.builders()],
        {
            sha: (s.attestations_for(sha), s.is_revoked(sha))
            for sha in (f"{i:064x}" for i in range(10))
        },
        s.log.leaf_hashes(),
    )


def test_reopen_and_replay_equals_live(
    tmp_path: Path, genesis: Genesis, batches: list[list[bytes]], world: World
) -> None:
    store, live, _ = live_chain(tmp_path / "l.db", genesis, batches)
    store.close()
    again = LedgerStore(tmp_path / "l.db", genesis)
    replayed = again.load_state(genesis)
    assert snapshot(replayed) == snapshot(live)
    assert snapshot(again.load_state(genesis, revalidate=True)) == snapshot(live)
    # the replayed state goes on validating exactly like the live one
    more = attests(world, 2, start=100)
    dup = batches[1][0]
    for s in (live, replayed):
        assert s.check(dup) == "duplicate of entry 5"
        assert (
            s.check(
                make_retire(
                    world.operator, world.builders[4].keyid, "x", chain=CHAIN, issued_at="t2"
                )
            )
            is not None
        )
    commit(again, replayed, more)
    live.apply_block(more)
    assert replayed.root == live.root


def test_summaries_from_the_state_replay_like_parsed_ones(
    tmp_path: Path, genesis: Genesis, batches: list[list[bytes]]
) -> None:
    store = LedgerStore(tmp_path / "l.db", genesis)
    live = LedgerState.from_genesis(genesis)
    for txs in batches:
        assert live.check_block(txs) is None
        summaries = [live.summary(tx) for tx in txs]
        for tx, (kind, artifacts) in zip(txs, summaries, strict=True):
            parsed_kind, parsed = summarize_tx(tx)
            assert (kind, sorted(artifacts)) == (parsed_kind, sorted(parsed))
        root, size = live.root_after(txs)
        block = next_block(store, root, size, txs)
        store.commit_block(block, cert_for(block), live.size, summaries)
        live.apply_block(txs)
    with pytest.raises(StorageError, match="one summary per transaction"):
        block = next_block(store, *live.root_after(batches[1][:1]), batches[1][:1])
        store.commit_block(block, cert_for(block), live.size, [])
    store.close()
    replayed = LedgerStore(tmp_path / "l.db", genesis).load_state(genesis)
    assert snapshot(replayed) == snapshot(live)
    # a state that never validated the transaction summarizes it by parsing
    fresh = LedgerState.from_genesis(genesis)
    assert fresh.summary(batches[1][0]) == summarize_tx(batches[1][0])


def test_lock_round_trip(tmp_path: Path, genesis: Genesis) -> None:
    store = LedgerStore(tmp_path / "l.db", genesis)
    assert store.get_lock() is None
    first = Block(3, b"\x01" * 32, (), b"\x02" * 32, 7, "v1")
    store.set_lock(3, 0, first)
    assert store.get_lock() == (3, 0, first)
    txs = (b"", b"a", bytes(range(256)) * 40, b"\x00\x00\x00\x05")
    second = Block(4, b"\x03" * 32, txs, b"\x04" * 32, 11, "v2")
    store.set_lock(4, 2, second)
    store.close()
    again = LedgerStore(tmp_path / "l.db", genesis)
    got = again.get_lock()
    assert got == (4, 2, second) and got[2].hash() == second.hash()
    with again._write():  # a torn blob is refused, not misread
        again._db.execute("UPDATE lock SET txs = ?", (b"\x00\x00\x00\x09abc",))
    with pytest.raises(StorageError, match="lock is corrupt"):
        again.get_lock()


def test_other_genesis_refused(tmp_path: Path, genesis: Genesis, world: World) -> None:
    LedgerStore(tmp_path / "l.db", genesis).close()
    other = genesis.model_copy(update={"chain_id": "another"})
    with pytest.raises(StorageError, match="refusing to open"):
        LedgerStore(tmp_path / "l.db", other)
    store = LedgerStore(tmp_path / "l.db")
    assert store.genesis_hash == genesis.hash
    with pytest.raises(StorageError, match="another genesis"):
        store.load_state(other)


def test_failed_commit_leaves_nothing(
    tmp_path: Path, genesis: Genesis, batches: list[list[bytes]]
) -> None:
    store, state, _ = live_chain(tmp_path / "l.db", genesis, batches[:2])
    before = (store.height(), store.size(), store.leaf_hashes())
    # a transaction already stored: the block row goes in, the entry insert fails
    txs = [fake_attest(1), batches[1][0]]
    root, size = state.root_after(txs)
    block = next_block(store, root, size, txs)
    with pytest.raises(StorageError, match="nothing written"):
        store.commit_block(block, cert_for(block), state.size)
    # the same transaction twice inside one block
    txs = [fake_attest(1), fake_attest(1)]
    root, size = state.root_after(txs)
    block = next_block(store, root, size, txs)
    with pytest.raises(StorageError, match="nothing written"):
        store.commit_block(block, cert_for(block), state.size)
    assert (store.height(), store.size(), store.leaf_hashes()) == before
    assert store.block(3) is None
    assert snapshot(store.load_state(genesis)) == snapshot(state)


@pytest.mark.parametrize("what", ["height", "first_index", "log_size", "cert"])
def test_out_of_order_refused(tmp_path: Path, genesis: Genesis, what: str) -> None:
    store = LedgerStore(tmp_path / "l.db", genesis)
    txs = [fake_attest(1)]
    first = 0
    block = Block(
        height=1,
        prev_hash=EMPTY_ROOT,
        txs=tuple(txs),
        log_root=EMPTY_ROOT,
        log_size=1,
        proposer="v0",
    )
    cert = cert_for(block)
    if what == "height":
        block = Block(
            height=2,
            prev_hash=EMPTY_ROOT,
            txs=tuple(txs),
            log_root=EMPTY_ROOT,
            log_size=1,
            proposer="v0",
        )
        cert = cert_for(block)
    elif what == "first_index":
        block = Block(
            height=1,
            prev_hash=EMPTY_ROOT,
            txs=tuple(txs),
            log_root=EMPTY_ROOT,
            log_size=4,
            proposer="v0",
        )
        cert, first = cert_for(block), 3
    elif what == "log_size":
        block = Block(
            height=1,
            prev_hash=EMPTY_ROOT,
            txs=tuple(txs),
            log_root=EMPTY_ROOT,
            log_size=2,
            proposer="v0",
        )
        cert = cert_for(block)
    else:
        cert = CommitCertificate(height=1, round=0, block_hash=b"\x00" * 32, signatures=())
    with pytest.raises(StorageError):
        store.commit_block(block, cert, first)
    assert store.height() == 0 and store.size() == 0


def test_replay_refuses_a_log_that_does_not_match_its_block(
    tmp_path: Path, genesis: Genesis
) -> None:
    store = LedgerStore(tmp_path / "l.db", genesis)
    txs = [fake_attest(1)]
    block = Block(
        height=1,
        prev_hash=EMPTY_ROOT,
        txs=tuple(txs),
        log_root=b"\x07" * 32,
        log_size=1,
        proposer="v0",
    )
    store.commit_block(block, cert_for(block), 0)
    with pytest.raises(StorageError, match="does not match block 1"):
        store.load_state(genesis)
    with pytest.raises(
        StorageError, match="entry 0 does not validate: malformed attest transaction"
    ):
        store.load_state(genesis, revalidate=True)


def test_checkpoints_and_meta(tmp_path: Path, genesis: Genesis) -> None:
    store = LedgerStore(tmp_path / "l.db", genesis)
    assert store.latest_checkpoint() is None and store.get_meta("lock") is None
    store.put_checkpoint(3, "note 3\n")
    store.put_checkpoint(10, "note 10\n")
    store.put_checkpoint(3, "note 3 with more signatures\n")
    assert store.latest_checkpoint() == "note 10\n"
    assert store.checkpoint(3) == "note 3 with more signatures\n"
    assert store.checkpoint(4) is None
    store.set_meta("lock", '{"round": 2}')
    store.set_meta("lock", '{"round": 3}')
    store.close()
    again = LedgerStore(tmp_path / "l.db", genesis)
    assert again.get_meta("lock") == '{"round": 3}'
    assert again.latest_checkpoint() == "note 10\n"


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from ledger.genesis import load_genesis
    from farm.merkle import hash_leaf
    from ledger.storage import LedgerStore
    from farm.transactions import tx_id
    from tests.unit.ledger.test_storage import cert_for, fake_attest, next_block

    genesis = load_genesis(Path(sys.argv[1]))
    store = LedgerStore(Path(sys.argv[2]), genesis)
    state = store.load_state(genesis)
    while True:
        txs = [fake_attest(state.size + k) for k in range(50)]
        root, size = state.root_after(txs)
        block = next_block(store, root, size, txs)
        store.commit_block(block, cert_for(block), state.size)
        for tx in txs:  # trusted append: these entries are not valid attestations
            state.restore_entry(None, tx_id(tx), hash_leaf(tx), "attest", ())
        print(block.height, flush=True)
    """
)


def test_kill_9_mid_commit_leaves_a_consistent_prefix(tmp_path: Path, genesis: Genesis) -> None:
    gpath, db = tmp_path / "genesis.json", tmp_path / "l.db"
    save_genesis(genesis, gpath)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _round in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(gpath), str(db)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert child.stdout is not None
        started = LedgerStore(db, genesis).height()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line or int(line) >= started + 15:
                break
        time.sleep(0.01)  # land the kill somewhere inside a later commit
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        store = LedgerStore(db, genesis)
        height = store.height()
        assert height >= started + 15
        blocks = store.blocks(1, height)
        assert [b.height for b, _ in blocks] == list(range(1, height + 1))
        assert store.size() == blocks[-1][0].log_size == 50 * height
        state = store.load_state(genesis)  # raises unless root and size match the last block
        assert state.root == blocks[-1][0].log_root
        store.close()


def test_replay_refuses_a_broken_chain(
    tmp_path: Path, genesis: Genesis, batches: list[list[bytes]]
) -> None:
    store, _, blocks = live_chain(tmp_path / "l.db", genesis, batches)
    store.close()
    db = sqlite3.connect(tmp_path / "l.db")
    with db:
        db.execute(
            "UPDATE blocks SET header = replace(header, ?, ?) WHERE height = 3",
            (blocks[1].hash().hex(), "ab" * 32),
        )
    db.close()
    store = LedgerStore(tmp_path / "l.db", genesis)
    with pytest.raises(StorageError, match="block 3 does not follow block 2"):
        store.load_state(genesis)
    with pytest.raises(StorageError, match="does not match its stored hash"):
        store.block(3)
