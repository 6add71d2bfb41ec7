"""``farm bench build``'s report: the overhead per architecture and the cost of emulation."""

from __future__ import annotations

import pytest

from farm.bench.build import _report


def test_a_foreign_architecture_is_reported_next_to_amd64() -> None:
    report = _report(
        "arm64",
        {"arm64": [40.0, 44.0, 42.0], "amd64": [4.0, 4.4, 4.2]},
        {"arm64": [43.0, 47.0, 45.0], "amd64": [5.0, 5.4, 5.2]},
        3,
        1,
    )
    assert report["arch"] == "arm64"
    assert report["bare_s"] == 42.0 and report["farm_s"] == 45.0
    assert report["overhead_s"] == 3.0 and report["overhead"] == pytest.approx(3 / 42, abs=1e-3)
    assert report["bare_amd64_s"] == 4.2 and report["overhead_amd64_s"] == 1.0
    assert report["emulation_cost"] == 10.0  # bare arm64 / bare amd64


def test_amd64_alone_has_no_emulation_cost() -> None:
    report = _report("amd64", {"amd64": [4.0]}, {"amd64": [4.5]}, 1, 3)
    assert report["overhead_s"] == 0.5 and "emulation_cost" not in report
    assert {"bare_s", "farm_s", "paired_overhead_s", "target_s"} <= set(report)
