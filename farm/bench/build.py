"""``farm bench build``: farm's overhead over bare ``docker run`` of the same builds.

Times ``farm build`` of one recipe on three builders (dispatch through Redis, fetch
from the warm cache, hermetic run, output hashing, signing, verification of every
envelope, the live progress table) by calling the very function the command runs,
:func:`farm.cli.build_cmd.run_builds`, with the command's arguments, against the same
three builds started at once as bare ``docker run``s of the same image and command on
the same machine, several times each, and prints the medians. The last line is JSON:
``arch``, ``bare_s``, ``farm_s``, ``overhead_s`` (difference of the medians),
``overhead`` (the same, as a fraction of ``bare_s``), ``paired_overhead_s`` (median of
the per-round differences) and ``target_s``.

``--arch arm64`` times the arm64 build (under QEMU on an amd64 host) and, round by round,
the same recipe's amd64 build, and adds ``bare_amd64_s``, ``farm_amd64_s``,
``overhead_amd64_s``, ``overhead_amd64`` and ``emulation_cost`` (bare arm64 / bare
amd64): what emulation costs, apart from what farm costs.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import redis as redis_lib
import typer
from rich.console import Console
from rich.table import Table

from builders.fetch import Fetcher
from farm.cli import build_cmd
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.cluster import local_cluster
from farm.errors import BuildError
from farm.queue import make_celery
from farm.recipe import Recipe, load_recipe
from farm.registry import list_builders, pick_builders

__all__ = ["bare_once", "bench_build"]

console = Console(stderr=True)


def bare_once(
    recipe: Recipe, src: Path, deps: Path | None, work: Path, n: int, arch: str | None = None
) -> float:
    """Start ``n`` bare ``docker run``s of the recipe for ``arch`` (default: its first
    architecture) at once, in that architecture's image; seconds until all exit."""
    arch = arch or recipe.architectures[0]
    procs = []
    outs = []
    for i in range(n):
        out = work / f"bare-out-{i}-{uuid.uuid4().hex[:6]}"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        outs.append(out)
    limits = recipe.limits
    argv_common = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "1000:1000",
        "--tmpfs",
        "/tmp:exec,mode=1777",  # noqa: S108 - the container's own tmpfs
        "-v",
        f"{src}:/src:ro",
        "-w",
        recipe.build.workdir,
        "-e",
        "HOME=/tmp/home",
        # The same resource limits farm applies, so both sides get the same machine.
        "--cpus",
        str(limits.cpus),
        "--memory",
        str(limits.memory),
        "--pids-limit",
        str(limits.pids),
    ]
    if deps is not None:
        argv_common += ["-v", f"{deps}:/deps:ro"]
    for key, value in recipe.build.env.items():
        argv_common += ["-e", f"{key}={value}"]
    start = time.monotonic()
    for out in outs:
        argv = [
            *argv_common,
            "-v",
            f"{out}:/out",
            "--platform",
            f"linux/{arch}",
            recipe.image_for(arch),
            "/bin/sh",
            "-euc",
            recipe.build.command,
        ]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise BuildError(f"bare docker run failed ({p.returncode}): {err.decode()[-500:]}")
    elapsed = time.monotonic() - start
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    return elapsed


def bench_build(
    recipe_path: Annotated[
        Path, typer.Argument(metavar="RECIPE", help="Recipe to build.")
    ] = DEFAULT_RECIPE,
    runs: Annotated[int, typer.Option(help="Timed runs of each kind.", min=1)] = 5,
    builders: Annotated[
        int, typer.Option(help="Builders (and bare containers) at once.", min=1)
    ] = 3,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Architecture to time (default: the recipe's first). A foreign one (arm64 "
            "under QEMU) is timed next to amd64, which gives the cost of emulation."
        ),
    ] = None,
) -> None:
    """Median time of `farm build` on N builders vs N bare `docker run`s of the same build."""
    from farm.errors import ConfigError

    root = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    recipe = load_recipe(recipe_for_this_host(recipe_path, root))
    arch = arch or recipe.architectures[0]
    if arch not in recipe.architectures:
        raise ConfigError(f"{recipe.label} is not built for {arch}")
    # A foreign architecture is measured beside amd64's, round by round, so that the
    # two share the machine's state: bare arm64 / bare amd64 is the cost of emulation.
    arches = [arch] if arch == "amd64" else [arch, "amd64"]
    if "amd64" not in recipe.architectures:
        arches = [arch]
    bare: dict[str, list[float]] = {a: [] for a in arches}
    farm_times: dict[str, list[float]] = {a: [] for a in arches}
    try:
        with Fetcher(root / "cache", progress=lambda m: None) as fetcher:
            src = fetcher.source(recipe.source, root / "fetch")
            deps = (
                fetcher.dependencies(recipe.build.dependencies, root / "deps")
                if recipe.build.dependencies
                else None
            )
        with local_cluster(root / "cluster", builders) as cluster:
            app = make_celery(cluster.redis.url)
            signer = cluster.coordinator()
            running = list_builders(redis_lib.Redis.from_url(cluster.redis.url))
            chosen = {a: pick_builders(running, a, builders) for a in arches}

            def farm_once(a: str) -> float:
                # `farm build`'s own code from queueing to the last verified result,
                # with the same arguments (its progress table shown on stderr).
                build_id = uuid.uuid4().hex
                start = time.monotonic()
                jobs = build_cmd.run_builds(
                    app,
                    recipe,
                    a,
                    chosen[a],
                    build_id,
                    build_cmd.default_wait(recipe),
                    signer,
                    out=console,
                )
                elapsed = time.monotonic() - start
                bad = [j for j in jobs if j.state != "DONE"]
                if bad:
                    who = bad[0].builder.builder_id[:12]
                    raise BuildError(f"farm build failed on {who}: {bad[0].error}")
                return elapsed

            console.print(
                f"{runs} rounds, each per architecture ({', '.join(arches)}): {builders} bare "
                f"docker runs at once, then `farm build` on {builders} builders (after one "
                "warm-up round)"
            )
            for a in arches:
                bare_once(recipe, src, deps, root, builders, a)
                farm_once(a)
            for i in range(runs):
                for a in arches:
                    bare[a].append(bare_once(recipe, src, deps, root, builders, a))
                    farm_times[a].append(farm_once(a))
                    console.print(
                        f"  round {i + 1} {a}: bare {bare[a][-1]:.2f}s, "
                        f"farm {farm_times[a][-1]:.2f}s"
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    typer.echo(json.dumps(_report(arch, bare, farm_times, runs, builders)))


def _report(
    arch: str,
    bare: dict[str, list[float]],
    farm_times: dict[str, list[float]],
    runs: int,
    builders: int,
) -> dict[str, object]:
    """Print the table and the overheads; return the JSON report."""
    arches = list(bare)
    report: dict[str, object] = {"arch": arch}
    table = Table("", "median s", "min s", "max s")
    for a in arches:
        b, f = bare[a], farm_times[a]
        for what, xs in (
            (f"bare docker run ×{builders} ({a})", b),
            (f"farm build ×{builders} ({a})", f),
        ):
            table.add_row(what, f"{statistics.median(xs):.3f}", f"{min(xs):.3f}", f"{max(xs):.3f}")
    console.print(table)
    bare_s = statistics.median(bare[arch])
    farm_s = statistics.median(farm_times[arch])
    overhead = farm_s - bare_s
    # Rounds run back to back, so the per-round difference cancels slow drifts of the machine.
    paired = statistics.median(f - b for f, b in zip(farm_times[arch], bare[arch], strict=True))
    target = max(0.3, 0.1 * bare_s)
    console.print(
        f"overhead ({arch}) {overhead:.3f}s (median of per-round differences {paired:.3f}s); "
        f"target ≤ {target:.3f}s: "
        + ("[green]met[/]" if max(overhead, paired) <= target else "[red]missed[/]")
    )
    report |= {
        "bare_s": round(bare_s, 3),
        "farm_s": round(farm_s, 3),
        "overhead_s": round(overhead, 3),
        "paired_overhead_s": round(paired, 3),
        "overhead": round(overhead / bare_s, 3),
    }
    if arch != "amd64" and "amd64" in arches:
        bare_amd64 = statistics.median(bare["amd64"])
        farm_amd64 = statistics.median(farm_times["amd64"])
        report |= {
            "bare_amd64_s": round(bare_amd64, 3),
            "farm_amd64_s": round(farm_amd64, 3),
            "overhead_amd64_s": round(farm_amd64 - bare_amd64, 3),
            "overhead_amd64": round((farm_amd64 - bare_amd64) / bare_amd64, 3),
            "emulation_cost": round(bare_s / bare_amd64, 3),
        }
        console.print(
            f"overhead under emulation ({arch}) {overhead:.3f}s = {overhead / bare_s:.1%} of "
            f"bare; amd64 {farm_amd64 - bare_amd64:.3f}s = "
            f"{(farm_amd64 - bare_amd64) / bare_amd64:.1%}; cost of emulation "
            f"(bare {arch} / bare amd64) ×{bare_s / bare_amd64:.2f}"
        )
    report |= {"runs": runs, "builders": builders, "target_s": round(target, 3)}
    return report
