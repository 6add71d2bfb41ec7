"""Equivocation evidence in the ledger store: round trip, dedupe, bound, durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from farm.canonical import canonical_json
from ledger import storage
from ledger.block import VoteKind
from ledger.errors import StorageError
from ledger.messages import Equivocation, Proposal, message_from_json
from ledger.storage import EVIDENCE_PER_VALIDATOR, LedgerStore
from ledger.verify import verify_equivocation
from tests.support.equivocation import (
    PUBLIC,
    block,
    double_vote,
    proposal,
    value,
    vote,
)


def test_round_trip_keeps_the_signed_messages(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "l.db")
    ev = double_vote("v1", height=3, round=2, kind=VoteKind.PRECOMMIT)
    assert store.put_evidence(ev, 1_700_000_000)
    nil = Equivocation("v2", vote("v2", value("x")), vote("v2", None))
    assert store.put_evidence(nil, 1_700_000_001)
    props = Equivocation("v1", proposal("v1", "p"), proposal("v1", "q"))
    assert store.put_evidence(props, 1_700_000_002)

    records = store.evidence()
    assert [(r.validator, r.height, r.round, r.kind) for r in records] == [
        ("v1", 3, 2, "precommit"),
        ("v2", 1, 0, "prevote"),
        ("v1", 1, 0, "proposal"),
    ]
    assert [r.seen_at for r in records] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    for record, original in zip(records, [ev, nil, props], strict=True):
        assert record.first == original.first.to_json()
        assert record.second == original.second.to_json()
        assert message_from_json(record.first) == original.first
        assert message_from_json(record.second) == original.second
        assert verify_equivocation(record.to_json(), PUBLIC) == original
    kept = message_from_json(records[2].second)
    assert isinstance(kept, Proposal) and kept.block == block("q")  # the whole block kept
    assert store.evidence_count() == 3 and store.evidence_count("v1") == 2
    assert [r.kind for r in store.evidence(validator="v1")] == ["precommit", "proposal"]
    assert store.evidence(validator="v3") == []


def test_paging_by_id(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "l.db")
    for h in range(1, 6):
        store.put_evidence(double_vote("v1", height=h), h)
    first = store.evidence(limit=2)
    assert [r.height for r in first] == [1, 2]
    rest = store.evidence(start=first[-1].id + 1, limit=10)
    assert [r.height for r in rest] == [3, 4, 5]
    assert store.evidence(start=rest[-1].id + 1) == []


def test_the_same_slot_is_stored_once(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "l.db")
    ev = double_vote("v1")
    assert store.put_evidence(ev, 10)
    assert not store.put_evidence(ev, 11)  # seen again (relayed, or after a restart)
    flipped = Equivocation("v1", ev.second, ev.first)
    assert not store.put_evidence(flipped, 12)  # the same pair, arrived the other way round
    third = Equivocation("v1", ev.first, vote("v1", value("c")))
    assert not store.put_evidence(third, 13)  # a third value at that slot proves nothing more
    assert [(r.first, r.second, r.seen_at) for r in store.evidence()] == [
        (ev.first.to_json(), ev.second.to_json(), 10)
    ]
    # other slots of the same validator are other records
    assert store.put_evidence(double_vote("v1", kind=VoteKind.PRECOMMIT), 14)
    assert store.put_evidence(double_vote("v1", round=1), 15)
    assert store.put_evidence(double_vote("v1", height=2), 16)
    assert store.put_evidence(Equivocation("v1", proposal("v1", "p"), proposal("v1", "q")), 17)
    assert store.evidence_count("v1") == 5


def test_what_is_not_one_slots_conflict_is_refused(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "l.db")
    a = vote("v1", value("a"))
    with pytest.raises(StorageError, match="same value"):
        store.put_evidence(Equivocation("v1", a, a), 1)
    with pytest.raises(StorageError, match="not one slot"):
        store.put_evidence(Equivocation("v1", a, vote("v1", value("b"), round=1)), 1)
    with pytest.raises(StorageError, match="not one slot"):
        store.put_evidence(Equivocation("v1", a, vote("v2", value("b"))), 1)
    assert store.evidence_count() == 0


def test_each_offender_keeps_its_newest_records_up_to_the_bound(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "l.db")
    store.put_evidence(double_vote("v2", height=1), 1)
    extra = 5
    for h in range(1, EVIDENCE_PER_VALIDATOR + extra + 1):
        assert store.put_evidence(double_vote("v1", height=h), h)
    assert store.evidence_count("v1") == EVIDENCE_PER_VALIDATOR
    heights = [r.height for r in store.evidence(validator="v1", limit=1000)]
    assert heights == list(range(extra + 1, EVIDENCE_PER_VALIDATOR + extra + 1))
    assert store.evidence_count("v2") == 1  # another offender's records are untouched
    # an evicted slot seen again is stored again, as the newest (and the oldest goes)
    assert store.put_evidence(double_vote("v1", height=1), 999)
    assert [r.height for r in store.evidence(validator="v1", limit=1000)][-1] == 1
    assert store.evidence_count("v1") == EVIDENCE_PER_VALIDATOR


def test_the_byte_bound_evicts_the_oldest_but_never_the_new_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LedgerStore(tmp_path / "l.db")
    ev = double_vote("v1", height=1)
    one = len(canonical_json(ev.first.to_json())) + len(canonical_json(ev.second.to_json()))
    monkeypatch.setattr(storage, "EVIDENCE_BYTES_PER_VALIDATOR", 3 * one)
    for h in range(1, 6):
        store.put_evidence(double_vote("v1", height=h), h)
    assert [r.height for r in store.evidence()] == [3, 4, 5]
    big = Equivocation("v1", proposal("v1", "p" * 4 * one), proposal("v1", "q"))
    assert store.put_evidence(big, 6)
    assert [r.kind for r in store.evidence()] == ["proposal"]  # alone over the cap: kept


def test_evidence_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = LedgerStore(path)
    ev = double_vote("v3", height=7, round=1)
    store.put_evidence(ev, 42)
    store.close()
    again = LedgerStore(path)
    (record,) = again.evidence()
    assert (record.validator, record.height, record.round, record.seen_at) == ("v3", 7, 1, 42)
    assert verify_equivocation(record.to_json(), PUBLIC) == ev
    assert not again.put_evidence(ev, 43)  # still deduplicated after the restart
    again.close()


def test_a_store_made_before_the_evidence_table_opens_and_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = LedgerStore(path)
    old.set_meta("k", "v")
    old.put_checkpoint(3, "note")
    old.set_lock(1, 0, block("locked"))
    old.close()
    db = sqlite3.connect(path)  # what the previous code made: no evidence table
    db.execute("DROP TABLE evidence")
    db.commit()
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "evidence" not in tables and {"meta", "checkpoints", "lock"} <= tables

    store = LedgerStore(path)
    assert store.get_meta("k") == "v" and store.checkpoint(3) == "note"
    lock = store.get_lock()
    assert lock is not None and lock[2] == block("locked")
    assert store.evidence() == [] and store.evidence_count() == 0
    assert store.put_evidence(double_vote(), 1)
    store.close()
    assert LedgerStore(path).evidence_count() == 1
