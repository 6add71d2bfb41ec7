"""``farm up``: the whole farm on this machine, building one recipe on N local builders."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "deploy" / "builder-image" / "build.sh"
DEFAULT_RECIPE = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"


def ensure_image(digest: str) -> None:
    """Make sure the pinned builder image exists here, building it reproducibly if not."""
    import docker

    from farm.errors import ConfigError, ImageError

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
        raise ImageError(
            f"the recipe pins builder image {digest} but this host built {built}: the Debian "
            "packages it is made from have changed since the recipe was pinned "
            "(see deploy/builder-image/README.md: rebuild and re-pin)"
        )


def up(
    recipe: Annotated[
        Path, typer.Argument(metavar="RECIPE", help="Recipe to build (default: a shipped one).")
    ] = DEFAULT_RECIPE,
    builders: Annotated[int, typer.Option("--builders", "-n", help="Local builder workers.")] = 3,
    root: Annotated[
        Path, typer.Option(help="Where the local cluster keeps its state.")
    ] = Path.home() / ".farm" / "cluster",
) -> None:
    """Start Redis and N builder workers here, build RECIPE on all of them, show the agreement.

    Builder identities persist under --root, so builder ids stay the same across runs.
    """
    from farm.cli.build_cmd import build
    from farm.cluster import local_cluster
    from farm.recipe import load_recipe

    r = load_recipe(recipe)
    ensure_image(r.image)
    console.print(f"starting Redis and {builders} builders under {root}")
    with local_cluster(root, builders) as cluster:
        for b in cluster.builders:
            console.print(f"  builder {b.builder_id[:12]} (log {b.log_path})", highlight=False)
        build(
            recipe,
            builders=builders,
            arch=None,
            redis_url=cluster.redis.url,
            timeout=None,
            json_out=None,
        )
