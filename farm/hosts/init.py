"""The cluster directory: keys, genesis, secrets and the compose environment, made once.

``farm cluster up`` keeps everything a farm of hosts is made from in one directory
(default ``~/.farm/cluster``), which ``deploy/cluster/docker-compose.yml`` mounts from::

    cluster.json                 the manifest; written last, its presence says DIR is whole
    genesis.json                 the chain: v0..v3 named by hostname, operator, coordinator
    public/                      operator.pub, coordinator.pub (public halves, JSON);
                                 coordinator.pub is mounted into every builder host:
                                 it runs only tasks signed by that key (ADR 41)
    compose.env                  docker-compose's --env-file (paths, ports, image IDs)
    compose.builders.yml         builder hosts added later (``farm cluster add-builder``)
    public/ca.pem                the farm CA's certificate: every host and client trusts it
    public/ca-bundle.pem         the host's CA bundle plus the farm CA (builder hosts, which
                                 also reach PyPI)
    secrets/vN/validator.key     validator vN's key                      → vN only
    secrets/coordinator/         coordinator.key, postgres-password, redis-password,
                                 tls.pem + tls.key (HTTPS)               → coordinator only
    secrets/dist/                tls.pem + tls.key (HTTPS)               → dist only
    secrets/redis/               tls.pem + tls.key (Redis over TLS), users.acl (the
                                 broker's users, passwords hashed), admin-password
                                                                         → redis only
    secrets/postgres/            postgres-password                       → postgres only
    secrets/bN/token             bN's one-time enrollment token (written by ``up`` once
                                 the coordinator runs)                   → bN only
    secrets/bN/redis-password    bN's own broker user's password         → bN only
    operator/operator.key        the operator key (signs enroll, retire, revoke): the
                                 host's CLI only, never mounted into any container
    operator/token               the operator's bearer token: the host's CLI only
    operator/ca.key              the farm CA's key: issues the certificates above; the
                                 host's CLI only, never mounted into any container

Invariants:

- Nothing here is ever replaced: a second :func:`init_cluster` on a whole directory
  reuses it (same keys, same genesis), and keys are made only in a fresh directory.
- A directory is made whole or not at all: it is assembled in a sibling directory and
  renamed into place. A directory that holds anything but no manifest, or a manifest
  whose files are missing or whose genesis changed, is refused (:class:`ClusterStateError`)
  rather than completed or overwritten.
- Every secret is mode 0400 in a 0700 directory, both owned by the uid of the service
  that reads it (:data:`SERVICE_UID`, the image's ``farm`` user, for all of them; the
  operator key and token by the caller), and each service's directory is mounted into
  it alone. The operator's directory is mounted into none: the coordinator relays the
  transactions the operator signs on the host and holds no operator key (ADR 34).
- The coordinator, the distribution node and Redis serve TLS only, each with a
  certificate of the farm CA naming its compose hostname (and ``localhost``/127.0.0.1,
  which its health probe uses); the CA key stays with the operator (ADR 43).
- Redis has a user per builder host, limited to the keys of the builder the operator
  approved on that host (``broker_grants``; :mod:`farm.hosts.broker_acl`), and one for
  the coordinator; :func:`write_broker_acl` rewrites ``users.acl`` from the passwords in
  the secrets and the manifest's grants.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from farm.errors import ConfigError
from farm.keys import KeyPair, generate_key, save_key
from farm.ports import free_port
from farm.tls import CA_CERT, issue_cert, make_ca

__all__ = [
    "BUILDERS",
    "CHAIN_ID",
    "COORDINATOR_PORT",
    "DIST_PORT",
    "HTTP_PORT",
    "P2P_PORT",
    "SERVICE_UID",
    "TLS_SERVICES",
    "VALIDATORS",
    "ClusterDir",
    "ClusterStateError",
    "Manifest",
    "check_builder_name",
    "init_cluster",
    "load_cluster",
    "new_password",
    "save_manifest",
    "write_broker_acl",
    "write_secret",
]

#: uid (and gid) of the ``farm`` user of ``farm-host:bookworm``, which runs every service.
SERVICE_UID = 1000
#: The validators' hostnames, in genesis order.
VALIDATORS = ("v0", "v1", "v2", "v3")
#: The builder hosts a new cluster starts with.
BUILDERS = ("b1", "b2", "b3")
#: Every validator's peer and HTTP port (each is its own host, so all use the same).
P2P_PORT = 26656
HTTP_PORT = 26657
#: Ports inside the coordinator's and the distribution node's containers.
COORDINATOR_PORT = 8600
DIST_PORT = 8700
CHAIN_ID = "farm-cluster"
#: The services that serve TLS, each with a certificate naming its compose hostname.
TLS_SERVICES = ("coordinator", "dist", "redis")
#: Hostnames the compose file already uses: a builder host may not take one.
RESERVED = frozenset({*VALIDATORS, "redis", "postgres", "coordinator", "dist", "client"})
MANIFEST = "cluster.json"
_BUILDER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class ClusterStateError(ConfigError):
    """A cluster directory that is half made, changed by hand, or not one at all."""


class Manifest(BaseModel):
    """What a cluster directory holds (``cluster.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = Field(default=1, description="Version of this file's layout.")
    project: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Compose project.")
    chain_id: str
    genesis_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    coordinator_port: int = Field(ge=1, le=65535, description="Published on 127.0.0.1.")
    dist_port: int = Field(ge=1, le=65535, description="Published on 127.0.0.1.")
    builder_archive: str = Field(description="docker-archive of the pinned builder image.")
    builder_image_id: str = Field(pattern=_IMAGE_ID.pattern, description="Its pinned ID.")
    builders: tuple[str, ...] = Field(description="Builder hosts that take builds.")
    retired: tuple[str, ...] = Field(default=(), description="Builder hosts retired.")
    broker_grants: dict[str, str] = Field(
        default_factory=dict,
        description="Builder host → the approved builder id whose broker keys its Redis "
        "user reaches (none: PING only).",
    )
    created_at: str


class ClusterDir:
    """Where each file of a cluster directory is (paths only; no I/O)."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    @property
    def manifest(self) -> Path:
        """``cluster.json``."""
        return self.root / MANIFEST

    @property
    def genesis(self) -> Path:
        """The chain's genesis (public)."""
        return self.root / "genesis.json"

    @property
    def env_file(self) -> Path:
        """docker-compose's ``--env-file``."""
        return self.root / "compose.env"

    @property
    def builders_override(self) -> Path:
        """The compose override that defines builder hosts added later."""
        return self.root / "compose.builders.yml"

    @property
    def operator_key(self) -> Path:
        """The operator key (host only: no container mounts it)."""
        return self.root / "operator" / "operator.key"

    @property
    def operator_token(self) -> Path:
        """The operator's bearer token (host only)."""
        return self.root / "operator" / "token"

    @property
    def ca_cert(self) -> Path:
        """The farm CA's certificate (public: every host and client trusts it)."""
        return self.root / "public" / CA_CERT

    @property
    def ca_bundle(self) -> Path:
        """The host's CA bundle plus the farm CA: what builder hosts trust (they reach
        the farm's services and PyPI)."""
        return self.root / "public" / "ca-bundle.pem"

    @property
    def ca_key(self) -> Path:
        """The farm CA's key (host only: no container mounts it)."""
        return self.root / "operator" / "ca.key"

    def redis_password(self, service: str) -> Path:
        """``service``'s own Redis user's password (coordinator, a builder host)."""
        return self.secrets(service) / "redis-password"

    @property
    def broker_acl(self) -> Path:
        """Redis's ACL file (passwords hashed)."""
        return self.secrets("redis") / "users.acl"

    @property
    def redis_admin_password(self) -> Path:
        """The Redis ``admin`` user's password (Redis's own secrets: reloads the ACL)."""
        return self.secrets("redis") / "admin-password"

    def tls_cert(self, service: str) -> Path:
        """``service``'s TLS certificate (in its own secrets)."""
        return self.secrets(service) / "tls.pem"

    def tls_key(self, service: str) -> Path:
        """``service``'s TLS key (in its own secrets)."""
        return self.secrets(service) / "tls.key"

    def secrets(self, service: str) -> Path:
        """The directory mounted into ``service`` alone."""
        return self.root / "secrets" / service

    def enrollment_token(self, builder: str) -> Path:
        """Builder host ``builder``'s one-time enrollment token."""
        return self.secrets(builder) / "token"

    def required(self, m: Manifest) -> list[Path]:
        """The files a whole directory described by ``m`` has."""
        paths = [self.genesis, self.env_file, self.root / "public" / "operator.pub"]
        # Builder hosts are configured with the coordinator's public key (ADR 41).
        paths.append(self.root / "public" / "coordinator.pub")
        paths += [self.secrets(v) / "validator.key" for v in VALIDATORS]
        paths += [
            self.secrets("coordinator") / name for name in ("coordinator.key", "postgres-password")
        ]
        paths.append(self.operator_key)
        paths += [self.ca_cert, self.ca_bundle, self.ca_key]
        paths += [f(s) for s in TLS_SERVICES for f in (self.tls_cert, self.tls_key)]
        paths.append(self.secrets("postgres") / "postgres-password")
        paths += [self.secrets(b) for b in m.builders]
        paths += [self.broker_acl, self.redis_admin_password, self.redis_password("coordinator")]
        paths += [self.redis_password(b) for b in m.builders]
        return paths


def check_builder_name(name: str) -> str:
    """``name`` if it can be a new builder host's hostname; ConfigError saying why not."""
    if not _BUILDER_NAME.fullmatch(name):
        raise ConfigError(
            f"builder host name {name!r}: use a lower-case letter, then up to 29 letters, "
            "digits or '-' (it is the host's hostname)"
        )
    if name in RESERVED:
        raise ConfigError(f"builder host name {name!r} is taken by another service")
    return name


def _owned(path: Path, uid: int, mode: int) -> None:
    """Give ``path`` to ``uid`` (its group too) with ``mode``."""
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    elif os.geteuid() != uid:
        raise ClusterStateError(
            f"{path}: the services run as uid {uid} and must own their secrets: "
            "run farm cluster as root (or as that uid)"
        )
    path.chmod(mode)


def secret_dir(path: Path, uid: int = SERVICE_UID) -> Path:
    """Make ``path`` (0700, owned by ``uid``) if missing; return it."""
    path.mkdir(parents=True, exist_ok=True)
    _owned(path, uid, 0o700)
    return path


def write_secret(path: Path, data: bytes, uid: int = SERVICE_UID) -> None:
    """Write ``data`` to ``path`` as a secret: mode 0400, owned by ``uid``, in one rename."""
    secret_dir(path.parent, uid)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _owned(Path(tmp), uid, 0o400)
    Path(tmp).replace(path)


def _key(path: Path, uid: int) -> KeyPair:
    """A fresh key saved at ``path`` as a secret of ``uid``."""
    key = generate_key()
    secret_dir(path.parent, uid)
    save_key(key, path)
    _owned(path, uid, 0o400)
    return key


def _write_json(path: Path, value: object, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(mode)
    Path(tmp).replace(path)


def save_manifest(d: ClusterDir, m: Manifest) -> None:
    """Write ``cluster.json`` (atomically)."""
    _write_json(d.manifest, m.model_dump(mode="json"))


def _compose_env(d: ClusterDir, m: Manifest) -> str:
    lines = {
        "FARM_CLUSTER_DIR": str(d.root),
        "FARM_CHAIN_ID": m.chain_id,
        "FARM_COORDINATOR_PORT": str(m.coordinator_port),
        "FARM_DIST_PORT": str(m.dist_port),
        "FARM_BUILDER_ARCHIVE": m.builder_archive,
        "FARM_BUILDER_IMAGE_ID": m.builder_image_id,
        "FARM_CA_BUNDLE": str(d.ca_bundle),
    }
    for key, value in lines.items():
        if "\n" in value or "$" in value:
            raise ConfigError(f"{key}={value!r}: compose env values cannot hold '$' or newlines")
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def write_broker_acl(d: ClusterDir, m: Manifest, uid: int = SERVICE_UID) -> None:
    """Rewrite Redis's ACL file for ``m``'s builder hosts and grants (Redis reads it at
    start; ``ACL LOAD`` in its container reloads it)."""
    from farm.hosts.broker_acl import acl_file

    def read(path: Path) -> str:
        return path.read_text(encoding="utf-8").strip()

    text = acl_file(
        read(d.redis_admin_password),
        read(d.redis_password("coordinator")),
        {b: (read(d.redis_password(b)), m.broker_grants.get(b)) for b in m.builders},
    )
    write_secret(d.broker_acl, text.encode(), uid)


def new_password() -> bytes:
    """A fresh password (hex: safe in a URL)."""
    return secrets.token_hex(24).encode()


def load_cluster(root: Path) -> Manifest:
    """The manifest of a whole cluster directory; ClusterStateError if it is not one."""
    d = ClusterDir(root)
    if not d.manifest.exists():
        raise ClusterStateError(f"{d.root}: no cluster there (make one with `farm cluster up`)")
    try:
        m = Manifest.model_validate_json(d.manifest.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ClusterStateError(
            f"{d.manifest}: not a cluster manifest: {where}: {first['msg']}"
        ) from None
    missing = [str(p.relative_to(d.root)) for p in d.required(m) if not p.exists()]
    if missing:
        raise ClusterStateError(
            f"{d.root}: half-made or damaged cluster directory, missing {', '.join(missing)}; "
            "restore them or remove the directory (`farm cluster down --volumes`) and start again"
        )
    from ledger.genesis import load_genesis

    if load_genesis(d.genesis).hash != m.genesis_hash:
        raise ClusterStateError(
            f"{d.genesis}: changed since the cluster was made (its hash is not the manifest's)"
        )
    return m


def init_cluster(
    root: Path,
    *,
    builder_archive: Path,
    builder_image_id: str,
    project: str = "farm",
    coordinator_port: int | None = None,
    dist_port: int | None = None,
    builders: Iterable[str] = BUILDERS,
    uid: int = SERVICE_UID,
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt"),
) -> tuple[Manifest, bool]:
    """Make the cluster directory ``root`` once; reuse it when it is already whole.

    Returns the manifest and whether it was made now. Raises ClusterStateError for a
    directory holding anything but a whole cluster, ConfigError for a bad argument.
    """
    d = ClusterDir(root)
    if d.manifest.exists():
        return load_cluster(d.root), False
    if d.root.exists() and (not d.root.is_dir() or any(d.root.iterdir())):
        found = ", ".join(sorted(p.name for p in d.root.iterdir())[:6]) if d.root.is_dir() else ""
        raise ClusterStateError(
            f"{d.root}: not a cluster directory (no {MANIFEST}"
            + (f"; it holds {found}" if found else "")
            + "): a half-made one is never completed; remove it or choose another --dir"
        )
    if not _IMAGE_ID.fullmatch(builder_image_id):
        raise ConfigError(f"builder image ID {builder_image_id!r} is not sha256:<64 hex>")
    names = tuple(check_builder_name(b) for b in builders)
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"builder hosts {names}: give at least one, each once")
    d.root.parent.mkdir(parents=True, exist_ok=True)
    work = ClusterDir(Path(tempfile.mkdtemp(dir=d.root.parent, prefix=f".{d.root.name}.")))
    try:
        m = _make(work, d, project, names, uid, builder_archive, builder_image_id,
                  coordinator_port, dist_port, ca_bundle)  # fmt: skip
        work.root.chmod(0o755)
        if d.root.exists():
            d.root.rmdir()  # empty, checked above
        work.root.rename(d.root)
    except BaseException:
        shutil.rmtree(work.root, ignore_errors=True)
        raise
    return m, True


def _make(
    work: ClusterDir,
    final: ClusterDir,
    project: str,
    builders: tuple[str, ...],
    uid: int,
    builder_archive: Path,
    builder_image_id: str,
    coordinator_port: int | None,
    dist_port: int | None,
    ca_bundle: Path,
) -> Manifest:
    """Every file of a new cluster under ``work`` (to be renamed to ``final``)."""
    from ledger.genesis import Genesis, save_genesis

    validators = []
    for name in VALIDATORS:
        key = _key(work.secrets(name) / "validator.key", uid)
        validators.append(
            {
                "name": name,
                "public_key": key.private.public_key().public_bytes_raw().hex(),
                "p2p": f"{name}:{P2P_PORT}",
                "http": f"{name}:{HTTP_PORT}",
            }
        )
    operator = _key(work.operator_key, os.geteuid())  # the host's CLI, no container
    coordinator = _key(work.secrets("coordinator") / "coordinator.key", uid)
    _write_json(work.root / "public" / "operator.pub", operator.public_dict())
    _write_json(work.root / "public" / "coordinator.pub", coordinator.public_dict())
    password = secrets.token_hex(24).encode()
    write_secret(work.secrets("coordinator") / "postgres-password", password, uid)
    write_secret(work.secrets("postgres") / "postgres-password", password, uid)
    for b in builders:
        secret_dir(work.secrets(b), uid)
        write_secret(work.redis_password(b), new_password(), uid)
    write_secret(work.redis_password("coordinator"), new_password(), uid)
    write_secret(work.redis_admin_password, new_password(), uid)
    _make_tls(work, uid, ca_bundle)
    (work.root / "secrets").chmod(0o711)
    try:
        genesis = Genesis.model_validate(
            {
                "chain_id": CHAIN_ID,
                "genesis_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "validators": validators,
                "operators": [operator.public_dict()],
                "coordinators": [coordinator.public_dict()],
                "quorum": 3,
            }
        )
    except ValidationError as exc:  # pragma: no cover - every value is made above
        raise ConfigError(f"invalid genesis: {exc}") from None
    save_genesis(genesis, work.genesis)
    work.genesis.chmod(0o644)
    m = Manifest(
        project=project,
        chain_id=genesis.chain_id,
        genesis_hash=genesis.hash,
        coordinator_port=coordinator_port or free_port(),
        dist_port=dist_port or free_port(),
        builder_archive=str(builder_archive.absolute()),
        builder_image_id=builder_image_id,
        builders=builders,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    work.env_file.write_text(_compose_env(final, m), encoding="utf-8")
    work.env_file.chmod(0o600)
    write_broker_acl(work, m, uid)
    save_manifest(work, m)
    return m


def _make_tls(work: ClusterDir, uid: int, host_bundle: Path) -> None:
    """The farm CA (its key for the operator's host alone, its certificate public, and
    a bundle of it with ``host_bundle``) and a certificate per TLS service, naming its
    compose hostname and the loopback names its health probe uses."""
    ca = make_ca("farm cluster CA")
    write_secret(work.ca_key, ca.key_pem, uid=os.geteuid())
    work.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    work.ca_cert.write_bytes(ca.cert_pem)
    work.ca_cert.chmod(0o644)
    try:
        host = host_bundle.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the host's CA bundle {host_bundle}: {exc}") from None
    work.ca_bundle.write_bytes(host.rstrip(b"\n") + b"\n" + ca.cert_pem)
    work.ca_bundle.chmod(0o644)
    for service in TLS_SERVICES:
        issued = issue_cert(ca, [service, "localhost", "127.0.0.1"])
        write_secret(work.tls_cert(service), issued.cert_pem, uid)
        write_secret(work.tls_key(service), issued.key_pem, uid)
