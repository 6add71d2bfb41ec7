"""``farm bench ledger`` at a small size, all real: four validator processes on
loopback, attest transactions with real signatures over HTTP. Its last line must be the
JSON the issue names, with figures a working ledger produces (not the targets: this
machine is shared with the rest of the suite).

The figures that explain the rate and the latency are checked against what this test
measures itself, not against the bench's own arithmetic: what checking one attest
transaction costs (:meth:`LedgerState.check` of transactions the test builds, timed
here), the number of validators it asked for and the CPUs of this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ledger.state import LedgerState
from tests.integration.conftest import REPO
from tests.support.attest_world import ARCH, World
from tests.support.ledger_fixtures import attests, enroll_all, genesis_for

pytestmark = [pytest.mark.slow]

N = 4
"""Validators the test asks the bench for."""

SLACK = 5.0
"""How far apart two CPU-time measurements of the same work may be on a machine
other tests share (the bench measures while its own validators idle; this test,
perhaps while other tests run)."""


def _check_ms_per_tx(count: int = 200) -> float:
    """CPU ms of :meth:`LedgerState.check` of one fresh attest transaction (three
    builders' signed results and the coordinator's statement, as the bench sends)."""
    world = World()
    state = LedgerState.from_genesis(genesis_for(world))
    state.apply_block(enroll_all(world, (ARCH,)))
    txs = attests(world, count)
    t0 = time.process_time()
    for tx in txs:
        assert state.check(tx) is None
    return 1000 * (time.process_time() - t0) / count


def test_bench_ledger_small_run_ends_with_its_figures() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "ledger", "--validators", str(N),
         "--duration", "3", "--light", "30", "--clients", "16", "--workers", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["n"] == N and figures["errors"] == 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 5000
    assert figures["light_submits"] == 20
    assert figures["tx_per_s"] > 1 and figures["committed_in_window"] > 0
    assert figures["tx_bytes"] > 5000  # attestation-sized: four signed envelopes

    # The check cost agrees with the one measured here, and the ceiling is what that
    # cost allows N validators on this machine's CPUs, not the bench's own formula.
    own_check = _check_ms_per_tx()
    cpus = os.cpu_count() or 1
    assert figures["cpus"] == cpus
    assert own_check / SLACK < figures["check_ms_per_tx"] < own_check * SLACK
    ceiling = figures["validation_ceiling_tx_per_s"]
    assert ceiling == pytest.approx(cpus * 1000 / (N * figures["check_ms_per_tx"]), rel=0.01)
    own_ceiling = cpus * 1000 / (N * own_check)
    assert own_ceiling / SLACK < ceiling < own_ceiling * SLACK
    assert figures["tx_per_s"] < ceiling
    # Every validator checks every transaction at least once: the CPU the validators
    # really spent per committed transaction cannot be below N checks.
    assert figures["validator_cpu_ms_per_tx"] > N * own_check / SLACK
    assert "submit → commit p50" in proc.stderr and "ceiling" in proc.stderr

    # The light phase explained: its latencies are the submits measured above, split
    # into phases, and the validators did at least N checks' worth of CPU per submit.
    light = figures["light"]
    assert light["submits"] == 20 and light["heights"] >= 1
    assert light["latency_ms"]["p50"] == pytest.approx(figures["p50_ms"], abs=0.01)
    assert light["latency_ms"]["p99"] == pytest.approx(figures["p99_ms"], abs=0.01)
    assert light["cpu_ms_per_submit"] > N * own_check / SLACK
    assert light["cpu_floor_ms"] == pytest.approx(light["cpu_ms_per_submit"] / cpus, abs=0.01)
    assert light["consensus_frames_per_height"] >= N - 1  # a proposal and 2f+1 votes at least
    assert light["fsyncs_per_height"] >= 2  # the prevote and the precommit, at least
    for phase in ("queue", "propose", "prevote", "precommit", "store", "checkpoint", "answer"):
        assert 0 <= light["phases_ms"][phase]["p50"] <= light["phases_ms"][phase]["p99"]
    assert "where a submit's time goes" in proc.stderr and "run-queue wait" in proc.stderr
