"""``farm bench ledger`` at a small size, all real: four validator processes on
loopback, attest transactions with real signatures over HTTP. Its last line must be the
JSON the issue names, with figures a working ledger produces (not the targets: this
machine is shared with the rest of the suite)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

pytestmark = [pytest.mark.slow]


def test_bench_ledger_small_run_ends_with_its_figures() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "ledger", "--validators", "4",
         "--duration", "3", "--light", "30", "--clients", "16", "--workers", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["n"] == 4 and figures["errors"] == 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 5000
    assert figures["light_submits"] == 20
    assert figures["tx_per_s"] > 1 and figures["committed_in_window"] > 0
    assert figures["tx_bytes"] > 5000  # attestation-sized: four signed envelopes
    # The bound the check cost puts on the rate is measured and consistent with it.
    assert 0 < figures["check_ms_per_tx"] < 100
    ceiling = figures["cpus"] * 1000 / (4 * figures["check_ms_per_tx"])
    assert figures["validation_ceiling_tx_per_s"] == pytest.approx(ceiling, rel=0.01)
    assert figures["tx_per_s"] < figures["validation_ceiling_tx_per_s"]
    assert "submit → commit p50" in proc.stderr and "ceiling" in proc.stderr
