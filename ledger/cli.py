"""``farm ledger``: make validator keys and a genesis, run one validator.

Plugged into ``farm`` through the ``farm.commands`` entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from farm.errors import ConfigError
from farm.logs import LogFormat, LogFormatOption

if TYPE_CHECKING:
    from ledger.genesis import Genesis

app = typer.Typer(
    help="Run a ledger validator: make its key and the genesis, then run it.",
    no_args_is_help=True,
)

DirOpt = Annotated[Path, typer.Option("--dir", help="The validator's directory.")]


def _public_dict(path: Path) -> dict[str, object]:
    """A farm public key dict from a ``.pub`` JSON file or a private key file."""
    from farm.keys import public_key_from_dict

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read key: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not a public key file: {exc}") from None
        public_key_from_dict(data)
        return dict(data)
    from farm.keys import load_key

    return load_key(path).public_dict()


def _write_keypair(path: Path, *, force: bool = False) -> str:
    """Make an Ed25519 key at ``path`` (0600) and its public dict beside it (.pub)."""
    from farm.keys import generate_key, save_key

    key = generate_key()
    save_key(key, path, overwrite=force)
    path.with_suffix(".pub").write_text(json.dumps(key.public_dict(), indent=2) + "\n")
    return key.private.public_key().public_bytes_raw().hex()


@app.command()
def init(
    name: Annotated[str, typer.Option("--name", help="The validator's name in genesis.")],
    dir: DirOpt,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Make a validator's Ed25519 key (mode 0600) and print its public key (hex)."""
    from farm.checkpoint import encode_vkey
    from ledger.settings import KEY_FILE

    path = dir / KEY_FILE
    pub = _write_keypair(path, force=force)
    (dir / "name").write_text(name + "\n")
    typer.echo(pub)
    typer.echo(f"key: {path} (mode 0600)", err=True)
    typer.echo(f"vkey: {encode_vkey(name, bytes.fromhex(pub))}", err=True)


def _parse_validator(spec: str) -> dict[str, str]:
    """``NAME=PUBKEY@P2P_HOST:PORT,HTTP_HOST:PORT`` → a ValidatorInfo dict."""
    name, eq, rest = spec.partition("=")
    pub, at, addrs = rest.partition("@")
    p2p, comma, http = addrs.partition(",")
    if not (eq and at and comma and name and pub and p2p and http):
        raise ConfigError(f"--validator {spec!r}: want NAME=PUBKEY@P2P_HOST:PORT,HTTP_HOST:PORT")
    return {"name": name, "public_key": pub.lower(), "p2p": p2p, "http": http}


def _make_genesis(
    chain_id: str,
    validators: list[dict[str, str]],
    operators: list[dict[str, object]],
    coordinators: list[dict[str, object]],
    quorum: int,
) -> Genesis:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from ledger.genesis import Genesis

    try:
        return Genesis.model_validate(
            {
                "chain_id": chain_id,
                "genesis_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "validators": validators,
                "operators": operators,
                "coordinators": coordinators,
                "quorum": quorum,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid genesis: {where}: {first['msg']}") from None


@app.command()
def genesis(
    chain_id: Annotated[str, typer.Option("--chain-id", help="The chain's name.")],
    validator: Annotated[
        list[str],
        typer.Option(
            "--validator", help="NAME=PUBKEY@P2P_HOST:PORT,HTTP_HOST:PORT (repeat, in order)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write genesis.json.")],
    operator: Annotated[
        list[Path] | None, typer.Option("--operator", help="An operator's key file (.pub).")
    ] = None,
    coordinator: Annotated[
        list[Path] | None, typer.Option("--coordinator", help="A coordinator's key file (.pub).")
    ] = None,
    quorum: Annotated[int, typer.Option(help="Builders an attestation needs.")] = 3,
) -> None:
    """Assemble a genesis file from validator keys and operator/coordinator keys."""
    from ledger.genesis import save_genesis

    g = _make_genesis(
        chain_id,
        [_parse_validator(v) for v in validator],
        [_public_dict(p) for p in operator or []],
        [_public_dict(p) for p in coordinator or []],
        quorum,
    )
    save_genesis(g, out)
    typer.echo(f"genesis {g.hash} ({g.n} validators) → {out}")


@app.command()
def testnet(
    n: Annotated[int, typer.Argument(help="How many validators.")],
    dir: Annotated[Path, typer.Option("--dir", help="Where to make the testnet.")],
    base_port: Annotated[
        int, typer.Option("--base-port", help="Validator i uses P+2i (p2p) and P+2i+1 (HTTP).")
    ] = 26600,
    chain_id: Annotated[str, typer.Option("--chain-id")] = "farm-testnet",
    quorum: Annotated[int, typer.Option(help="Builders an attestation needs.")] = 3,
    host: Annotated[str, typer.Option(help="Address every validator binds.")] = "127.0.0.1",
) -> None:
    """Make N validator directories, an operator and a coordinator key, and genesis."""
    from ledger.genesis import save_genesis

    if n < 1:
        raise ConfigError("a testnet needs at least one validator")
    if (dir / "genesis.json").exists():
        raise ConfigError(f"{dir}: a testnet is already there")
    validators = []
    for i in range(n):
        name = f"v{i}"
        vdir = dir / name
        pub = _write_keypair(vdir / "validator.key")
        (vdir / "name").write_text(name + "\n")
        p2p, http = base_port + 2 * i, base_port + 2 * i + 1
        validators.append(
            {"name": name, "public_key": pub, "p2p": f"{host}:{p2p}", "http": f"{host}:{http}"}
        )
    _write_keypair(dir / "operator.key")
    _write_keypair(dir / "coordinator.key")
    g = _make_genesis(
        chain_id,
        validators,
        [_public_dict(dir / "operator.pub")],
        [_public_dict(dir / "coordinator.pub")],
        quorum,
    )
    save_genesis(g, dir / "genesis.json")
    typer.echo(f"testnet of {n} in {dir}; genesis {g.hash}")
    for v in validators:
        typer.echo(
            f"  farm ledger run --dir {dir / v['name']} --genesis {dir / 'genesis.json'}"
            f"   # http://{v['http']}"
        )


@app.command()
def run(
    dir: DirOpt,
    genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis file.")],
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "INFO",
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Run one validator until SIGTERM or SIGINT (FARM_LEDGER_* settings apply).

    Serves GET /healthz, /readyz (caught up, 2f peers connected) and /metrics
    (Prometheus) on its HTTP address, beside the ledger API.
    """
    import uvloop
    from pydantic import ValidationError

    from farm.logs import Service, setup_logging
    from ledger.process import serve
    from ledger.settings import NodeSettings

    try:
        setup_logging(Service.validator, log_format, log_level)
    except ValueError as exc:
        raise ConfigError(f"--log-level: {exc}") from None
    try:
        settings = NodeSettings(dir=dir, genesis=genesis)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid FARM_LEDGER_* setting: {where}: {first['msg']}") from None
    # libuv's loop: frames, timers and HTTP cost a fraction of the stock loop's CPU.
    uvloop.run(serve(settings))
