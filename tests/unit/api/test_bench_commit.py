"""The commit overhead of ``farm bench api``: measured against bare ``docker run``s of
the same build, not against the farm's own container (which includes farm's steps)."""

from __future__ import annotations

import pytest

from farm.bench.api_commit import CommitRun, commit_overhead


def _run(bare: float, total: float, container: float = 0.0) -> CommitRun:
    return CommitRun(bare_s=bare, total_s=total, container_s=container, command_s=0.1, stages={})


def test_overhead_is_the_time_to_commit_minus_the_bare_runs() -> None:
    # The farm's container lives longer than the bare run (its keeper, exec, df, copy-out):
    # that difference is farm's and must be counted, so the container time plays no part.
    run = _run(bare=0.9, total=2.5, container=1.4)
    assert run.overhead_s == pytest.approx(1.6)


def test_overhead_over_rounds_is_the_medians_difference_and_the_paired_median() -> None:
    runs = [_run(1.0, 2.0), _run(1.2, 2.6), _run(3.0, 3.5)]
    medians, paired = commit_overhead(runs)
    assert medians == pytest.approx(2.6 - 1.2)
    assert paired == pytest.approx(1.0)  # median of 1.0, 1.4, 0.5
