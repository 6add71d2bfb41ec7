"""``farm bench dist`` end to end with small files: real ledger, coordinator, node, nginx."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_bench_dist_ends_with_one_json_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    argv = [sys.executable, "-m", "farm.cli", "bench", "dist"]
    argv += ["--small-kb", "5", "--large-mb", "8", "--seconds", "0.5", "--rounds", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    for key in ("small_vs_nginx", "large_vs_nginx", "verify_vs_sha256sum"):
        assert figures[key] > 0, figures
    assert figures["http_errors"] == 0
    assert figures["small_node_rps"] > 0 and figures["small_nginx_rps"] > 0
    assert "farm bench dist" in done.stderr
