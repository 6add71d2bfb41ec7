"""``farm up``: the whole farm on this machine, taking one recipe from submission to pip."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from farm.localfarm import LocalFarm

console = Console()

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "deploy" / "builder-image" / "build.sh"
DEFAULT_RECIPE = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"
#: The signals that stop ``farm up`` in order (SIGKILL is left to the watchdog).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


def _stop_on_signals() -> list[int]:
    """SIGINT, SIGTERM and SIGHUP all become one KeyboardInterrupt: the orderly stop.

    A second signal while the farm stops is only acknowledged, so that it cannot cut
    the stop short and leave processes behind. Returns the list the signals received
    are appended to.
    """
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        stopping = bool(received)
        received.append(signum)
        if stopping:
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                console.print(f"{signal.Signals(signum).name}: already stopping the farm")
            return
        raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    return received


def up(
    recipe: Annotated[
        Path | None,
        typer.Argument(metavar="RECIPE", help="Recipe to build (default: a shipped one)."),
    ] = None,
    builders: Annotated[int, typer.Option("--builders", "-n", help="Local builder workers.")] = 3,
    validators: Annotated[int, typer.Option(help="Local ledger validators (n = 3f+1).")] = 4,
    root: Annotated[
        Path, typer.Option(help="Where the local farm keeps its state (kept between runs).")
    ] = Path.home() / ".farm" / "local",
    keep_running: Annotated[
        bool,
        typer.Option(
            help="Leave the farm running after the artifact is served, until Ctrl-C "
            "(or SIGTERM/SIGHUP); other farm commands use it through the profile ROOT/env."
        ),
    ] = False,
    no_recipe: Annotated[
        bool,
        typer.Option(
            "--no-recipe",
            help="Take no recipe through: start the farm and keep it running "
            "(implies --keep-running).",
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each stage.")] = 900,
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Start nothing: show each part of the farm running under --root (address, "
            "pid, uptime, restarts, whether it answers); exit 1 if none runs there.",
        ),
    ] = False,
) -> None:
    """Run the whole farm on this machine and take RECIPE through it.

    Starts a BFT ledger (VALIDATORS processes), Redis, the builders, the coordinator and
    the read-only distribution node; enrolls the builders (their keys are committed to
    the ledger); submits RECIPE; the builders rebuild it in hermetic containers; once
    they agree the coordinator commits the attestation to the ledger; the distribution
    node follows the ledger and serves the verified artifact with its proof, also as a
    pip index. State persists under --root.

    Ctrl-C, SIGTERM and SIGHUP stop every part in order; if farm up itself is killed,
    its parts die with it and a watchdog removes what is left (build containers, the
    profile). A later farm up first stops whatever a crashed run left behind.

    While it runs, a part that exits (a validator, Redis, a builder, the coordinator,
    the distribution node) is reported and restarted with its state after a backoff
    (0.5 s doubling to 8 s); one that exits again after 5 restarts within 60 s is left
    down, and farm up says what the farm can still do. farm up --status shows the parts.
    """
    from farm.errors import ConfigError
    from farm.localfarm import local_farm
    from farm.recipe import load_recipe

    if no_recipe and recipe is not None:
        raise ConfigError("give RECIPE or --no-recipe, not both")
    if status:
        if recipe is not None or no_recipe or keep_running:
            raise ConfigError(
                "--status starts nothing: give it no RECIPE, --no-recipe or --keep-running"
            )
        _show_status(root)
        return
    received = _stop_on_signals()
    target: tuple[Path, str, str] | None = None
    if no_recipe:
        console.print(f"[bold]farm up[/]: the farm under {root}, no recipe")
    else:
        path = recipe_for_this_host(recipe or DEFAULT_RECIPE, root)
        r = load_recipe(path)
        target = (path, r.name, r.version)
        console.print(f"[bold]farm up[/]: {r.name} {r.version} under {root}")
    try:
        with local_farm(
            root,
            validators=validators,
            builders=builders,
            report=lambda line: console.print(f"  {line}", highlight=False),
        ) as farm:
            keep = keep_running or no_recipe
            with _profile_left(farm) if keep else contextlib.nullcontext():
                if target is not None:
                    _take_through(farm, *target, timeout)
                if keep:
                    _run_until_stopped(farm)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            console.print("the farm is stopped")
        # The shell's convention: 128 + the signal that stopped it (130 for Ctrl-C).
        raise SystemExit(128 + (received[0] if received else signal.SIGINT)) from None


@contextlib.contextmanager
def _profile_left(farm: LocalFarm) -> Iterator[Path]:
    """The profile other farm commands read, for the duration of the block."""
    from farm.cli.profile import DEFAULT_PROFILE, write_profile

    path = farm.root / "env"
    if farm.record is not None:
        farm.record.add_file(path)
    write_profile(
        path,
        farm.profile(),
        f"Written by farm up (pid {os.getpid()}) for the farm under {farm.root};\n"
        "removed when it stops. Every farm command reads it (flags and the environment\n"
        "win); a shell can source it.",
    )
    default = path.resolve() == DEFAULT_PROFILE.expanduser().resolve()
    console.print(
        f"[bold]the farm is up[/]; its settings are in {path} (0600), which every farm "
        f"command reads{'' if default else ' once you export FARM_PROFILE=' + str(path)}:\n"
        "  farm submit recipes/NAME/VERSION.yaml --wait    rebuild a recipe\n"
        "  farm builds  |  farm builders  |  farm attestations NAME\n"
        "  farm pull NAME==VERSION                         download and verify\n"
        f"  pip install --index-url {farm.dist_url}/simple/ NAME==VERSION",
        highlight=False,
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _run_until_stopped(farm: LocalFarm) -> None:
    """Restart the parts that exit until Ctrl-C, SIGTERM or SIGHUP (a KeyboardInterrupt)."""
    from farm.supervise import Supervisor

    supervisor = Supervisor(
        farm.parts,
        farm.record,
        lambda line: console.print(f"  {line}", highlight=False, soft_wrap=True),
    )
    console.print(
        f"the farm is running; Ctrl-C (or kill {os.getpid()}) stops it and removes the profile; "
        f"farm up --status --root {farm.root} shows its parts",
        highlight=False,
    )
    while True:
        supervisor.step()
        time.sleep(0.2)


def _show_status(root: Path) -> None:
    """Print each part of the farm under ``root``; ConfigError if none runs there."""
    from farm.localfarm import RECORD
    from farm.supervise import farm_status

    parts = farm_status(root / RECORD)
    lines = [("PART", "ADDRESS", "PID", "UPTIME", "RESTARTS", "STATE", "READY")]
    for p in parts:
        state = p.state if not p.last_exit else f"{p.state} (last: {p.last_exit})"
        lines.append(
            (
                p.name,
                p.address or "-",
                str(p.pid) if p.pid is not None else "-",
                _duration(p.uptime),
                str(p.restarts),
                state,
                "yes" if p.ready else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    for line in lines:
        cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=False)]
        console.print("  ".join([*cells, line[-1]]), highlight=False, soft_wrap=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


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
