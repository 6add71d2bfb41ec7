"""The whole farm on one machine, every part its own process: what ``farm up`` runs.

Parts, in the order they start (all on loopback, each with its log under ``root``):

- a BFT ledger of ``validators`` validators (``farm ledger run``), whose keys and genesis
  (with the operator and coordinator keys) ``farm ledger testnet`` makes once;
- Redis and ``builders`` builder workers (:mod:`farm.cluster`), each with its own key,
  running only tasks signed by the genesis coordinator key (ADR 41);
- the coordinator (``farm serve --ledger``) with its SQLite database; the builders
  enroll with one-time tokens and ``farm up`` approves them as the operator, each in
  an independence domain of its own (``local-1``, ``local-2``, ...): it signs their
  enroll transactions itself with ``root/ledger/operator.key``, and the coordinator,
  which is given no operator key, relays them to the ledger (ADR 34, 35);
- the read-only distribution node (``farm dist serve``), which follows the ledger.

Given ``follow`` (a recipe repository and branch), the coordinator follows it
(``--recipes-repo``, polled every :data:`FOLLOW_POLL` seconds): every recipe on the
branch is built once, and one committed while the farm runs is built, attested and
served with no other command.

Everything persists under ``root``: a second run reuses the chain, the builder keys
and the database (builders already approved are not enrolled again). Processes are
started with :data:`sys.executable` ``-m farm.cli``, so this module imports none of
``builders``, ``ledger`` or ``api``: it talks to them as a deployment does, through
their command lines and HTTP.

Nothing outlives the farm (:mod:`farm._lifetime`): every process is started in its own
session (a Ctrl-C reaches only the caller, which stops them in order) with a
parent-death signal; ``root/farm-up.json`` records what runs, and a watchdog stops it
all, build containers included, if the caller dies without stopping them. A farm
started again first stops what such a record still lists, and refuses to start while
the farm up that wrote it is alive. :attr:`LocalFarm.parts` lets the caller restart a
part that exits (:mod:`farm.supervise`), with the same command line and state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from farm._lifetime import (
    RunRecord,
    die_with_parent,
    port_busy,
    reap,
    remove_containers,
    start_watchdog,
)
from farm.cluster import (
    BuilderProcess,
    LocalCluster,
    RedisServer,
    free_port,
    free_port_range,
    local_cluster,
)
from farm.coordinator.client import CoordinatorClient
from farm.errors import ConfigError, FarmError
from farm.genesis import Genesis, load_genesis
from farm.keys import load_key
from farm.operator import Operator
from farm.poll import poll
from farm.supervise import Part

__all__ = ["RECORD", "LocalFarm", "ManagedProcess", "local_farm", "wait_until"]

FARM = [sys.executable, "-m", "farm.cli"]
#: The run record's name under the farm's root.
RECORD = "farm-up.json"
#: Seconds between two polls of a followed recipe repository (a local clone is cheap).
FOLLOW_POLL = 2.0


class LocalFarmError(FarmError):
    """A part of the local farm did not start or did not answer in time."""


def wait_until(what: str, probe: Callable[[], bool], timeout: float, log: Path | None) -> None:
    """Poll ``probe`` until it is true; raise naming ``what`` (and its log) otherwise."""
    try:
        poll(what, probe, timeout)
    except TimeoutError:
        where = f"; see {log}" if log is not None else ""
        raise LocalFarmError(f"{what} did not come up within {timeout:g} s{where}") from None


@dataclass
class ManagedProcess:
    """One long-running farm process with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it, appending its output to its log; it dies with this thread."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, then exec
            )

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url: str, timeout: float = 60) -> None:
        """Wait until ``url`` answers 200; fail at once if the process died."""

        def up() -> bool:
            if not self.alive():
                raise LocalFarmError(f"{self.name} exited; see {self.log_path}")
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(self.name, up, timeout, self.log_path)

    def terminate(self) -> None:
        """Send SIGTERM if it runs (:meth:`stop` waits for it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_farm(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run one short ``farm`` command; its stdout, or LocalFarmError with its output."""
    proc = subprocess.run(
        [*FARM, *argv], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise LocalFarmError(f"farm {' '.join(argv[:2])} failed: {last}")
    return proc.stdout


@dataclass
class LocalFarm:
    """A running local farm: where each part answers, and the operator's token."""

    root: Path
    coordinator_url: str
    dist_url: str
    ledger_urls: list[str]
    genesis: Path
    operator_token: str
    cluster: LocalCluster
    processes: list[ManagedProcess] = field(default_factory=list)
    record: RunRecord | None = None
    #: Every part, as :class:`farm.supervise.Supervisor` restarts them.
    parts: list[Part] = field(default_factory=list)

    def profile(self) -> dict[str, str]:
        """The settings other ``farm`` commands need to use this farm (see farm.cli.profile)."""
        return {
            "FARM_COORDINATOR_URL": self.coordinator_url,
            "FARM_OPERATOR_TOKEN": self.operator_token,
            "FARM_DIST_URL": self.dist_url,
            "FARM_GENESIS": str(self.genesis),
            # The operator's own key: farm revoke and farm operator sign with it here.
            "FARM_OPERATOR_KEY": str(self.root / "ledger" / "operator.key"),
            "FARM_REDIS_URL": self.cluster.redis.url,
            # The genesis coordinator key: `farm build` (the direct path) signs its tasks
            # with it, as the builders run no others (ADR 41).
            "FARM_COORDINATOR_KEY": str(self.root / "ledger" / "coordinator.key"),
        }

    def http(self) -> httpx.Client:
        """A client for the coordinator."""
        return httpx.Client(base_url=self.coordinator_url, timeout=30)

    def committed_attestations(self, name: str, version: str) -> list[dict[str, Any]]:
        """The coordinator's committed attestations of ``name`` ``version``.

        Empty while the coordinator does not answer (it may be restarting).
        """
        try:
            with self.http() as client:
                response = client.get("/v1/attestations", params={"name": name, "version": version})
        except httpx.HTTPError:
            return []
        if response.status_code != 200:
            return []
        items: list[dict[str, Any]] = response.json()["items"]
        return [a for a in items if a.get("ledger_index") is not None]

    def builds(self, name: str, version: str) -> list[dict[str, Any]] | None:
        """The coordinator's builds of ``name`` ``version``, newest first.

        None while the coordinator does not answer (it may be restarting).
        """
        try:
            with self.http() as client:
                response = client.get("/v1/builds", params={"name": name, "limit": 100})
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        items: list[dict[str, Any]] = response.json()["items"]
        return [b for b in items if b.get("version") == version]

    def dist_serves(self, name: str, version: str) -> dict[str, Any] | None:
        """What the distribution node serves for ``name`` ``version``, once it has it all."""
        try:
            response = httpx.get(f"{self.dist_url}/v1/packages/{name}/{version}", timeout=5)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        release: dict[str, Any] = response.json()
        return release if release.get("artifacts") else None


def _ledger(root: Path, validators: int, env: dict[str, str]) -> Path:
    """Make the chain's keys and genesis once; the genesis path."""
    genesis = root / "genesis.json"
    if genesis.exists():
        return genesis
    base = free_port_range(2 * validators)
    run_farm(
        "ledger", "testnet", str(validators), "--dir", str(root), "--base-port", str(base),
        env=env,
    )  # fmt: skip
    return genesis


def _http_addresses(genesis: Path) -> list[str]:
    """The validators' HTTP URLs, as the genesis names them."""
    data = json.loads(genesis.read_text())
    return [f"http://{v['http']}" for v in data["validators"]]


def _validator_ports(genesis: Path) -> list[list[int]]:
    """Each validator's ports (peer, HTTP), as the genesis names them."""
    data = json.loads(genesis.read_text())
    return [[int(v[k].rsplit(":", 1)[1]) for k in ("p2p", "http")] for v in data["validators"]]


def _chain_id(genesis: Path) -> str:
    """The chain id the genesis names (operator transactions relayed must name it)."""
    chain: str = json.loads(genesis.read_text())["chain_id"]
    return chain


def _tokens(db_url: str, builders: int) -> tuple[str, list[str]]:
    """An operator token for this run and ``builders`` one-time enrollment tokens."""
    from farm.coordinator import service
    from farm.coordinator.db import create_tables, make_engine, session_scope
    from farm.coordinator.models import utcnow

    engine = make_engine(db_url)
    try:
        create_tables(engine)
        with session_scope(engine) as session:
            token = service.create_operator_token(session, utcnow(), "farm up")
            enrollment = [
                service.issue_enrollment_token(session, utcnow()).token for _ in range(builders)
            ]
    finally:
        engine.dispose()
    return token, enrollment


def _approved(url: str) -> set[str]:
    response = httpx.get(f"{url}/v1/builders", timeout=10)
    response.raise_for_status()
    return {b["id"] for b in response.json() if b.get("approved")}


@contextmanager
def local_farm(
    root: Path,
    *,
    validators: int = 4,
    builders: int = 3,
    report: Callable[[str], None] = lambda _: None,
    follow: tuple[str, str] | None = None,
) -> Iterator[LocalFarm]:
    """Start every part of a farm under ``root``; stop them all on exit.

    ``follow`` (a repository path or URL, and a branch): the coordinator follows it.

    First stops whatever an earlier run under ``root`` left running (its record lists
    it); raises ConfigError if that run's ``farm up`` is still alive, or if another
    program holds a validator's port. Start it from a thread that lives as long as the
    farm (the main thread): the processes die with the thread that started them.
    """
    if validators < 1 or builders < 1:
        raise ConfigError("a local farm needs at least one validator and one builder")
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    record_path = root / RECORD
    if reap(record_path, report=report):
        report("some ports of the earlier run are still in use")
    with ExitStack() as stack:
        record = RunRecord.create(record_path)
        watchdog = start_watchdog(record, root / "watchdog.log")
        stack.callback(_release_watchdog, watchdog)
        stack.callback(record_path.unlink, missing_ok=True)  # before the watchdog looks
        processes: list[ManagedProcess] = []

        def stop_all() -> None:
            for p in reversed(processes):
                p.terminate()
            for p in reversed(processes):
                p.stop()

        stack.callback(stop_all)

        # The ledger.
        genesis = _ledger(root / "ledger", validators, env)
        ledger_urls = _http_addresses(genesis)
        report(f"starting {validators} ledger validators")
        parts = [
            _part(p, "validator", url, "/v1/status")
            for p, url in _start_validators(genesis, validators, env, processes, record)
        ]

        # The coordinator's database and tokens, Redis and the builders (not yet started).
        db_url = f"sqlite:///{root / 'coordinator.db'}"
        operator_token, enrollment = _tokens(db_url, builders)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        report(f"starting Redis and {builders} builders")
        cluster = stack.enter_context(
            local_cluster(
                root / "cluster",
                builders,
                env={"FARM_COORDINATOR_URL": url, "FARM_HEARTBEAT_INTERVAL": "1"},
                start=False,
                # The builders run only tasks the coordinator signs with its genesis key.
                coordinator_key=root / "ledger" / "coordinator.key",
            )
        )
        record.started("Redis", cluster.redis.proc, [cluster.redis.port])
        parts.append(_redis_part(cluster.redis))

        report(f"starting the coordinator at {url}")
        serve = ManagedProcess(
            "coordinator",
            [
                *FARM, "serve", "--db", db_url, "--port", str(port),
                "--staging", str(root / "staging"), "--redis-url", cluster.redis.url,
                "--log-level", "warning",
                "--ledger", ",".join(ledger_urls),
                "--coordinator-key", str(root / "ledger" / "coordinator.key"),
                "--ledger-chain", _chain_id(genesis), "--genesis", str(genesis),
            ],
            root / "coordinator.log",
            {
                **env,
                "FARM_COORDINATOR_REPORTS_DIR": str(root / "reports"),
                "FARM_COORDINATOR_SCHEDULE_INTERVAL": "0.5",
                "FARM_COORDINATOR_LEDGER_INTERVAL": "0.5",
                "FARM_COORDINATOR_HEARTBEAT_WITHIN": "30",
            },
        )  # fmt: skip
        if follow is not None:
            serve.argv += ["--recipes-repo", follow[0], "--recipes-poll", str(FOLLOW_POLL)]
            serve.env["FARM_COORDINATOR_RECIPES_BRANCH"] = follow[1]
            serve.env["FARM_COORDINATOR_RECIPES_CHECKOUT"] = str(root / "recipes-checkout")
        _start(serve, processes, record, [port])
        serve.wait_http(f"{url}/v1/builders")
        parts.append(_part(serve, "coordinator", url, "/v1/builders"))

        operator = Operator.of(
            load_key(root / "ledger" / "operator.key"), load_genesis(genesis, Genesis)
        )
        parts += _start_builders(
            cluster, enrollment, url, operator, operator_token, env, record, report
        )

        dist_port = free_port()
        dist_url = f"http://127.0.0.1:{dist_port}"
        report(f"starting the distribution node at {dist_url}")
        dist = ManagedProcess(
            "distribution node",
            [
                *FARM, "dist", "serve", "--genesis", str(genesis),
                "--ledger", ",".join(ledger_urls), "--coordinator", url,
                "--data", str(root / "dist"), "--port", str(dist_port),
            ],
            root / "dist.log",
            env,
        )  # fmt: skip
        _start(dist, processes, record, [dist_port])
        dist.wait_http(f"{dist_url}/simple/")
        parts.append(_part(dist, "distribution node", dist_url, "/simple/"))

        yield LocalFarm(
            root=root,
            coordinator_url=url,
            dist_url=dist_url,
            ledger_urls=ledger_urls,
            genesis=genesis,
            operator_token=operator_token,
            cluster=cluster,
            processes=processes,
            record=record,
            parts=parts,
        )


def _start_validators(
    genesis: Path,
    validators: int,
    env: dict[str, str],
    processes: list[ManagedProcess],
    record: RunRecord,
) -> list[tuple[ManagedProcess, str]]:
    """Start the validators the genesis names (their ports must be free); wait for them.

    Returns each validator's process and HTTP URL.
    """
    ports = _validator_ports(genesis)
    if len(ports) != validators:
        raise ConfigError(
            f"this farm's chain ({genesis}) has {len(ports)} validators, not {validators}"
        )
    busy = [port for pair in ports for port in pair if port_busy(port)]
    if busy:
        raise ConfigError(
            f"port(s) {', '.join(map(str, busy))} of this farm's validators "
            f"({genesis}) are in use by another program"
        )
    started = []
    for i, (url, own) in enumerate(zip(_http_addresses(genesis), ports, strict=True)):
        p = ManagedProcess(
            f"validator v{i}",
            [*FARM, "ledger", "run", "--dir", str(genesis.parent / f"v{i}"),
             "--genesis", str(genesis)],
            genesis.parent / f"v{i}.log",
            env,
        )  # fmt: skip
        _start(p, processes, record, own)
        started.append((p, url))
    for p, url in started:
        p.wait_http(f"{url}/v1/status")
    return started


def local_domain(n: int) -> str:
    """The independence domain of a farm up's ``n``-th builder (from 1): each its own,
    as if run by another organisation (they share one machine, which the domains do not
    claim otherwise; ADR 35)."""
    return f"local-{n}"


def _start_builders(
    cluster: LocalCluster,
    enrollment: list[str],
    url: str,
    operator: Operator,
    operator_token: str,
    env: dict[str, str],
    record: RunRecord,
    report: Callable[[str], None],
) -> list[Part]:
    """Enroll the builders not yet approved and approve each in its own domain (the
    enroll transaction signed here, by ``operator``; the coordinator relays it), start
    them all and wait until they announce."""
    approved = _approved(url)
    parts = []
    for n, (b, secret) in enumerate(zip(cluster.builders, enrollment, strict=True), 1):
        if b.builder_id not in approved:
            report(f"enrolling builder {b.builder_id[:12]} and approving it in {local_domain(n)}")
            run_farm(
                "builder", "enroll", "--coordinator", url, "--token", secret,
                "--home", str(b.home), env=env,
            )  # fmt: skip
            domain = local_domain(n)
            client = CoordinatorClient(url, operator_token=operator_token)
            try:
                shown = client.builder(b.builder_id)
                client.approve(b.builder_id, domain, operator.enroll(b.builder_id, shown, domain))
            finally:
                client.http.close()
        cluster.start_builder(b)
        record.started(f"builder {b.builder_id[:12]}", b.proc)
        record.add_containers({"farm.builder-id": b.builder_id})
        parts.append(_builder_part(cluster, b, report))
    cluster.wait_ready(timeout=60)
    return parts


def _start(
    p: ManagedProcess, processes: list[ManagedProcess], record: RunRecord, ports: list[int]
) -> None:
    """Start ``p``, to be stopped with the farm, and record it."""
    p.start()
    processes.append(p)
    record.started(p.name, p.proc, ports)


def _part(p: ManagedProcess, kind: str, url: str, ready_path: str) -> Part:
    """``p`` as a part the supervisor restarts, ready when ``url + ready_path`` answers."""
    return Part(p.name, kind, p.log_path, url, {"http": url + ready_path}, lambda: p.proc, p.start)


def _redis_part(server: RedisServer) -> Part:
    """The cluster's Redis as a part: same port, same append-only file when restarted."""
    return Part(
        "Redis",
        "redis",
        server.data_dir / "redis.log",
        server.url,
        {"redis": server.url},
        lambda: server.proc,
        server.start,
    )


def _builder_part(cluster: LocalCluster, b: BuilderProcess, report: Callable[[str], None]) -> Part:
    """Builder ``b`` as a part: ready while it announces itself in the cluster's Redis.

    Restarting it first removes the build containers its dead process left (a build
    killed in the middle keeps its container running); the restarted builder then takes
    the interrupted build again from its queue.
    """
    name = f"builder {b.builder_id[:12]}"

    def restart() -> None:
        removed = remove_containers({"farm.builder-id": b.builder_id})
        if removed:
            report(f"{name}: removed {removed} build container(s) its killed process left")
        cluster.start_builder(b)

    return Part(
        name,
        "builder",
        b.log_path,
        "",
        {"builder": b.builder_id, "redis": cluster.redis.url},
        lambda: b.proc,
        restart,
    )


def _release_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog the farm stopped in order (the record is gone), and reap it."""
    if watchdog.stdin is not None:
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout=30)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()
