"""``farm up``: the whole farm on this machine, taking one recipe from submission to pip."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from farm.cli import _follow
    from farm.localfarm import LocalFarm
    from farm.recipe import Recipe
    from farm.supervise import Supervisor

console = Console()

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "deploy" / "builder-image" / "build.sh"
DEFAULT_RECIPE = REPO / "recipes" / "iniconfig" / "2.0.0.yaml"
#: The signals that stop ``farm up`` in order (SIGKILL is left to the watchdog).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def ensure_image(digest: str, arch: str = "amd64") -> None:
    """Make sure the pinned builder image of ``arch`` exists here, building it
    reproducibly (``build.sh --arch ARCH``) if not.

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
    console.print(
        f"{arch} builder image {digest[:19]}… is not here; building it with "
        f"{IMAGE_SCRIPT.name} --arch {arch}"
    )
    proc = subprocess.run(
        ["bash", str(IMAGE_SCRIPT), "--arch", arch], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise ImageError(f"{IMAGE_SCRIPT} --arch {arch} failed (exit {proc.returncode})")
    built = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if built != digest:
        raise ImageDriftError(digest, built)


def host_arches(recipe: Recipe) -> list[str]:
    """The recipe's architectures this host can build (natively or under QEMU)."""
    from builders.arch import buildable_arches

    can = buildable_arches()
    return [a for a in recipe.architectures if a in can]


def recipe_for_this_host(recipe: Path, work: Path) -> Path:
    """``recipe`` if the builder image it pins for each architecture this host can build
    is here or this host rebuilds it identically; otherwise a copy under ``work`` pinned
    to the images this host builds, said loudly.

    For the local farm and the benchmarks only: a farm's builders must agree on one
    image per architecture, and on one machine they do; a recipe repository re-pins by
    pull request (deploy/builder-image/README.md).
    """
    from farm.errors import ImageDriftError
    from farm.recipe import load_recipe

    r = load_recipe(recipe)
    text = recipe.read_text(encoding="utf-8")
    drifts: list[ImageDriftError] = []
    for arch in host_arches(r):
        try:
            ensure_image(r.image_for(arch), arch)
        except ImageDriftError as exc:
            if text.count(exc.pinned) != 1:
                raise
            drifts.append(exc)
    if not drifts:
        return recipe
    for d in drifts:
        text = text.replace(d.pinned, d.built)
    copy = work / "repinned" / r.name / f"{r.version}.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    for drift in drifts:
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
    recipes_repo: Annotated[
        str | None,
        typer.Option(
            "--recipes-repo",
            metavar="PATH_OR_URL",
            help="The recipe repository the farm follows while it keeps running "
            "(default: the git repository of the current directory, if it has recipes/).",
        ),
    ] = None,
    recipes_branch: Annotated[
        str | None,
        typer.Option(
            "--recipes-branch",
            help="The branch to follow (default: a local repository's current branch, "
            "otherwise main).",
        ),
    ] = None,
    no_follow: Annotated[
        bool,
        typer.Option("--no-follow", help="Follow no recipe repository while the farm runs."),
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

    While it runs (taking RECIPE through included), a part that exits (a validator,
    Redis, a builder, the coordinator, the distribution node) is reported and restarted
    with its state after a backoff (0.5 s doubling to 8 s): a builder killed mid-build
    builds again, the coordinator resumes the builds in flight. One that exits again
    after 5 restarts within 60 s is left down, and farm up says what the farm can still
    do. farm up --status shows the parts.

    While it keeps running (--keep-running, --no-recipe) the farm follows a recipe
    repository: the git repository of the current directory (its current branch) if it
    has a recipes/ folder, or --recipes-repo. Every recipe on the branch is built once,
    and a recipe committed while the farm runs is built, attested and served with no
    other command (polled every 2 s); farm builds shows the commit that brought it.
    Recipes are built as committed: one pinned to a builder image this host does not
    build is reported, not re-pinned. --no-follow turns following off.
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
    follow = _follow_choice(keep_running or no_recipe, no_follow, recipes_repo, recipes_branch)
    received = _stop_on_signals()
    target: tuple[Path, str, str, list[str]] | None = None
    if no_recipe:
        console.print(f"[bold]farm up[/]: the farm under {root}, no recipe")
    else:
        path = recipe_for_this_host(recipe or DEFAULT_RECIPE, root)
        r = load_recipe(path)
        target = (path, r.name, r.version, host_arches(r))
        console.print(f"[bold]farm up[/]: {r.name} {r.version} under {root}")
    try:
        with local_farm(
            root,
            validators=validators,
            builders=builders,
            report=lambda line: console.print(f"  {line}", highlight=False),
            follow=(follow.source, follow.branch) if follow is not None else None,
        ) as farm:
            supervisor = _supervisor(farm)
            keep = keep_running or no_recipe
            with _profile_left(farm) if keep else contextlib.nullcontext():
                if target is not None:
                    _take_through(farm, supervisor, *target, timeout)
                if keep:
                    _run_until_stopped(farm, supervisor)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            console.print("the farm is stopped")
        # The shell's convention: 128 + the signal that stopped it (130 for Ctrl-C).
        raise SystemExit(128 + (received[0] if received else signal.SIGINT)) from None


def _follow_choice(
    keep: bool, no_follow: bool, repo: str | None, branch: str | None
) -> _follow.Followed | None:
    """The recipe repository the running farm follows (said on the console), if any."""
    from farm.cli import _follow
    from farm.errors import ConfigError

    if (repo is not None or branch is not None) and (no_follow or not keep):
        raise ConfigError(
            "--recipes-repo and --recipes-branch need a farm that keeps running "
            "(--keep-running or --no-recipe) and no --no-follow"
        )
    if not keep or no_follow:
        return None
    followed, line = _follow.choose(Path.cwd(), repo, branch)
    console.print(line, highlight=False)
    if followed is not None:
        from builders.arch import buildable_arches

        _follow.drifted(
            followed,
            ensure_image,
            lambda text: console.print(f"[yellow]warning:[/] {text}"),
            buildable_arches(),
        )
    return followed


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


def _supervisor(farm: LocalFarm) -> Supervisor:
    """The supervisor of the farm's parts, reporting on the console.

    Step it from this (the main) thread only: a part it restarts dies with the thread
    that started it.
    """
    from farm.supervise import Supervisor

    return Supervisor(
        farm.parts,
        farm.record,
        lambda line: console.print(f"  {line}", highlight=False, soft_wrap=True),
    )


def _supervised(supervisor: Supervisor, probe: Callable[[], bool]) -> Callable[[], bool]:
    """``probe``, restarting the parts that exited each time before it looks."""

    def step_then_probe() -> bool:
        supervisor.step()
        return probe()

    return step_then_probe


def _run_until_stopped(farm: LocalFarm, supervisor: Supervisor) -> None:
    """Restart the parts that exit until Ctrl-C, SIGTERM or SIGHUP (a KeyboardInterrupt)."""
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


def _take_through(
    farm: LocalFarm,
    supervisor: Supervisor,
    recipe: Path,
    name: str,
    version: str,
    arches: list[str],
    timeout: float,
) -> None:
    """Submit ``recipe`` for ``arches`` (those of its architectures this host can build),
    wait for its committed attestation and for the node to serve it.

    The parts that exit meanwhile are restarted (``supervisor``), so a builder killed
    in the middle of the build builds it again; if ``farm submit --wait`` loses the
    coordinator before the verdict, the verdict is waited for here.
    """
    from farm._lifetime import die_with_parent
    from farm.errors import FarmError
    from farm.localfarm import FARM, wait_until

    console.print(f"[bold]submitting[/] {recipe}")
    before = next(iter(farm.builds(name, version) or []), None)
    proc = subprocess.Popen(
        [*FARM, "submit", str(recipe), "--wait", "--timeout", str(timeout),
         *(f"--arch={a}" for a in arches),
         "--coordinator", farm.coordinator_url, "--operator-token", farm.operator_token],
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, then exec
    )  # fmt: skip
    try:
        while proc.poll() is None:
            supervisor.step()
            time.sleep(0.2)
    finally:
        if proc.poll() is None:  # farm up is stopping: so does the submission's follower
            proc.kill()
            proc.wait()
    failed = FarmError(
        f"the builders did not agree on {name} {version} (farm submit exit "
        f"{proc.returncode}); builder logs are under {farm.cluster.root}"
    )
    if proc.returncode != 0:
        builds = farm.builds(name, version)
        if builds is not None and (not builds or builds[0]["id"] == (before or {}).get("id")):
            raise failed  # the coordinator answers, and has no build of this submission
        if not builds or builds[0].get("status") in ("pending", "running"):
            console.print(
                "farm submit lost the coordinator before the build's verdict; "
                "waiting for the verdict (the coordinator is restarted)",
                highlight=False,
            )
            wait_until(
                "the build's verdict",
                _supervised(supervisor, lambda: _decided(farm, name, version, before)),
                timeout,
                farm.root / "coordinator.log",
            )
        if (farm.builds(name, version) or [{}])[0].get("status") != "verified":
            raise failed
    # Every architecture submitted: each has its own attestation (ADR 36, 42).
    want = set(arches)

    def committed() -> bool:
        return want <= {a.get("arch") for a in farm.committed_attestations(name, version)}

    def served() -> bool:
        release = farm.dist_serves(name, version)
        return release is not None and want <= {
            e["artifact"]["arch"] for e in release.get("artifacts", [])
        }

    with console.status("committing the attestation to the ledger"):
        wait_until(
            "the ledger commit of the attestation of " + ", ".join(sorted(want)),
            _supervised(supervisor, committed),
            timeout,
            farm.root / "coordinator.log",
        )
    with console.status("the distribution node follows the ledger and mirrors the artifact"):
        wait_until(
            "the distribution node serving the artifact for " + ", ".join(sorted(want)),
            _supervised(supervisor, served),
            timeout,
            farm.root / "dist.log",
        )
    release = farm.dist_serves(name, version) or {}
    _show(farm, release)


def _decided(farm: LocalFarm, name: str, version: str, before: dict[str, Any] | None) -> bool:
    """Whether a build of ``name`` ``version`` newer than ``before`` has ended.

    Raises FarmError if the coordinator answers and has no newer build (the
    submission never reached it).
    """
    from farm.errors import FarmError

    builds = farm.builds(name, version)
    if builds is None:  # the coordinator does not answer (yet)
        return False
    if not builds or (before is not None and builds[0].get("id") == before.get("id")):
        raise FarmError(f"the coordinator has no build of {name} {version} from this submission")
    return builds[0].get("status") not in ("pending", "running")


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
