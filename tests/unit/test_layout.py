"""The layout's rules (ADR 0020, docs/architecture.md), checked on the source tree so
they keep holding: every file is linted, no import cycle, benchmarks and test harnesses
stay out of the product packages, and the consumer stands apart from the servers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.import_graph import closure, cycles, import_graph

TOP = Path(__file__).resolve().parents[2]
PRODUCT = ("farm", "builders", "ledger", "api")
ALL = (*PRODUCT, "tests")


def _tracked_py() -> set[str]:
    if shutil.which("git") is None or not (TOP / ".git").exists():
        pytest.fail("the layout checks read the tracked files: run them from a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=TOP, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(TOP, ALL)


def test_ruff_sees_every_tracked_python_file() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run(
        [str(ruff), "check", "--show-files", "."],
        cwd=TOP,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    seen = {str(Path(line).relative_to(TOP)) for line in out.split() if line.endswith(".py")}
    unseen = sorted(_tracked_py() - seen)
    assert unseen == [], f"ruff never checks {unseen} (an excluded folder name?)"


def test_no_package_or_test_folder_is_named_dist_or_build() -> None:
    # Tools treat such folders as build output: ruff and pytest skip them by default.
    bad = sorted(
        {str(Path(p).parent) for p in _tracked_py() if {"dist", "build"} & set(Path(p).parts)}
    )
    assert bad == []


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_benchmarks_live_in_farm_bench_only() -> None:
    stray = sorted(
        p
        for p in _tracked_py()
        if Path(p).name.startswith("bench") and not p.startswith("farm/bench/")
    )
    assert stray == [], "benchmarks belong in farm/bench/ (run as farm bench NAME)"


@pytest.mark.parametrize("package", ["ledger", "builders", "api"])
def test_servers_import_no_benchmark_and_no_test(graph: dict[str, set[str]], package: str) -> None:
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.split(".")[0] == package
        for t in targets
        if t.startswith(("farm.bench", "tests"))
    )
    assert bad == []


def test_product_imports_no_test_code(graph: dict[str, set[str]]) -> None:
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.split(".")[0] in PRODUCT
        for t in targets
        if t.startswith("tests")
    )
    assert bad == []


def test_the_consumer_needs_no_server_and_no_consensus(graph: dict[str, set[str]]) -> None:
    # What farm pull / farm verify run reaches (transitively) no HTTP server, no ledger
    # node and no consensus machine: a client verifies with proofs, checkpoints and keys.
    reach = closure(graph, [m for m in graph if m.startswith("farm.consumer")])
    forbidden = sorted(
        m
        for m in reach
        if m.startswith(("api", "farm.bench", "farm.coordinator", "builders"))
        or m
        in {
            "ledger.consensus",
            "ledger.node",
            "ledger.http",
            "ledger.sync",
            "ledger.network",
            "ledger.gossip",
            "ledger.cosigning",
            "ledger.process",
        }
    )
    assert forbidden == []


def test_the_shared_core_imports_no_host_package(graph: dict[str, set[str]]) -> None:
    # farm/ is what every host shares; only the CLI's registration and the benchmarks
    # (which drive whole farms) may reach into builders, ledger and api, and they do so
    # through commands and entry points, not through farm's core modules.
    allowed = ("farm.bench", "farm.cli")
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.startswith("farm") and not m.startswith(allowed)
        for t in targets
        if t.split(".")[0] in {"builders", "api"}
    )
    assert bad == []


def test_the_graph_counts_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import X\n"
    )
    (pkg / "c.py").write_text("import pkg.a\nX = 1\n")
    (pkg / "d.py").write_text("from pkg.c import X\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.d"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert closure(graph, ["pkg.d"]) == {"pkg.a", "pkg.b", "pkg.c", "pkg.d"}
