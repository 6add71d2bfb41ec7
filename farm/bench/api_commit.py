"""Submit-to-commit overhead of a trivial recipe, for ``farm bench api``.

All real: four ``farm ledger run`` validators (:class:`farm.bench.ledger.BenchNet`), Redis
and three ``farm builder run`` workers (:func:`farm.cluster.local_cluster`), and
``farm serve --ledger`` with its scheduler and ledger publisher. The builders are
enrolled with one-time tokens (``farm builder enroll``), approved (``farm operator
approve``), which commits their enroll transactions, and then started.

Each round first starts :data:`BUILDERS` bare ``docker run --rm``s of the recipe at
once (:func:`farm.bench.build.bare_once`: same image, command, environment, source mount,
user, no network, tmpfs and CPU, memory and process limits) and times them until all
have exited; then it requests a build of a new version of the same trivial recipe (a
one-file local git source, a command that copies one small file to ``/out``) with
``POST /v1/builds`` and polls ``GET /v1/attestations`` until the attestation is
committed. The commit time is when the coordinator stored the ledger's receipt (the
attestation's ``submitted_at``, same machine, same clock as the submit). The overhead
is the submit-to-commit time minus the bare runs' time: everything farm adds to running
the build is counted, its own steps inside the container (the keeper, the exec, the
kill, ``df``, the copy-out of ``/out``) included.

Shown beside it: the slowest builder's container life as the Docker Engine reports it
(``create`` to ``destroy`` events of the containers labelled with the build id), the
build command's own run (``started_at`` … ``finished_at`` of each builder's signed
result), and the coordinator's timestamps splitting the rest into stages.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import yaml

from builders.fetch import Fetcher
from farm.bench.api_query import farm_serve
from farm.bench.build import bare_once
from farm.bench.ledger import BenchNet
from farm.cli.up_cmd import DEFAULT_RECIPE, recipe_for_this_host
from farm.cluster import LocalCluster, local_cluster
from farm.coordinator import service
from farm.coordinator.db import create_tables, make_engine, session_scope
from farm.coordinator.models import utcnow
from farm.errors import FarmError
from farm.recipe import Recipe, load_recipe, parse_recipe
from farm.result import envelope_payload, parse_statement
from ledger.genesis import load_genesis

__all__ = [
    "BUILDERS",
    "CommitFarm",
    "CommitRun",
    "commit_farm",
    "commit_overhead",
    "timed_bare",
    "timed_commit",
]

FARM = [sys.executable, "-m", "farm.cli"]
BUILDERS = 3
"""Builders of the farm, each building every request; as many bare runs start at once."""
GIT_ENV = {
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}
#: The coordinator's loops (it is told about events too; these bound a missed wake-up).
SERVE_ENV = {
    "FARM_COORDINATOR_HEARTBEAT_WITHIN": "30",
    "FARM_COORDINATOR_TIMEOUT_MARGIN": "30",
}


@dataclass(frozen=True)
class CommitRun:
    """One timed round: the bare runs, the build's seconds from the ``POST`` to each stage."""

    bare_s: float
    """:data:`BUILDERS` bare ``docker run --rm``s of the recipe at once, until all exited."""
    total_s: float
    container_s: float
    """The slowest builder's container, ``create`` to ``destroy`` (Docker's events)."""
    command_s: float
    """The slowest builder's build command, as signed in its result."""
    stages: dict[str, float]

    @property
    def overhead_s(self) -> float:
        """Submit-to-commit time minus this round's bare runs."""
        return self.total_s - self.bare_s


@dataclass
class CommitFarm:
    """A running farm on a running ledger, ready to build."""

    url: str
    token: str
    image: str
    source: dict[str, str]
    http: httpx.Client
    src: Path
    """The fetched source tree, for the bare runs."""
    work: Path
    """Where the bare runs' output directories go."""


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise FarmError(f"{' '.join(argv[2:5])} failed: {(proc.stderr or proc.stdout)[-800:]}")
    return proc.stdout


def _git_source(root: Path) -> dict[str, str]:
    repo = root / "upstream"
    repo.mkdir(parents=True)
    (repo / "data.txt").write_text("some data\n")
    env = {**GIT_ENV, "HOME": str(root)}
    _run(["git", "-C", str(repo), "init", "-q", "-b", "main"], env)
    _run(["git", "-C", str(repo), "add", "."], env)
    _run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.org",
          "commit", "-qm", "init"], env)  # fmt: skip
    commit = _run(["git", "-C", str(repo), "rev-parse", "HEAD"], env).strip()
    return {"type": "git", "url": str(repo), "commit": commit}


def _wait(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FarmError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def _ledger_up(net: BenchNet) -> None:
    def connected() -> bool:
        net.check_alive()
        for i in range(net.n):
            try:
                r = httpx.get(f"http://127.0.0.1:{net.http_port(i)}/v1/status", timeout=2)
            except httpx.HTTPError:
                return False
            if r.status_code != 200 or len(r.json()["peers"]) != net.n - 1:
                return False
        return True

    _wait("the ledger validators to connect", connected, 60)


def _enroll(cluster: LocalCluster, url: str, token: str, secrets: list[str], ledger: Path) -> None:
    """Enroll each builder and approve it in a domain of its own, the operator signing
    with the testnet's operator key (in ``ledger``)."""
    for i, (b, secret) in enumerate(zip(cluster.builders, secrets, strict=True)):
        _run([*FARM, "builder", "enroll", "--coordinator", url, "--token", secret,
              "--home", str(b.home)])  # fmt: skip
        _run([*FARM, "operator", "approve", b.builder_id, "--domain", f"bench-{i + 1}",
              "--key", str(ledger / "operator.key"), "--genesis", str(ledger / "genesis.json"),
              "--coordinator", url, "--operator-token", token])  # fmt: skip
        cluster.start_builder(b)
    cluster.wait_ready(timeout=90)


@contextmanager
def commit_farm(root: Path, progress: Callable[[str], None]) -> Iterator[CommitFarm]:
    """Ledger, Redis, three builders and ``farm serve --ledger``, all enrolled and ready."""
    progress("checking the builder image")
    image = load_recipe(recipe_for_this_host(DEFAULT_RECIPE, root)).image
    source = _git_source(root)
    progress("fetching the source for the bare runs")
    trivial = parse_recipe(yaml.safe_load(_recipe_yaml(image, source, "0.0")))
    with Fetcher(root / "fetch-cache", progress=lambda m: None) as fetcher:
        src = fetcher.source(trivial.source, root / "bare")
    db = f"sqlite:///{root / 'commit.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        token = service.create_operator_token(session, utcnow(), "bench")
        secrets = [service.issue_enrollment_token(session, utcnow()).token for _ in range(BUILDERS)]
    engine.dispose()
    with ExitStack() as stack:
        progress("starting 4 ledger validators")
        net = BenchNet(root / "ledger", 4)
        stack.callback(net.close)
        net.start()
        _ledger_up(net)
        progress("starting Redis")
        coordinator_key = net.root / "coordinator.key"
        cluster = stack.enter_context(
            local_cluster(root / "cluster", BUILDERS, start=False, coordinator_key=coordinator_key)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env.update(SERVE_ENV, FARM_COORDINATOR_REPORTS_DIR=str(root / "reports"))
        ledger_urls = ",".join(f"http://127.0.0.1:{net.http_port(i)}" for i in range(net.n))
        progress("starting farm serve --ledger")
        url = stack.enter_context(
            farm_serve(
                db,
                root,
                env,
                "--redis-url",
                cluster.redis.url,
                "--ledger",
                ledger_urls,
                "--coordinator-key",
                str(coordinator_key),
                "--ledger-chain",
                load_genesis(net.root / "genesis.json").chain_id,
                "--genesis",
                str(net.root / "genesis.json"),
            )
        ).url
        cluster.env.update(FARM_COORDINATOR_URL=url, FARM_HEARTBEAT_INTERVAL="1")
        progress(f"enrolling and starting {BUILDERS} builders")
        _enroll(cluster, url, token, secrets, net.root)
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))

        def enrolled() -> bool:
            rows = http.get("/v1/builders").json()
            bad = [b["ledger_error"] for b in rows if b["ledger_error"]]
            if bad:
                raise FarmError(f"the ledger refused an enroll: {bad[0]}")
            return len(rows) == BUILDERS and all(b["ledger_index"] is not None for b in rows)

        progress("waiting for the enroll transactions to commit")
        _wait(f"{BUILDERS} enroll transactions", enrolled, 60)
        yield CommitFarm(url, token, image, source, http, src, root)


def _recipe_yaml(image: str, source: dict[str, str], version: str) -> str:
    return yaml.safe_dump(
        {
            "name": "bench-trivial",
            "version": version,
            "source": source,
            "image": image,
            "architectures": ["amd64"],
            "build": {
                "command": "cp data.txt /out/data.txt\n",
                "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"},
            },
            "outputs": [{"path": "data.txt"}],
        },
        sort_keys=False,
    )


def _recipe_text(farm: CommitFarm, version: str) -> str:
    return _recipe_yaml(farm.image, farm.source, version)


def _recipe(farm: CommitFarm, version: str) -> Recipe:
    return parse_recipe(yaml.safe_load(_recipe_text(farm, version)))


def timed_bare(farm: CommitFarm) -> float:
    """Seconds until :data:`BUILDERS` bare ``docker run --rm``s of the recipe, started at
    once, have all exited (:func:`farm.bench.build.bare_once`).

    Raises:
        BuildError: a bare run failed.
    """
    return bare_once(_recipe(farm, "0.0"), farm.src, None, farm.work, BUILDERS)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _container_lifetimes(build_id: str, since: float) -> dict[str, tuple[float, float]]:
    """Builder id → (create, destroy) wall-clock times of its container for the build."""
    client = docker.from_env()
    try:
        events = client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            filters={"type": "container", "label": f"farm.build-id={build_id}"},
            decode=True,
        )
        seen: dict[str, dict[str, float]] = {}
        for event in events:
            builder = event["Actor"]["Attributes"].get("farm.builder-id", event["id"])
            seen.setdefault(builder, {})[event["Action"]] = event["timeNano"] / 1e9
    finally:
        client.close()
    return {
        builder: (times["create"], times["destroy"])
        for builder, times in seen.items()
        if "create" in times and "destroy" in times
    }


def _check_not_lost(farm: CommitFarm, build_id: str, query: dict[str, str]) -> None:
    """Raise if the build can no longer end in a committed attestation."""
    rejected = farm.http.get("/v1/attestations", params={**query, "status": "rejected"}).json()
    if rejected["total"]:
        raise FarmError(f"the ledger refused the attestation: {rejected['items'][0]['reason']}")
    status = farm.http.get(f"/v1/builds/{build_id}").json()["status"]
    if status in ("disputed", "failed"):
        raise FarmError(f"build {build_id} of the trivial recipe ended {status}")


def timed_commit(farm: CommitFarm, version: str, timeout: float = 180.0) -> CommitRun:
    """One round: the bare runs (:func:`timed_bare`), then version ``version`` of the
    trivial recipe built by the farm and timed to its committed attestation."""
    bare = timed_bare(farm)
    body = {"recipe": _recipe_text(farm, version)}
    headers = {"Authorization": f"Bearer {farm.token}"}
    submitted = time.time()
    start = time.perf_counter()
    response = farm.http.post("/v1/builds", json=body, headers=headers)
    if response.status_code != 201:
        raise FarmError(f"POST /v1/builds answered {response.status_code}: {response.text}")
    (build,) = response.json()
    query = {"name": "bench-trivial", "version": version}
    deadline = start + timeout
    polls = 0
    while True:
        page = farm.http.get("/v1/attestations", params=query).json()
        if page["total"]:
            break
        polls += 1
        if polls % 50 == 0:  # now and then: did it end some other way?
            _check_not_lost(farm, build["id"], query)
        if time.perf_counter() > deadline:
            state = farm.http.get(f"/v1/builds/{build['id']}").json()
            raise FarmError(
                f"build {build['id']} not committed in {timeout:g} s: {state['status']}"
            )
        time.sleep(0.01)
    seen = time.perf_counter() - start
    attestation = page["items"][0]
    predicates = [
        parse_statement(envelope_payload(env)).predicate
        for env in attestation["bundle"]["builder_envelopes"]
    ]
    command = max((p.finished_at - p.started_at).total_seconds() for p in predicates)
    detail = farm.http.get(f"/v1/builds/{build['id']}").json()
    signers = {p.builder_id for p in predicates}
    lives = _wait(
        "the Docker events of the build's containers",
        lambda: (
            signers <= set(found := _container_lifetimes(build["id"], submitted))
            and {b: found[b] for b in signers}
        ),
        10,
    )
    stages = {
        "tasks dispatched": min(_ts(a["dispatched_at"]) for a in detail["attempts"]) - submitted,
        "first container created": min(c for c, _ in lives.values()) - submitted,
        "first build command starts": min(p.started_at.timestamp() for p in predicates) - submitted,
        "last build command ends": max(p.finished_at.timestamp() for p in predicates) - submitted,
        "last container removed": max(d for _, d in lives.values()) - submitted,
        "last result received": max(_ts(r["received_at"]) for r in detail["results"]) - submitted,
        "verdict": _ts(detail["finished_at"]) - submitted,
        "attestation stored": _ts(attestation["submitted_at"]) - submitted,
        "seen committed by the bench": seen,
    }
    container = max(d - c for c, d in lives.values())
    # Committed when the ledger's receipt came back: the coordinator stores the
    # attestation then (the bench's polling only adds its own delay to that).
    total = stages["attestation stored"]
    return CommitRun(bare, total, container, command, stages)


def commit_overhead(runs: list[CommitRun]) -> tuple[float, float]:
    """The overhead of ``runs``: the median submit-to-commit time minus the median bare
    time, and the median of each round's own difference (which cancels slow drifts of
    the machine, the rounds' two halves running back to back)."""
    total = statistics.median(r.total_s for r in runs)
    bare = statistics.median(r.bare_s for r in runs)
    return total - bare, statistics.median(r.overhead_s for r in runs)
