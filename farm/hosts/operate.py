"""What ``farm cluster up``, ``down``, ``status``, ``add-builder`` and ``retire-builder`` do.

``up`` (idempotent: a second run reuses the directory, the volumes and every
enrollment):

1. the images: ``farm-host:bookworm`` and the builder image's docker-archive, built from
   this checkout when missing (:mod:`farm.hosts.compose`);
2. the cluster directory, made once (:func:`farm.hosts.init.init_cluster`);
3. ``docker-compose up -d``: validators, Redis, PostgreSQL, the coordinator, the builder
   hosts, the distribution node and the client, each waiting for what it needs;
4. the operator's bearer token, made once in the coordinator's database
   (``coordinator.sh operator-token``, through ``docker-compose exec``) and kept in the
   directory for the host's CLI only (mode 0600);
5. each builder host without an enrollment gets a one-time token (written into its own
   secrets directory, which it alone mounts); it enrolls itself, and the operator
   approves the builder id the host reports in a domain of its own (``site-bN``):
   the enroll transaction is signed here, with ``DIR/operator/operator.key``, and the
   coordinator relays it to the ledger (it holds no operator key, ADR 34); then the
   host's own Redis user is granted that builder's broker keys and nothing else
   (:mod:`farm.hosts.broker_acl`: the ACL file is rewritten and Redis reloads it);
6. every service healthy, then the URLs and how to use them.

The coordinator and the distribution node serve HTTPS only (certificates of the farm CA
in ``DIR/public/ca.pem``, ADR 43): this host's client trusts that CA alone
(:func:`farm_client`).

``add_builder`` adds a host to ``DIR/compose.builders.yml`` (a service extending b1),
starts it and enrolls and approves it the same way; ``retire_builder`` retires its
builder through the coordinator (``POST /v1/builders/{id}/retire``: no longer scheduled,
a retire transaction signed here committed) and stops its container.

A builder host is approved only under the id it enrolled with (read from its own
volume), so a token used by anyone else leaves an enrolled builder nobody approves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from farm.coordinator.client import CoordinatorClient
from farm.errors import ConfigError, FarmError
from farm.hosts.compose import (
    COMPOSE_FILE,
    ClusterCommandError,
    Compose,
    ensure_builder_archive,
    ensure_host_image,
)
from farm.hosts.init import (
    VALIDATORS,
    ClusterDir,
    Manifest,
    check_builder_name,
    init_cluster,
    load_cluster,
    new_password,
    save_manifest,
    write_broker_acl,
    write_secret,
)
from farm.keys import load_key
from farm.operator import Operator
from farm.poll import poll
from farm.tls import client_context

__all__ = [
    "ClusterInfo",
    "add_builder",
    "builder_domain",
    "cluster_down",
    "cluster_status",
    "cluster_up",
    "farm_client",
    "retire_builder",
]

Say = Callable[[str], None]
T = TypeVar("T")
#: Where a builder host keeps its key and its enrollment marker (its own volume).
BUILDER_HOME = "/var/lib/farm/builder"
#: Seconds ``up`` waits for every service to be healthy (builder hosts load a 545 MB
#: image into a fresh engine the first time).
HEALTHY_WITHIN = 900.0


@dataclass(frozen=True)
class ClusterInfo:
    """Where a running farm of hosts answers, for the operator's host."""

    dir: Path
    project: str
    coordinator_url: str
    dist_url: str
    operator_token: str
    builders: dict[str, str]  # host name -> builder id
    ca_cert: Path  # the farm CA's certificate: what a client of those URLs trusts


def farm_client(d: ClusterDir, m: Manifest, token: str | None = None) -> CoordinatorClient:
    """A client of the cluster's coordinator on its published port, trusting the farm CA
    (``DIR/public/ca.pem``) and nothing else."""
    http = httpx.Client(
        base_url=f"https://127.0.0.1:{m.coordinator_port}",
        timeout=30.0,
        verify=client_context(d.ca_cert),
    )
    return CoordinatorClient(http, operator_token=token)


def cluster_up(root: Path, say: Say, *, project: str = "farm") -> ClusterInfo:
    """Bring the farm of hosts of ``root`` up (see the module docstring)."""
    ensure_host_image(say)
    archive, builder_id = ensure_builder_archive(say)
    m, made = init_cluster(
        root, builder_archive=archive, builder_image_id=builder_id, project=project
    )
    d = ClusterDir(root)
    if m.builder_image_id != builder_id:
        raise ConfigError(
            f"{root}: the cluster pins builder image {m.builder_image_id}, but this host's "
            f"farm-builder:bookworm is {builder_id}; rebuild that image or make a new cluster"
        )
    say(("made" if made else "reusing") + f" the cluster directory {d.root}")
    compose = Compose.of(d, m)
    say(f"starting the hosts (docker-compose project {m.project})")
    # Named, so that a retired builder host is not started again.
    services = [*VALIDATORS, "redis", "postgres", "coordinator", *m.builders, "dist", "client"]
    compose.run("up", "-d", "--remove-orphans", *services, timeout=1800, capture=False)
    token = _operator_token(d, compose, say)
    client = farm_client(d, m, token)
    _wait(say, "the coordinator to answer", lambda: _answers(client) or None, 300)
    for b in m.builders:  # every host gets its token first: they enroll side by side
        _issue_token(d, compose, client, b, say)
    enrolled = {b: _enroll(d, compose, client, b, say) for b in m.builders}
    _grant(d, compose, enrolled, say)
    _wait_healthy(compose, say)
    return ClusterInfo(
        d.root, m.project, f"https://127.0.0.1:{m.coordinator_port}",
        f"https://127.0.0.1:{m.dist_port}", token, enrolled, d.ca_cert,
    )  # fmt: skip


def cluster_down(root: Path, say: Say, *, volumes: bool = False) -> None:
    """Stop the farm of hosts; with ``volumes`` also delete its volumes (every ledger,
    queue, database and builder engine: the farm is gone, its directory stays)."""
    d = ClusterDir(root)
    m = load_cluster(d.root)
    compose = Compose.of(d, m)
    args = ["down", "--remove-orphans", "--timeout", "30"] + (["--volumes"] if volumes else [])
    say(
        f"stopping docker-compose project {m.project}"
        + (" and deleting its volumes" if volumes else "")
    )
    compose.run(*args, timeout=900, capture=False)
    if volumes:
        # The coordinator's database is gone: its tokens and enrollments with it.
        for path in [d.operator_token, *(d.enrollment_token(b) for b in m.builders)]:
            path.unlink(missing_ok=True)


def cluster_status(root: Path) -> tuple[Manifest, dict[str, tuple[str, str]]]:
    """Each service's state and health (``-`` when it has no health check)."""
    d = ClusterDir(root)
    m = load_cluster(d.root)
    return m, dict(sorted(_statuses(Compose.of(d, m)).items()))


def add_builder(root: Path, name: str, say: Say) -> str:
    """Add builder host ``name`` to a running cluster; its approved builder id."""
    check_builder_name(name)
    d = ClusterDir(root)
    m = load_cluster(d.root)
    if name in m.builders:
        raise ConfigError(f"builder host {name} is already part of this cluster")
    from farm.hosts.init import secret_dir

    secret_dir(d.secrets(name))
    if not d.redis_password(name).exists():
        write_secret(d.redis_password(name), new_password())
    m = m.model_copy(update={"builders": (*m.builders, name)})
    _write_override(d, m)
    save_manifest(d, m)
    compose = Compose.of(d, m)
    _reload_broker_acl(d, compose, m)  # its user exists (PING only) before it starts
    say(f"starting builder host {name}")
    compose.run("up", "-d", "--no-deps", name, timeout=900, capture=False)
    token = d.operator_token.read_text().strip()
    client = farm_client(d, m, token)
    builder_id = _enroll(d, compose, client, name, say)
    _grant(d, compose, {name: builder_id}, say)
    _wait(
        say,
        f"{name} to be healthy",
        lambda: _health(compose, name) == "healthy" or None,
        HEALTHY_WITHIN,
    )
    return builder_id


def retire_builder(root: Path, name: str, say: Say) -> str:
    """Retire builder host ``name``: the coordinator stops scheduling it and commits its
    retire transaction, then its container stops (its volumes stay). Its builder id."""
    d = ClusterDir(root)
    m = load_cluster(d.root)
    if name not in m.builders:
        raise ConfigError(f"{name} is not a builder host of this cluster ({', '.join(m.builders)})")
    compose = Compose.of(d, m)
    builder_id = _read(compose, name, f"{BUILDER_HOME}/enrolled")
    if builder_id is None:
        raise ClusterCommandError(f"{name} has not enrolled (is it running? farm cluster status)")
    token = d.operator_token.read_text().strip()
    client = farm_client(d, m, token)
    reason = f"builder host {name} retired by the operator"
    client.retire(builder_id, reason, _operator(d).retire(builder_id, reason))
    say(f"{name}: builder {builder_id[:16]} retired (no longer scheduled; retired on the ledger)")
    m = m.model_copy(
        update={
            "builders": tuple(b for b in m.builders if b != name),
            "retired": (*m.retired, name),
            "broker_grants": {h: i for h, i in m.broker_grants.items() if h != name},
        }
    )
    save_manifest(d, m)
    _reload_broker_acl(d, compose, m)
    say(f"{name}: its broker user removed")
    compose.run("stop", name, timeout=120, capture=False)
    say(f"{name}: stopped")
    return builder_id


# ---------------------------------------------------------------------- steps


def _operator_token(d: ClusterDir, compose: Compose, say: Say) -> str:
    """The operator's bearer token: made once in the coordinator's database."""
    if d.operator_token.exists():
        return d.operator_token.read_text().strip()
    say("making the operator's bearer token in the coordinator's database")
    _wait(
        say,
        "the coordinator's container",
        lambda: _exec_ok(compose, "coordinator", "true") or None,
        300,
    )
    out = compose.exec(
        "coordinator", "/opt/farm-cluster/coordinator.sh", "operator-token", "cluster-operator"
    )
    token = out.strip().splitlines()[-1].strip()
    if not token:
        raise ClusterCommandError("the coordinator printed no operator token")
    d.operator_token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(d.operator_token, token.encode(), uid=os.geteuid())
    return token


def _issue_token(
    d: ClusterDir, compose: Compose, client: CoordinatorClient, host: str, say: Say
) -> None:
    """Give builder host ``host`` a one-time enrollment token unless it has enrolled or has one."""
    if (
        _read(compose, host, f"{BUILDER_HOME}/enrolled") is None
        and not d.enrollment_token(host).exists()
    ):
        token = client.new_enrollment_token(3600, f"builder host {host}")["token"]
        write_secret(d.enrollment_token(host), str(token).encode())
        say(f"{host}: one-time enrollment token written to its secrets")


def _enroll(d: ClusterDir, compose: Compose, client: CoordinatorClient, host: str, say: Say) -> str:
    """Builder host ``host`` enrolled and approved: its builder id."""
    marker = f"{BUILDER_HOME}/enrolled"
    _issue_token(d, compose, client, host, say)
    builder_id = _read(compose, host, marker)
    if builder_id is None:
        say(f"{host}: waiting for it to start its engine, load the builder image and enroll")
        builder_id = _wait(
            say, f"{host} to enroll", lambda: _read(compose, host, marker), HEALTHY_WITHIN
        )
    known = {b["id"]: b for b in client.builders()}
    if builder_id not in known:
        raise ClusterCommandError(
            f"{host} says it enrolled as {builder_id}, but the coordinator has no such builder"
        )
    if not known[builder_id]["approved"]:
        domain = builder_domain(host)
        tx = _operator(d).enroll(builder_id, known[builder_id], domain)
        client.approve(builder_id, domain, tx)
        say(
            f"{host}: builder {builder_id[:16]} approved in domain {domain} (the enroll "
            "transaction, signed here with the operator key, goes to the ledger)"
        )
    return builder_id


def _grant(d: ClusterDir, compose: Compose, approved: dict[str, str], say: Say) -> None:
    """Give each builder host's Redis user the broker keys of the builder approved on
    it (``approved``: host → builder id), and nothing else."""
    m = load_cluster(d.root)
    grants = {**m.broker_grants, **approved}
    if grants != m.broker_grants:
        m = m.model_copy(update={"broker_grants": grants})
        save_manifest(d, m)
    _reload_broker_acl(d, compose, m)
    for host, builder_id in approved.items():
        say(f"{host}: its broker user reaches builder {builder_id[:16]}'s keys alone")


#: Run in the Redis container: reload the ACL file as the admin user, whose password
#: never leaves that container's secrets.
_ACL_LOAD = (
    'REDISCLI_AUTH="$(cat /run/farm-secrets/admin-password)" exec redis-cli --no-auth-warning '
    "--tls --cacert /etc/farm/ca.pem -h localhost -p 6379 --user admin ACL LOAD"
)


def _reload_broker_acl(d: ClusterDir, compose: Compose, m: Manifest) -> None:
    """Rewrite Redis's ACL file for ``m`` and have Redis load it."""
    write_broker_acl(d, m)

    def loaded() -> bool | None:
        try:
            return compose.exec("redis", "sh", "-c", _ACL_LOAD, timeout=30).strip() == "OK" or None
        except ClusterCommandError:
            return None

    try:
        poll("Redis to load its ACL file", loaded, 120, first=0.5, most=5.0)
    except TimeoutError as exc:
        raise ClusterCommandError(str(exc)) from None


def builder_domain(host: str) -> str:
    """The independence domain a builder host of the cluster is approved in: one site
    per host (``site-b1`` ...), as if each were run by another organisation."""
    return f"site-{host}"


def _operator(d: ClusterDir) -> Operator:
    """The operator, from the key kept on this host (``DIR/operator/operator.key``)."""
    from farm.genesis import Genesis, load_genesis

    return Operator.of(load_key(d.operator_key), load_genesis(d.genesis, Genesis))


def _write_override(d: ClusterDir, m: Manifest) -> None:
    """``compose.builders.yml``: a service per builder host beyond b1..b3, like b1."""
    from farm.hosts.init import BUILDERS

    extra = [b for b in (*m.builders, *m.retired) if b not in BUILDERS]
    lines = ['version: "2.4"', "services:"]
    for b in extra:
        lines += [
            f"  {b}:",
            f"    extends: {{file: {COMPOSE_FILE}, service: b1}}",
            f"    hostname: {b}",
            "    volumes:",
            f"      - {b}-docker:/var/lib/docker",
            f"      - {b}-home:/var/lib/farm",
            "      - /sys/fs/cgroup:/sys/fs/cgroup:rw",
            "      - ${FARM_BUILDER_ARCHIVE}:/opt/farm-builder-image.tar:ro",
            "      - ${FARM_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
            ":/etc/farm/host-ca.crt:ro",
            f"      - ${{FARM_CLUSTER_DIR}}/secrets/{b}:/run/farm-secrets:ro",
            "      - ${FARM_CLUSTER_DIR}/public/coordinator.pub:/etc/farm/coordinator.pub:ro",
            "      - ${FARM_CLUSTER_DIR}/public/ca.pem:/etc/farm/ca.pem:ro",
            "      - ./:/opt/farm-cluster:ro",
        ]
    lines.append("volumes:")
    for b in extra:
        lines += [f"  {b}-docker: {{}}", f"  {b}-home: {{}}"]
    d.builders_override.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- waits


def _exec_ok(compose: Compose, service: str, *cmd: str) -> bool:
    try:
        compose.exec(service, *cmd, timeout=30)
    except ClusterCommandError:
        return False
    return True


def _read(compose: Compose, service: str, path: str) -> str | None:
    try:
        text = compose.exec(service, "cat", path, timeout=30).strip()
    except ClusterCommandError:
        return None
    return text or None


def _answers(client: CoordinatorClient) -> bool:
    try:
        client.builders()
    except (FarmError, OSError):
        return False
    return True


def _health(compose: Compose, service: str) -> str:
    st = compose.states().get(service, {})
    return str((st.get("Health") or {}).get("Status", st.get("Status", "missing")))


def _wait_healthy(compose: Compose, say: Say) -> None:
    def unhealthy() -> list[str]:
        return [
            f"{s} ({h})" for s, (_, h) in _statuses(compose).items() if h not in ("healthy", "-")
        ]

    def done() -> bool | None:
        return not unhealthy() or None

    try:
        _wait(say, "every host to be healthy", done, HEALTHY_WITHIN)
    except ClusterCommandError:
        raise ClusterCommandError(
            f"not healthy in {HEALTHY_WITHIN:g} s: {', '.join(unhealthy())}"
        ) from None


def _statuses(compose: Compose) -> dict[str, tuple[str, str]]:
    """Each service's state and health (``-`` when it has no health check)."""
    return {
        s: (st.get("Status", "?"), (st.get("Health") or {}).get("Status", "-"))
        for s, st in compose.states().items()
    }


def _wait(say: Say, what: str, probe: Callable[[], T | None], within: float) -> T:
    """:func:`farm.poll.poll` ``probe`` for ``within`` s, saying every 30 s what is awaited."""
    start = time.monotonic()
    told = [start]

    def probe_and_tell() -> T | None:
        got = probe()
        now = time.monotonic()
        if not got and now - told[0] >= 30:
            say(f"still waiting for {what} ({now - start:.0f} s)")
            told[0] = now
        return got

    try:
        return poll(what, probe_and_tell, within, first=0.5, most=5.0)
    except TimeoutError as exc:
        raise ClusterCommandError(str(exc)) from None
