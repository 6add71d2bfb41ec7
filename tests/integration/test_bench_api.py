"""``farm bench api`` at a small size, all real: it loads signed attestations, queries a
``farm serve`` over HTTP on SQLite and on a throwaway PostgreSQL, and commits a trivial recipe through four ledger validators,
Redis, three builder workers and Docker. Its last line must be the JSON the issue names,
with figures a working farm produces (not the targets: this machine is shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from farm.cluster import free_port
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
    # The same workload on PostgreSQL, through farm serve's connection pool.
    assert 0 < figures["query_p50_ms_postgres"] < 2000
    assert 0 < figures["query_p50_ms_httpx_postgres"] < 2000
    assert figures["query_per_s_postgres"] > 1
    filters = figures["query_filters"]
    assert filters and "recipe_digest" in filters
    for suffix in ("", "_postgres"):
        by_filter = figures[f"query_p50_ms_by_filter{suffix}"]
        assert set(by_filter) == set(filters)
        assert all(0 < ms < 2000 for ms in by_filter.values()), by_filter
    # Submit-to-commit of a real build minus bare docker runs of the same build (as
    # many at once as the farm has builders): every second farm adds, its steps in the
    # container included, is counted; positive (the farm runs the same container and
    # more) and bounded by the build's whole time.
    assert 0 < figures["bare_run_s"] < figures["commit_total_s"] < 300
    assert 0 < figures["commit_overhead_s"] < figures["commit_total_s"]
    assert figures["commit_overhead_s"] == pytest.approx(
        figures["commit_total_s"] - figures["bare_run_s"], abs=0.002
    )
    assert figures["commit_overhead_paired_s"] == pytest.approx(
        figures["commit_overhead_s"], abs=0.002
    )  # one round: the paired median is that round's difference
    assert 0 < figures["container_s"] < figures["commit_total_s"]
    # What was measured is shown: the per-filter tables of both databases, the bare
    # runs and the stages of the build.
    assert "GET /v1/attestations on SQLite" in proc.stderr and "recipe_digest" in proc.stderr
    assert "GET /v1/attestations on PostgreSQL" in proc.stderr
    assert "seconds after POST" in proc.stderr and "bare docker run --rm ×3" in proc.stderr


@pytest.mark.parametrize("url", ["sqlite:///x.db", "not a url"])
def test_bench_api_refuses_a_postgres_url_that_is_not_one(url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "api", "--postgres-url", url],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--postgres-url" in proc.stderr and "URL" in proc.stderr
    assert "loading" not in proc.stderr  # refused before any work
    assert proc.stdout == ""


def test_bench_api_fails_when_the_postgres_server_cannot_be_reached(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "api", "--postgres-url",
         f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the kept work directory goes there
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "cannot create a scratch database" in proc.stderr and f":{port}" in proc.stderr
    assert "work directory kept" in proc.stderr
    assert proc.stdout == ""
