"""``farm bench build``: farm's overhead over bare ``docker run`` of the same builds.

Times ``farm build`` of one recipe on three builders (dispatch through Redis, fetch
from the warm cache, hermetic run, output hashing, signing, verification of every
envelope, the live progress table) by calling the very function the command runs,
:func:`farm.cli.build_cmd.run_builds`, with the command's arguments, against the same
three builds started at once as bare ``docker run``s of the same image and command on
the same machine, several times each, and prints the medians. The last line is JSON:
``bare_s``, ``farm_s``, ``overhead_s`` (difference of the medians),
``paired_overhead_s`` (median of the per-round differences) and ``target_s``.
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
) -> None:
    """Median time of `farm build` on N builders vs N bare `docker run`s of the same build."""
    root = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    recipe = load_recipe(recipe_for_this_host(recipe_path, root))
    bare: list[float] = []
    farm_times: list[float] = []
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
            running = list_builders(redis_lib.Redis.from_url(cluster.redis.url))
            chosen = pick_builders(running, recipe.architectures[0], builders)

            def farm_once() -> float:
                # `farm build`'s own code from queueing to the last verified result,
                # with the same arguments (its progress table shown on stderr).
                arch, build_id = recipe.architectures[0], uuid.uuid4().hex
                start = time.monotonic()
                jobs = build_cmd.run_builds(
                    app, recipe, arch, chosen, build_id, build_cmd.default_wait(recipe), out=console
                )
                elapsed = time.monotonic() - start
                bad = [j for j in jobs if j.state != "DONE"]
                if bad:
                    who = bad[0].builder.builder_id[:12]
                    raise BuildError(f"farm build failed on {who}: {bad[0].error}")
                return elapsed

            console.print(
                f"{runs} rounds, each: {builders} bare docker runs at once, then `farm build` "
                f"on {builders} builders (after one warm-up round)"
            )
            bare_once(recipe, src, deps, root, builders)
            farm_once()
            for i in range(runs):
                bare.append(bare_once(recipe, src, deps, root, builders))
                farm_times.append(farm_once())
                console.print(f"  round {i + 1}: bare {bare[-1]:.2f}s, farm {farm_times[-1]:.2f}s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bare_s = statistics.median(bare)
    farm_s = statistics.median(farm_times)
    overhead = farm_s - bare_s
    # Rounds run back to back, so the per-round difference cancels slow drifts of the machine.
    paired = statistics.median(f - b for f, b in zip(farm_times, bare, strict=True))
    target = max(0.3, 0.1 * bare_s)
    table = Table("", "median s", "min s", "max s")
    table.add_row(
        f"bare docker run ×{builders}", f"{bare_s:.3f}", f"{min(bare):.3f}", f"{max(bare):.3f}"
    )
    table.add_row(
        f"farm build ×{builders}",
        f"{farm_s:.3f}",
        f"{min(farm_times):.3f}",
        f"{max(farm_times):.3f}",
    )
    console.print(table)
    console.print(
        f"overhead {overhead:.3f}s (median of per-round differences {paired:.3f}s); "
        f"target ≤ {target:.3f}s: "
        + ("[green]met[/]" if max(overhead, paired) <= target else "[red]missed[/]")
    )
    typer.echo(
        json.dumps(
            {
                "bare_s": round(bare_s, 3),
                "farm_s": round(farm_s, 3),
                "overhead_s": round(overhead, 3),
                "paired_overhead_s": round(paired, 3),
                "runs": runs,
                "builders": builders,
                "target_s": round(target, 3),
            }
        )
    )
