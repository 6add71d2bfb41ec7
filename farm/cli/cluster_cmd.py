"""``farm cluster``: a farm of hosts, one container per host (``deploy/cluster``).

Plugged into ``farm`` through the ``farm.commands`` entry point. The work is
:mod:`farm.hosts.operate`; this module is its command line and its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="A farm of hosts: every part its own container on private networks.",
    no_args_is_help=True,
)

DEFAULT_DIR = Path("~/.farm/cluster")
DirOpt = Annotated[
    Path,
    typer.Option(
        "--dir",
        envvar="FARM_CLUSTER_DIR",
        help="The cluster directory: keys, genesis, secrets (made by the first `up`).",
    ),
]
console = Console(stderr=True, highlight=False)


def _say(text: str) -> None:
    console.print(f"[bold]==>[/] {text}", soft_wrap=True)


@app.command("up")
def up(
    dir: DirOpt = DEFAULT_DIR,
    project: Annotated[
        str, typer.Option(help="docker-compose project name (only for a new directory).")
    ] = "farm",
) -> None:
    """Make the cluster once (keys, genesis, tokens, volumes) and bring every host up.

    Four validators, Redis, PostgreSQL, the coordinator, three builder hosts (each with
    its own Docker Engine and the pinned builder image), a distribution node and a
    client container. A second `up` reuses everything. Ends when every host is healthy
    and every builder approved, with the URLs to use.
    """
    from farm.hosts.operate import cluster_up

    info = cluster_up(dir.expanduser(), _say, project=project)
    table = Table(title="farm of hosts", show_header=False)
    table.add_row("coordinator", info.coordinator_url)
    table.add_row("distribution node", info.dist_url + "/simple/")
    for host, builder in info.builders.items():
        table.add_row(f"builder host {host}", builder)
    table.add_row("operator token", str(info.dir / "operator" / "token"))
    table.add_row("farm CA (HTTPS)", str(info.ca_cert))
    Console().print(table)
    Console().print(
        "Submit a recipe (farm trusts the farm CA through SSL_CERT_FILE):\n"
        f"  SSL_CERT_FILE={info.ca_cert} farm submit recipes/iniconfig/2.0.0.yaml "
        f"--coordinator {info.coordinator_url} "
        f'--operator-token "$(cat {info.dir}/operator/token)" --wait\n'
        "Install what it verified:\n"
        f"  pip install --cert {info.ca_cert} --index-url {info.dist_url}/simple/ "
        "iniconfig==2.0.0\n"
        f"Stop it: farm cluster down --dir {info.dir}",
        soft_wrap=True,
        highlight=False,
    )


@app.command("down")
def down(
    dir: DirOpt = DEFAULT_DIR,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            help="Also delete every volume: ledgers, queue, database, builder engines.",
        ),
    ] = False,
) -> None:
    """Stop every host of the cluster (its directory and, by default, its volumes stay)."""
    from farm.hosts.operate import cluster_down

    cluster_down(dir.expanduser(), _say, volumes=volumes)


@app.command("status")
def status(dir: DirOpt = DEFAULT_DIR) -> None:
    """Each host's container state and health."""
    from farm.hosts.operate import cluster_status

    manifest, states = cluster_status(dir.expanduser())
    table = Table(title=f"farm of hosts ({manifest.project})")
    table.add_column("host")
    table.add_column("state")
    table.add_column("health")
    for service, (state, health) in states.items():
        table.add_row(service, state, health)
    Console().print(table)
    if not states:
        raise typer.Exit(1)


@app.command("add-builder")
def add_builder_cmd(
    name: Annotated[str, typer.Argument(help="The new builder host's hostname, e.g. b4.")],
    dir: DirOpt = DEFAULT_DIR,
) -> None:
    """Add a builder host: it joins with a one-time token and the operator approves it."""
    from farm.hosts.operate import add_builder

    builder_id = add_builder(dir.expanduser(), name, _say)
    typer.echo(builder_id)


@app.command("retire-builder")
def retire_builder_cmd(
    name: Annotated[str, typer.Argument(help="The builder host's hostname, e.g. b4.")],
    dir: DirOpt = DEFAULT_DIR,
) -> None:
    """Retire a builder host: no longer scheduled, retired on the ledger, container stopped."""
    from farm.hosts.operate import retire_builder

    builder_id = retire_builder(dir.expanduser(), name, _say)
    typer.echo(builder_id)
