"""Cluster test groups 4 and 5 (issue 13): the coordinator and the distribution node of a
farm of hosts, broken one way each while builds go through.

Group 4, "Coordinator":

1. kill -9 while it publishes an attestation. Its links to the validators are slowed
   (:mod:`tests.support.netfault`'s delay proxy in its namespace), so that the attest
   transaction is on the ledger a while before the receipt reaches it; the test kills it
   (``docker kill``) as soon as a validator's log holds the transaction, then starts it
   again (``docker kill`` does not trigger the restart policy). The restarted process
   submits the same bytes again, the validators answer with the entry already
   committed, and the attestation is recorded once, by the new process.
2. PostgreSQL restarted under it while a build runs (``docker stop``, started again
   once ``/readyz`` has failed): its ``/readyz`` fails, comes back, and the build is
   verified and attested.

Group 5, "Distribution node":

3. restarted: it serves the same release, the same bytes, from its own store (nothing
   mirrored again), and ``farm pull`` in the client verifies them.
4. cut off from the validators (off the ``ledger`` network): it still serves what it
   has, and the client's ``farm pull --max-age`` refuses once the newest checkpoint is
   older than that (a pull without the small limit still verifies); reconnected, it
   follows again and the same pull is accepted.
5. cut off from the coordinator (its packets to port 8600 dropped in its namespace:
   it reaches the coordinator over ``ledger`` and ``public`` both): a build committed
   meanwhile is followed (the entry is in its log) but cannot be mirrored; healed, the
   node mirrors and serves it.

Every scenario uses a recipe of its own (from the end of the shipped list; e2e and the
builder tests take theirs from the start), ends with the build verified, one committed
attestation on the coordinator, one attest entry for it on the ledger, and all four
validators serving the same 2f+1 co-signed checkpoint, and prints its timings.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.farm_builds import Builds, blocked, docker, report, wait_healthy
from tests.support.hosts import FarmHosts, same_checkpoint
from tests.support.ledger_testnet import wait_for
from tests.support.netfault import net_faults

# The first test of a session also brings the farm up (several minutes).
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(1200)]

LEDGER_HTTP = 26657
COORDINATOR_HTTP = 8600
PUBLISH_DELAY = 1.0
"""Seconds each way on the coordinator's links to the validators in scenario 1: the
attest transaction is committed at least this long before its receipt arrives."""
MAX_AGE = 15
"""The client's ``--max-age`` in scenario 4 (validators re-cosign every 5 s)."""
SERVED = ("wheel", "0.45.1")
"""The release scenario 1 builds; 3 and 4 serve it (building it if 1 did not run)."""


@pytest.fixture(scope="module")
def builds(farm_hosts: FarmHosts) -> Iterator[Builds]:
    b = Builds(farm_hosts)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(autouse=True)
def _healed(builds: Builds) -> Iterator[None]:
    """Whatever a scenario broke is mended before the next one starts."""
    yield
    hosts = builds.hosts
    if not _dist_ip(hosts, "ledger"):
        docker("network", "connect", "--alias", "dist", f"{hosts.project}_ledger",
               hosts.container("dist"))  # fmt: skip
    for service in ("postgres", "coordinator", "dist"):
        if hosts.state(service) != "running":
            docker("start", hosts.container(service))
    for service in ("postgres", "coordinator", "dist"):
        wait_healthy(hosts, service)


# ---------------------------------------------------------------------- helpers


def _dist_ip(hosts: FarmHosts, network: str) -> str:
    fmt = (
        f'{{{{with index .NetworkSettings.Networks "{hosts.project}_{network}"}}}}'
        "{{.IPAddress}}{{end}}"
    )
    return docker("inspect", "-f", fmt, hosts.container("dist")).strip()


def _dist(hosts: FarmHosts, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{hosts.dist_url}{path}", timeout=10, verify=hosts.verify)
    except httpx.HTTPError:
        return None


def _release(hosts: FarmHosts, name: str, version: str) -> dict[str, Any] | None:
    """The release the node serves (with at least one artifact), or None."""
    r = _dist(hosts, f"/v1/packages/{name}/{version}")
    if r is None or r.status_code != 200 or not r.json().get("artifacts"):
        return None
    found: dict[str, Any] = r.json()
    return found


def _dist_status(hosts: FarmHosts) -> dict[str, Any] | None:
    r = _dist(hosts, "/v1/status")
    if r is None or r.status_code != 200:
        return None
    found: dict[str, Any] = r.json()
    return found


def _bytes_of(hosts: FarmHosts, release: dict[str, Any]) -> dict[str, str]:
    """Filename → sha256 of the bytes the node serves for each artifact."""
    out = {}
    for art in release["artifacts"]:
        info = art["artifact"]
        r = httpx.get(f"{hosts.dist_url}{info['url']}", timeout=30, verify=hosts.verify)
        assert r.status_code == 200, f"{info['url']}: {r.status_code}"
        out[info["filename"]] = hashlib.sha256(r.content).hexdigest()
        assert out[info["filename"]] == info["sha256"]
    return out


_pulls = itertools.count(1)


def _pull(
    hosts: FarmHosts, name: str, version: str, state: str, max_age: float | None = None
) -> tuple[int, str]:
    """``farm pull`` in the client (a fresh destination each time, the given state
    directory): (exit code, its output)."""
    cmd = [
        "farm", "pull", f"{name}=={version}", "--dest", f"/home/farm/pulled-{next(_pulls)}",
        "--genesis", "/etc/farm/genesis.json", "--node", "https://dist:8700",
        "--state-dir", f"/home/farm/{state}",
    ]  # fmt: skip
    if max_age is not None:
        cmd += ["--max-age", str(max_age)]
    done = hosts.exec("client", *cmd, timeout=120)
    return done.returncode, done.stdout + done.stderr


def _served_release(builds: Builds) -> dict[str, Any]:
    """:data:`SERVED`, attested once and served by the node (built here if needed)."""
    hosts = builds.hosts
    name, version = SERVED
    listed = hosts.get("/v1/attestations", name=name, version=version)["items"]
    if not listed:
        start = builds.log_size()
        build_id = builds.request(f"{name}/{version}")
        builds.committed_once(build_id, name, version, start=start)
    return wait_for(f"{name} {version} served", lambda: _release(hosts, name, version), 180)


class _Readiness:
    """Polls the coordinator's ``/readyz`` in a thread: when it first failed, and when
    it first answered again after that (monotonic seconds)."""

    def __init__(self, builds: Builds) -> None:
        self.builds = builds
        self.down: float | None = None
        self.up: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready = self.builds.ready()
            now = time.monotonic()
            if not ready and self.down is None:
                self.down = now
            elif ready and self.down is not None and self.up is None:
                self.up = now
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


# ---------------------------------------------------------------------- group 4


def test_coordinator_killed_while_publishing_commits_once(builds: Builds) -> None:
    hosts = builds.hosts
    name, version = SERVED
    start = builds.log_size()
    coordinator = hosts.container("coordinator")
    build_id = builds.request(f"{name}/{version}")
    t_request = time.monotonic()
    with net_faults([coordinator]) as (fault,):
        fault.delay(PUBLISH_DELAY, [LEDGER_HTTP])
        fault.reset_links([LEDGER_HTTP])
        builds.running(build_id)
        index = wait_for(
            f"build {build_id}'s attest transaction on the ledger",
            lambda: builds.attest_entries(build_id, start),
            900,
        )[0]
        docker("kill", "-s", "KILL", coordinator)
        t_kill = time.monotonic()
        killed_at = datetime.now().astimezone()
    # Killed between the commit and the receipt: nothing recorded by the old process.
    assert hosts.state("coordinator") == "exited"
    docker("start", coordinator)
    t_start = time.monotonic()
    wait_for("the coordinator ready again", builds.ready, 180)
    ready = time.monotonic() - t_start
    attestation = builds.committed_once(build_id, name, version, start=start)
    committed = time.monotonic() - t_start
    assert attestation["ledger_index"] == index
    recorded_at = datetime.fromisoformat(attestation["submitted_at"].replace("Z", "+00:00"))
    assert recorded_at > killed_at, (
        f"the attestation was recorded at {recorded_at}, before the kill at {killed_at}: "
        "the kill came too late to interrupt the publication"
    )
    report(
        "kill -9 coordinator while publishing",
        on_ledger_at=t_kill - t_request,
        down_s=t_start - t_kill,
        recover=ready,
        commit_again=committed,
    )


def test_postgres_restarted_under_the_coordinator(builds: Builds) -> None:
    hosts = builds.hosts
    name, version = "webargs", "8.7.1"
    start = builds.log_size()
    build_id = builds.request(f"{name}/{version}")
    builds.running(build_id)
    watch = _Readiness(builds)
    try:
        # Stopped, then started only once the coordinator has said it is unready: a
        # restart shorter than one readiness poll would otherwise go unseen, and the
        # test would wait for a recovery from an outage it never observed.
        t0 = time.monotonic()
        docker("stop", "-t", "10", hosts.container("postgres"))
        stopped = time.monotonic() - t0
        wait_for("the coordinator to report its database gone", lambda: watch.down, 60)
        docker("start", hosts.container("postgres"))
        wait_healthy(hosts, "postgres")
        wait_for("the coordinator ready again", lambda: watch.up, 120)
    finally:
        watch.stop()
    assert watch.down is not None and watch.up is not None
    attestation = builds.committed_once(build_id, name, version, start=start)
    committed = time.monotonic() - t0
    report(
        "restart postgres",
        stop_s=stopped,
        detect=watch.down - t0,
        recover=watch.up - t0,
        commit_again=committed,
    )
    assert attestation["status"] == "committed"


# ---------------------------------------------------------------------- group 5


def test_distribution_node_restarted_serves_the_same(builds: Builds) -> None:
    hosts = builds.hosts
    name, version = SERVED
    before = _served_release(builds)
    bytes_before = _bytes_of(hosts, before)
    status = _dist_status(hosts)
    assert status is not None
    since = str(int(time.time()))
    t0 = time.monotonic()
    docker("restart", "-t", "20", hosts.container("dist"))
    after = wait_for("the node serves again", lambda: _release(hosts, name, version), 120)
    serves = time.monotonic() - t0
    assert [a["artifact"] for a in after["artifacts"]] == [
        a["artifact"] for a in before["artifacts"]
    ]
    assert _bytes_of(hosts, after) == bytes_before
    again = _dist_status(hosts)
    assert again is not None and again["log_size"] >= status["log_size"]
    logs = docker("logs", "--since", since, hosts.container("dist"))
    for sha in (a["artifact"]["sha256"] for a in after["artifacts"]):
        assert f"mirrored sha256:{sha[:12]}" not in logs, "mirrored again after a restart"
    healthy = wait_healthy(hosts, "dist") + serves
    code, out = _pull(hosts, name, version, "state-restart")
    assert code == 0, out
    attestation = hosts.get("/v1/attestations", name=name, version=version)["items"]
    assert len(attestation) == 1
    same_checkpoint(hosts)
    report("restart dist", serves_again=serves, healthy=healthy)


def test_distribution_node_cut_from_validators(builds: Builds) -> None:
    hosts = builds.hosts
    name, version = SERVED
    release = _served_release(builds)
    code, out = _pull(hosts, name, version, "state-cut", MAX_AGE)
    assert code == 0, out
    network = f"{hosts.project}_ledger"
    dist = hosts.container("dist")
    docker("network", "disconnect", network, dist)
    t0 = time.monotonic()
    assert _dist_ip(hosts, "ledger") == ""
    # It serves what it has, to pip and to farm pull.
    assert _release(hosts, name, version) is not None
    _bytes_of(hosts, release)
    simple = _dist(hosts, f"/simple/{name}/")
    assert simple is not None and simple.status_code == 200

    def refused() -> str | None:
        code, out = _pull(hosts, name, version, "state-cut", MAX_AGE)
        return out if code != 0 else None

    why = wait_for(f"farm pull --max-age {MAX_AGE} refusing", refused, MAX_AGE + 90)
    detect = time.monotonic() - t0
    assert "more than the allowed" in why or "not fresh" in why, why
    code, out = _pull(hosts, name, version, "state-cut")
    assert code == 0, f"without --max-age {MAX_AGE}, the pull should verify: {out}"
    docker("network", "connect", "--alias", "dist", network, dist)
    t1 = time.monotonic()

    def accepted() -> bool:
        return _pull(hosts, name, version, "state-cut", MAX_AGE)[0] == 0

    wait_for(f"farm pull --max-age {MAX_AGE} accepted again", accepted, 120)
    recover = time.monotonic() - t1
    assert len(hosts.get("/v1/attestations", name=name, version=version)["items"]) == 1
    same_checkpoint(hosts)
    report("dist cut from validators", cut_s=t1 - t0, detect=detect, recover=recover)


def test_distribution_node_cut_from_coordinator_catches_up(builds: Builds) -> None:
    hosts = builds.hosts
    name, version = "typing_extensions", "4.12.2"
    start = builds.log_size()
    with blocked(hosts.container("dist"), [COORDINATOR_HTTP]):
        t0 = time.monotonic()
        build_id = builds.request(f"{name}/{version}")
        attestation = builds.committed_once(build_id, name, version, start=start)
        index = int(attestation["ledger_index"])
        committed = time.monotonic() - t0

        def followed() -> dict[str, Any] | None:
            s = _dist_status(hosts)
            return s if s is not None and s["tree_size"] > index else None

        status = wait_for("the node following the attestation", followed, 120)
        followed_at = time.monotonic() - t0
        assert status["mirror_pending"] >= 1, status
        time.sleep(5)  # a few mirror attempts fail while cut
        assert _release(hosts, name, version) is None, "served without its bytes"
    t1 = time.monotonic()
    wait_for(f"{name} {version} served", lambda: _release(hosts, name, version), 120)
    recover = time.monotonic() - t1
    code, out = _pull(hosts, name, version, "state-coordinator")
    assert code == 0, out
    report(
        "dist cut from coordinator",
        commit=committed,
        followed=followed_at,
        cut_s=t1 - t0,
        recover=recover,
    )
