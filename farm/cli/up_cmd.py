"""``farm up``: the whole farm on this machine, taking one recipe from submission to pip."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from farm.localfarm import LocalFarm

console = Console()

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "deploy" / "builder-image" / "build.sh"
DEFAULT_RECIPE = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"


def ensure_image(digest: str) -> None:
    """Make sure the pinned builder image exists here, building it reproducibly if not.

    Raise :class:`~farm.errors.ImageDriftError` when this host builds another image: the
    Debian packages it is made from changed since the recipe was pinned.
    """
    import docker

    from farm.errors import ConfigError, ImageDriftError, ImageError

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ConfigError(f"cannot reach the Docker Engine: {exc}") from None
    try:
        client.images.get(digest)
        return
    except docker.errors.ImageNotFound:
        pass
    console.print(f"builder image {digest[:19]}… is not here; building it with {IMAGE_SCRIPT.name}")
    proc = subprocess.run(
        ["bash", str(IMAGE_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise ImageError(f"{IMAGE_SCRIPT} failed (exit {proc.returncode})")
    built = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if built != digest:
        raise ImageDriftError(digest, built)


def recipe_for_this_host(recipe: Path, work: Path) -> Path:
    """``recipe`` if its pinned builder image is here or this host rebuilds it identically;
    otherwise a copy under ``work`` pinned to the image this host builds, said loudly.

    For the local farm and the benchmarks only: a farm's builders must agree on one
    image, and on one machine they do; a recipe repository re-pins by pull request
    (deploy/builder-image/README.md).
    """
    from farm.errors import ImageDriftError
    from farm.recipe import load_recipe

    r = load_recipe(recipe)
    try:
        ensure_image(r.image)
        return recipe
    except ImageDriftError as drift:
        text = recipe.read_text(encoding="utf-8")
        if text.count(drift.pinned) != 1:
            raise
        copy = work / "repinned" / r.name / f"{r.version}.yaml"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text.replace(drift.pinned, drift.built), encoding="utf-8")
        console.print(
            f"[yellow]warning:[/] {drift}\n"
            f"  building {r.name} {r.version} with this host's image {drift.built[:19]}… "
            f"instead (a re-pinned copy: {copy})",
            highlight=False,
        )
        return copy


def up(
    recipe: Annotated[
        Path, typer.Argument(metavar="RECIPE", help="Recipe to build (default: a shipped one).")
    ] = DEFAULT_RECIPE,
    builders: Annotated[int, typer.Option("--builders", "-n", help="Local builder workers.")] = 3,
    validators: Annotated[int, typer.Option(help="Local ledger validators (n = 3f+1).")] = 4,
    root: Annotated[
        Path, typer.Option(help="Where the local farm keeps its state (kept between runs).")
    ] = Path.home() / ".farm" / "local",
    keep_running: Annotated[
        bool,
        typer.Option(help="Leave the farm running after the artifact is served, until Ctrl-C."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each stage.")] = 900,
) -> None:
    """Run the whole farm on this machine and take RECIPE through it.

    Starts a BFT ledger (VALIDATORS processes), Redis, the builders, the coordinator and
    the read-only distribution node; enrolls the builders (their keys are committed to
    the ledger); submits RECIPE; the builders rebuild it in hermetic containers; once
    they agree the coordinator commits the attestation to the ledger; the distribution
    node follows the ledger and serves the verified artifact with its proof, also as a
    pip index. State persists under --root.
    """
    from farm.localfarm import local_farm
    from farm.recipe import load_recipe

    recipe = recipe_for_this_host(recipe, root)
    r = load_recipe(recipe)
    console.print(f"[bold]farm up[/]: {r.name} {r.version} under {root}")
    with local_farm(
        root,
        validators=validators,
        builders=builders,
        report=lambda line: console.print(f"  {line}", highlight=False),
    ) as farm:
        _take_through(farm, recipe, r.name, r.version, timeout)
        if keep_running:
            console.print("the farm is running; Ctrl-C stops it")
            try:
                while all(p.alive() for p in farm.processes):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
            console.print("stopping")


def _take_through(farm: LocalFarm, recipe: Path, name: str, version: str, timeout: float) -> None:
    """Submit ``recipe``, wait for its committed attestation and for the node to serve it."""
    from farm.errors import FarmError
    from farm.localfarm import FARM, wait_until

    console.print(f"[bold]submitting[/] {recipe}")
    proc = subprocess.run(
        [*FARM, "submit", str(recipe), "--wait", "--timeout", str(timeout),
         "--coordinator", farm.coordinator_url, "--operator-token", farm.operator_token],
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise FarmError(
            f"the builders did not agree on {name} {version} (farm submit exit "
            f"{proc.returncode}); builder logs are under {farm.cluster.root}"
        )
    with console.status("committing the attestation to the ledger"):
        wait_until(
            "the attestation's ledger commit",
            lambda: bool(farm.committed_attestations(name, version)),
            timeout,
            farm.root / "coordinator.log",
        )
    with console.status("the distribution node follows the ledger and mirrors the artifact"):
        wait_until(
            "the distribution node serving the artifact",
            lambda: farm.dist_serves(name, version) is not None,
            timeout,
            farm.root / "dist.log",
        )
    release = farm.dist_serves(name, version) or {}
    _show(farm, release)


def _show(farm: LocalFarm, release: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"verified and served: {release.get('name')} {release.get('version')}")
    for column in ("artifact", "arch", "sha256", "ledger index", "builders"):
        table.add_column(column)
    for evidence in release.get("artifacts", []):
        artifact = evidence["artifact"]
        envelopes = evidence.get("bundle", {}).get("builder_envelopes", [])
        table.add_row(
            artifact["filename"],
            artifact["arch"],
            artifact["sha256"][:16] + "…",
            str(evidence["attestation"]["index"]),
            str(len(envelopes)),
        )
    console.print(table)
    console.print(
        f"checkpoint: tree size {release.get('tree_size')}, co-signed by the validators\n"
        f"distribution node: {farm.dist_url}\n"
        f"install it:  pip install --index-url {farm.dist_url}/simple/ "
        f"{release.get('name')}=={release.get('version')}\n"
        f"or verify:   farm pull {release.get('name')}=={release.get('version')} "
        f"--node {farm.dist_url} --genesis {farm.genesis}",
        highlight=False,
    )
