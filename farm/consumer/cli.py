"""``farm pull``, ``farm verify`` and ``farm coverage``: check artifacts against the ledger.

Start-up cost matters for ``farm verify`` of a large file: when this module is loaded
for ``farm verify FILE``, hashing FILE starts at once in a thread (hashlib releases the
GIL), overlapping the import of the verification modules and the rest of the CLI.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from farm.consumer.flow import Options
    from farm.consumer.verify import VerifiedArtifact

__all__ = ["coverage", "pull", "verify"]

# Options of `farm verify` that take a value (so their value is not the FILE argument).
_VALUE_OPTIONS = frozenset({"--node", "--genesis", "--state-dir", "--max-age"})


class _EarlyHash:
    """sha256 of one file, computed in a background thread from import time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.result: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._run, name="farm-verify-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from farm.consumer.flow import hash_file

        try:
            self.result = hash_file(self.path)
        except Exception:  # the main thread hashes again and reports the error itself
            self.result = None

    def get(self, path: Path) -> tuple[str, int] | None:
        """The digest if it was for ``path`` and succeeded, else None."""
        if path.absolute() != self.path.absolute():
            return None
        self._thread.join()
        return self.result


def _early_hash(argv: list[str]) -> _EarlyHash | None:
    """Start hashing the FILE of ``farm verify FILE`` (None for any other command)."""
    if len(argv) < 3 or argv[1] != "verify":
        return None
    skip = False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            path = Path(arg)
            return _EarlyHash(path) if path.is_file() else None
    return None


_EARLY = _early_hash(sys.argv)


def _options(
    genesis: Path | None,
    node: str | None,
    state_dir: Path | None,
    max_age: float | None,
    allow_stale: bool,
) -> Options:
    from farm.consumer.flow import Options
    from farm.consumer.settings import ConsumerSettings
    from farm.consumer.state import default_state_dir

    env = ConsumerSettings()
    return Options(
        genesis=genesis or env.genesis,
        node=node or env.dist_url,
        state_dir=state_dir or env.state_dir or default_state_dir(),
        max_age=max_age if max_age is not None else env.max_age,
        allow_stale=allow_stale,
    )


def _summary(v: VerifiedArtifact) -> str:
    from farm.consumer.verify import describe_age

    builders = ", ".join(b[:8] for b in v.builders)
    return (
        f"{v.name} {v.version} ({v.arch}) sha256:{v.sha256[:16]}…: "
        f"{len(v.builders)} builders agree ({builders}); ledger index {v.attestation_index}; "
        f"checkpoint size {v.tree_size}, {describe_age(v.checkpoint_age)} old"
    )


GenesisOpt = Annotated[
    Path | None,
    typer.Option(
        "--genesis", help="The ledger's genesis file, your trust root [env: FARM_GENESIS]."
    ),
]
NodeOpt = Annotated[
    str | None,
    typer.Option("--node", help="Distribution node base URL [env: FARM_DIST_URL]."),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the largest verified ledger tree is remembered "
        "[env: FARM_STATE_DIR; default: $XDG_STATE_HOME/farm].",
    ),
]
MaxAgeOpt = Annotated[
    float | None,
    typer.Option(
        "--max-age",
        min=1,
        help="Oldest checkpoint accepted, in seconds [env: FARM_MAX_AGE; default 86400].",
    ),
]
StaleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-stale", help="Accept a checkpoint older than --max-age (its age is shown)."
    ),
]


def pull(
    spec: Annotated[str, typer.Argument(help="What to download: NAME==VERSION.")],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture (default: this machine's).")
    ] = None,
    dest: Annotated[
        Path, typer.Option("--dest", "-o", help="Directory to write the artifact into.")
    ] = Path(),
    node: NodeOpt = None,
    genesis: GenesisOpt = None,
    state_dir: StateOpt = None,
    max_age: MaxAgeOpt = None,
    allow_stale: StaleOpt = False,
) -> None:
    """Download NAME==VERSION from a distribution node and verify it against the ledger.

    The file is written (with FILE.farm-evidence.json beside it, for `farm verify`)
    only once its digest, the builders' signatures and quorum, the coordinator's
    signature, the ledger inclusion proof, a fresh checkpoint co-signed by 2f+1 pinned
    validators and its consistency with what this machine saw before all check out.
    """
    from rich.console import Console

    from farm.consumer.flow import pull as do_pull
    from farm.errors import ConfigError

    name, sep, version = spec.partition("==")
    if not sep or not name or not version or "==" in version:
        raise ConfigError(f"{spec!r} is not NAME==VERSION")
    opts = _options(genesis, node, state_dir, max_age, allow_stale)
    done = do_pull(name, version, arch, dest, opts, _rich_progress)
    out = Console()
    for path, v in done:
        out.print(f"[green]✓[/] {path}  {_summary(v)}", highlight=False, soft_wrap=True)


@contextmanager
def _rich_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            progress.update(task, advance=n)

        yield advance


def verify(
    file: Annotated[Path, typer.Argument(help="The artifact to check.")],
    node: NodeOpt = None,
    genesis: GenesisOpt = None,
    state_dir: StateOpt = None,
    max_age: MaxAgeOpt = None,
    allow_stale: StaleOpt = False,
    online: Annotated[
        bool, typer.Option("--online", help="Ask the node for evidence even if FILE has some.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Never contact the node; use the evidence file.")
    ] = False,
) -> None:
    """Verify a file you already have against the ledger.

    Uses FILE.farm-evidence.json (saved by `farm pull`) if present, else asks the node
    for the evidence of FILE's digest. Offline, the checkpoint's age is still checked:
    past --max-age the file is refused unless --allow-stale (or the node is reachable
    to give current evidence).
    """
    from rich.console import Console

    from farm.consumer.flow import verify_file
    from farm.errors import ConfigError

    if online and offline:
        raise ConfigError("--online and --offline contradict each other; pick one")
    digest = _EARLY.get(file) if _EARLY is not None else None
    opts = _options(genesis, node, state_dir, max_age, allow_stale)
    outcome = verify_file(file, opts, digest=digest, online=online, offline=offline)
    Console().print(
        f"[green]✓[/] {file}  {_summary(outcome.verified)}  [dim](from {outcome.source})[/]",
        highlight=False,
        soft_wrap=True,
    )


def coverage(
    requirement: Annotated[
        list[Path],
        typer.Option(
            "-r",
            "--requirement",
            help="A file of pinned requirements, name==version a line (pip freeze, "
            "pip-compile); repeatable.",
            show_default=False,
        ),
    ],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture (default: this machine's).")
    ] = None,
    node: NodeOpt = None,
    genesis: GenesisOpt = None,
    state_dir: StateOpt = None,
    max_age: MaxAgeOpt = None,
    allow_stale: StaleOpt = False,
    upstream_index: Annotated[
        str,
        typer.Option(
            "--upstream-index",
            help="Index to compare the served files with (PEP 691), read directly.",
        ),
    ] = "https://pypi.org",
    no_upstream: Annotated[
        bool, typer.Option("--no-upstream", help="Do not compare with the upstream index.")
    ] = False,
    require_match: Annotated[
        bool,
        typer.Option(
            "--require-match",
            help="Also fail when a verified artifact is not upstream's file bit for bit.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for CI) instead of a table.")
    ] = False,
) -> None:
    """Is every pinned requirement served by the node, verified, and upstream's file?

    For each name==version line, asks the distribution node for the release and checks
    it as `farm pull` would (the node is untrusted: evidence against the genesis, the
    bytes downloaded and hashed), then compares the verified file with the upstream
    index's. Unpinned lines are refused, naming the line. Prints a table (requirement,
    served, verified, matches upstream, note), or --json.

    Exit status: 0 when every requirement is served and verified; 1 when any is missing
    or fails verification (or, with --require-match, differs from upstream).
    """
    from rich.console import Console

    from farm.cli._tables import table
    from farm.consumer.coverage import build_report
    from farm.consumer.coverage_flow import observe
    from farm.errors import ConfigError
    from farm.requirements import pinned_from_args

    if require_match and no_upstream:
        raise ConfigError("--require-match needs the upstream comparison; drop --no-upstream")
    pins = pinned_from_args(requirement, [])
    opts = _options(genesis, node, state_dir, max_age, allow_stale)
    err = Console(stderr=True)
    with err.status("checking…") as status:
        observations = observe(
            pins,
            opts,
            arch=arch,
            upstream=None if no_upstream else upstream_index,
            progress=lambda spec: status.update(f"checking {spec}…"),
        )
    report = build_report(observations, require_match=require_match)
    if as_json:
        import json

        typer.echo(json.dumps(report.as_json(), indent=2, sort_keys=True))
    else:
        grid = table("requirement", "served", "verified", "matches upstream", "note", wide=False)
        colour = {"yes": "green", "no": "red"}
        for row in report.rows:
            grid.add_row(
                row.requirement,
                *(
                    f"[{colour[v]}]{v}[/]" if v in colour else v
                    for v in (row.served, row.verified, row.matches_upstream)
                ),
                row.note,
            )
        out = Console()
        out.print(grid)
        out.print(report.summary(), highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
