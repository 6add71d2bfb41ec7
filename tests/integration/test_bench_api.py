"""``farm bench api`` at a small size, all real: it loads signed attestations, queries a
``farm serve`` over HTTP, and commits a trivial recipe through four ledger validators,
Redis, three builder workers and Docker. Its last line must be the JSON the issue names,
with figures a working farm produces (not the targets: this machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]


def test_bench_api_small_run_ends_with_its_figures(builder_image: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "api", "--attestations", "200",
         "--queries", "10", "--clients", "2", "--runs", "1", "--workers", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["attestations"] == 200
    assert 0 < figures["query_p50_ms"] < 2000 and 0 < figures["query_p50_ms_httpx"] < 2000
    assert figures["query_per_s"] > 1 and figures["query_server_cpu_ms"] > 0
    # Submit-to-commit of a real build minus its container time: positive (the farm
    # cannot commit before it built) and bounded by the build's whole time.
    assert 0 < figures["commit_overhead_s"] < figures["commit_total_s"] < 300
    assert 0 < figures["container_s"] < figures["commit_total_s"]
    assert set(figures["query_p50_ms_by_filter"]) == set(figures["query_filters"])
    # What was measured is shown: the per-filter table and the stages of the build.
    assert "GET /v1/attestations" in proc.stderr and "recipe_digest" in proc.stderr
    assert "seconds after POST" in proc.stderr
