"""A profiling aid for developers: the ledger application layer alone, in this process,
built on the test fixtures (not a benchmark: ``farm bench ledger`` times what users get,
and reports the check cost per transaction itself).

Run ``.venv/bin/python -m tests.support.profile_ledger_state [N]``; it prints one JSON
line: ``check_ms`` (first check of a real attest tx: decode + 4 signatures),
``check_cached_ms`` (the same tx again, as at commit after proposal),
``check_block_ms_per_tx`` and ``root_after_ms`` for a 500-tx block over an N-entry
state, ``commit_ms_per_block`` (a 1000-tx block into SQLite, fsynced),
``replay_s`` (``load_state`` of N stored entries) and ``copy_ms``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from farm.merkle import hash_leaf
from farm.transactions import tx_id
from ledger.state import LedgerState
from ledger.storage import LedgerStore
from tests.support.attest_world import World
from tests.support.ledger_fixtures import attests, enroll_all, genesis_for
from tests.unit.ledger.test_storage import cert_for, fake_attest, next_block


def main(n: int) -> dict[str, float]:
    world = World()
    genesis = genesis_for(world)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = LedgerStore(Path(tmp) / "l.db", genesis)
        state = LedgerState.from_genesis(genesis)
        batch = enroll_all(world)
        root, size = state.root_after(batch)
        block = next_block(store, root, size, batch)
        store.commit_block(block, cert_for(block), state.size)
        state.apply_block(batch)
        # fill with n stored (trusted, attest-shaped) entries
        commit_times = []
        i = state.size
        while state.size < n:
            txs = [fake_attest(i + k) for k in range(min(1000, n - state.size))]
            root, size = state.root_after(txs)
            block = next_block(store, root, size, txs)
            t = time.perf_counter()
            store.commit_block(block, cert_for(block), state.size)
            commit_times.append(time.perf_counter() - t)
            for tx in txs:
                state.restore_entry(None, tx_id(tx), hash_leaf(tx), "attest", ())
            i += len(txs)
        out["commit_ms_per_block"] = 1000 * sorted(commit_times)[len(commit_times) // 2]
        t = time.perf_counter()
        replayed = store.load_state(genesis)
        out["replay_s"] = time.perf_counter() - t
        assert replayed.root == state.root
        out["entries"] = replayed.size

        real = attests(world, 500)
        t = time.perf_counter()
        for tx in real[:200]:
            assert replayed.check(tx) is None
        out["check_ms"] = 1000 * (time.perf_counter() - t) / 200
        t = time.perf_counter()
        for tx in real[:200]:
            replayed.check(tx)
        out["check_cached_ms"] = 1000 * (time.perf_counter() - t) / 200
        t = time.perf_counter()
        assert replayed.check_block(real) is None
        out["check_block_ms_per_tx"] = 1000 * (time.perf_counter() - t) / len(real)
        t = time.perf_counter()
        replayed.root_after(real)
        out["root_after_ms"] = 1000 * (time.perf_counter() - t)
        t = time.perf_counter()
        replayed.copy()
        out["copy_ms"] = 1000 * (time.perf_counter() - t)
    return {k: round(v, 3) for k, v in out.items()}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
