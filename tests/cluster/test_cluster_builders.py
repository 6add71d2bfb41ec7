"""Cluster test group 3 (issue 13, "Builders and broker"): builder hosts and Redis broken
in the middle of builds.

One farm of hosts (the session's ``farm_hosts``) with a fourth builder host, ``b5``,
added for the module (a build needs three hosts, so a replacement needs a fourth; it
is retired at the end, and a killed host started again, so later modules find the
three builder hosts they expect). Each scenario submits a shipped recipe no other
module builds, breaks something while a build container runs on a builder host (seen
in that host's own Docker Engine), and ends with the closing check of
:meth:`tests.support.farm_builds.Builds.committed_once`: verified by at least three
builders, exactly one committed attestation listed by the coordinator, exactly one
attest entry for the build on the ledger, all four validators on one 2f+1 co-signed
checkpoint. Each prints one line of timings.

1. ``docker kill`` a builder host mid-build: the coordinator gives its attempt up as
   ``lost`` once it has not beaten for ``FARM_COORDINATOR_BUILDER_LOST_AFTER`` (20 s
   here), not at the recipe timeout; the fourth host finishes the build. The killed
   host, started again, takes its interrupted task back and builds it; its late result
   is refused (the build is decided) and nothing is attested twice.
2. A builder host cut off from Redis (every packet to redis:6379 dropped in its network
   namespace) from mid-build until after its build ended: it keeps beating to the
   coordinator, so it is not replaced; once healed its result is stored and delivered.
3. ``docker kill`` Redis mid-build, then ``docker start``: the append-only log keeps the
   queues; every builder's result arrives, nothing is replaced.
4. Redis stopped, its volume emptied and started again while one build runs and a
   second waits in the builders' queues: the coordinator sees the broker lost its
   contents (its marker key is gone) and sends every outstanding task again; both
   builds are verified with no builder replaced.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from farm.hosts.operate import add_builder, retire_builder
from farm.queue import keyspace_of
from farm.task import queue_for
from tests.support.farm_builds import Builds, blocked, docker, report, wait_healthy
from tests.support.hosts import FarmHosts
from tests.support.ledger_testnet import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(1500)]

SPARE = "b5"
REDIS_PORT = 6379


def _say(text: str) -> None:
    print(f"[builders {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Farm:
    """The farm, its builds helper, and every builder host (name → builder id)."""

    hosts: FarmHosts
    builds: Builds
    builders: dict[str, str]
    killed: set[str] = field(default_factory=set)

    def host_of(self, builder_id: str) -> str:
        return next(name for name, bid in self.builders.items() if bid == builder_id)

    def attempt(self, build_id: str, builder_id: str) -> dict[str, Any] | None:
        build = self.builds.build(build_id)
        if build is None:
            return None
        found = [a for a in build.get("attempts") or [] if a["builder_id"] == builder_id]
        return found[0] if found else None


@pytest.fixture(scope="module")
def farm(farm_hosts: FarmHosts) -> Iterator[Farm]:
    hosts = farm_hosts
    t0 = time.monotonic()
    spare = add_builder(hosts.dir, SPARE, _say)
    _say(f"{SPARE} joined in {time.monotonic() - t0:.0f} s")
    f = Farm(hosts, Builds(hosts), {**hosts.builders, SPARE: spare})
    try:
        yield f
    finally:
        _mend(f)
        retire_builder(hosts.dir, SPARE, _say)
        f.builds.close()


def _mend(f: Farm) -> None:
    """Redis and every killed builder host running and healthy again."""
    if f.hosts.state("redis") != "running":
        docker("start", f.hosts.container("redis"))
    wait_healthy(f.hosts, "redis", 120)
    for name in sorted(f.killed):
        if f.hosts.state(name) != "running":
            docker("start", f.hosts.container(name))
    for name in sorted(f.killed):
        wait_healthy(f.hosts, name, 600)
        _wait_beating(f, name)
    f.killed.clear()


def _wait_beating(f: Farm, name: str) -> None:
    builder_id = f.builders[name]
    wait_for(f"{name} heard from", lambda: _beating(f, builder_id), 60)


def _beating(f: Farm, builder_id: str, within: float = 10) -> bool | None:
    """Whether the coordinator heard from the builder in the last ``within`` seconds."""
    row = f.hosts.get(f"/v1/builders/{builder_id}")
    seen = row.get("last_seen")
    if seen is None:
        return None
    age = (datetime.now(UTC) - datetime.fromisoformat(seen)).total_seconds()
    return age < within or None


def _containers(f: Farm, host: str, build_id: str) -> list[str]:
    """Build containers of ``build_id`` running in builder host ``host``'s own engine."""
    done = subprocess.run(
        ["docker", "exec", f.hosts.container(host), "docker", "ps", "-q",
         "--filter", f"label=farm.build-id={build_id}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.split() if done.returncode == 0 else []


def _mid_build(f: Farm, build_id: str, timeout: float = 600) -> str:
    """Wait until a build container of ``build_id`` runs on one of its builder hosts;
    that host's name."""

    def running() -> str | None:
        build = f.builds.build(build_id)
        if build is None:
            return None
        assert build["status"] not in ("verified", "disputed", "failed"), build
        for attempt in build.get("attempts") or []:
            if attempt["state"] == "dispatched":
                host = f.host_of(attempt["builder_id"])
                if _containers(f, host, build_id):
                    return host
        return None

    return wait_for(f"a build container of {build_id}", running, timeout)


def _states(build: dict[str, Any]) -> dict[str, str]:
    return {a["builder_id"]: a["state"] for a in build.get("attempts") or []}


def test_a_builder_host_killed_mid_build_is_replaced_and_attested_once(farm: Farm) -> None:
    name, version = "tomli_w", "1.1.0"
    start = farm.builds.log_size()
    build_id = farm.builds.request(f"{name}/{version}")
    victim = _mid_build(farm, build_id)
    victim_id = farm.builders[victim]
    docker("kill", farm.hosts.container(victim))
    farm.killed.add(victim)
    t0 = time.monotonic()
    _say(f"{victim} killed while building {build_id}")

    lost = wait_for(
        f"{victim}'s attempt given up",
        lambda: (a := farm.attempt(build_id, victim_id)) and a["state"] != "dispatched" and a,
        120,
    )
    detected = time.monotonic() - t0
    assert lost["state"] == "lost", lost
    assert victim in lost["reason"], lost
    replacement = lost["replaced_by"]
    assert replacement in farm.builders.values() and replacement != victim_id, lost
    build = farm.builds.decided(build_id)
    verified = time.monotonic() - t0
    assert build["retries"] == 1, build
    assert victim_id not in build["verdict"]["agreed"]
    assert replacement in build["verdict"]["agreed"]
    attestation = farm.builds.committed_once(build_id, name, version, start=start)
    committed = time.monotonic() - t0

    # The killed host comes back, takes its interrupted task back and builds it: the
    # late result is refused, the attestation stays the one.
    docker("start", farm.hosts.container(victim))
    back = wait_healthy(farm.hosts, victim, 600)
    farm.killed.discard(victim)

    def refused() -> dict[str, Any] | None:
        b = farm.builds.build(build_id)
        rows = [r for r in (b or {}).get("results") or [] if r["builder_id"] == victim_id]
        return rows[0] if rows else None

    late = wait_for(f"{victim}'s late result", refused, 600)
    assert late["status"] == "refused" and "already decided" in (late.get("reason") or ""), late
    again = farm.builds.committed_once(build_id, name, version, start=start)
    assert again["tx_id"] == attestation["tx_id"]
    report(
        f"kill -9 builder host {victim}",
        detect=detected, recover=verified, commit_again=committed, host_back=back
    )  # fmt: skip


def test_a_builder_host_cut_off_from_redis_keeps_its_build(farm: Farm) -> None:
    name, version = "pyproject_hooks", "1.2.0"
    start = farm.builds.log_size()
    build_id = farm.builds.request(f"{name}/{version}")
    victim = _mid_build(farm, build_id)
    victim_id = farm.builders[victim]
    with blocked(farm.hosts.container(victim), [REDIS_PORT]):
        t0 = time.monotonic()
        _say(f"{victim} cut off from Redis while building {build_id}")
        wait_for(
            f"{victim}'s build container ended",
            lambda: not _containers(farm, victim, build_id) or None, 600,
        )  # fmt: skip
        # Longer than the coordinator's lost_after (20 s): a builder whose beats hung
        # with the broker would be given up meanwhile.
        while time.monotonic() - t0 < 30:
            time.sleep(1)
        assert _beating(farm, victim_id), f"{victim} stopped beating to the coordinator"
        assert farm.attempt(build_id, victim_id)["state"] == "dispatched"  # type: ignore[index]
    t1 = time.monotonic()
    build = farm.builds.decided(build_id)
    verified = time.monotonic() - t1
    assert build["retries"] == 0, build
    assert _states(build)[victim_id] == "succeeded", build["attempts"]
    assert victim_id in build["verdict"]["agreed"]
    farm.builds.committed_once(build_id, name, version, start=start)
    report(
        f"cut {victim} off from Redis",
        cut_s=t1 - t0, recover=verified, commit_again=time.monotonic() - t1
    )  # fmt: skip


def test_redis_killed_mid_build_loses_no_build(farm: Farm) -> None:
    name, version = "tomli", "2.2.1"
    start = farm.builds.log_size()
    build_id = farm.builds.request(f"{name}/{version}")
    host = _mid_build(farm, build_id)
    redis = farm.hosts.container("redis")
    docker("kill", redis)
    t0 = time.monotonic()
    _say(f"Redis killed while {host} builds {build_id}")
    time.sleep(5)
    assert farm.hosts.state("redis") == "exited"
    docker("start", redis)
    t1 = time.monotonic()
    wait_healthy(farm.hosts, "redis", 120)
    healthy = time.monotonic() - t1
    build = farm.builds.decided(build_id)
    verified = time.monotonic() - t0
    assert build["retries"] == 0, build
    assert set(_states(build).values()) == {"succeeded"}, build["attempts"]
    farm.builds.committed_once(build_id, name, version, start=start)
    report(
        "kill -9 Redis",
        down_s=t1 - t0, redis_healthy=healthy, recover=verified,
        commit_again=time.monotonic() - t0,
    )  # fmt: skip


def _queued(f: Farm, builder_id: str) -> int:
    """How many tasks wait on the builder's queue in Redis."""
    out = f.hosts.redis_cli("llen", keyspace_of(builder_id) + queue_for(builder_id))
    return int(out.stdout.strip() or 0) if out.returncode == 0 else 0


def test_redis_wiped_mid_build_the_coordinator_sends_again(farm: Farm) -> None:
    first, second = ("idna", "3.10"), ("packaging", "24.2")
    start = farm.builds.log_size()
    running_id = farm.builds.request(f"{first[0]}/{first[1]}")
    waiting_id = farm.builds.request(f"{second[0]}/{second[1]}")
    host = _mid_build(farm, running_id)
    waiting = farm.builds.running(waiting_id)
    queued = {a["builder_id"] for a in waiting["attempts"] if _queued(farm, a["builder_id"]) > 0}
    assert queued, f"no task of {waiting_id} waits in a queue: nothing to lose"
    redis = farm.hosts.container("redis")
    volume = f"{farm.hosts.project}_redis-data"
    docker("kill", redis)
    t0 = time.monotonic()
    image = docker("inspect", "-f", "{{.Config.Image}}", redis).strip()
    left = docker(
        "run", "--rm", "--user", "0:0", "-v", f"{volume}:/d", image,
        "sh", "-c", "rm -rf /d/* /d/.[!.]*; ls -A /d",
    )  # fmt: skip
    assert left.strip() == "", f"{volume} still holds {left}"
    docker("start", redis)
    _say(
        f"Redis wiped while {host} builds {running_id}; {len(queued)} task(s) of {waiting_id} lost"
    )
    wait_healthy(farm.hosts, "redis", 120)
    # Sent again: the waiting build's tasks are back on their queues or being built.
    wait_for(
        "the lost tasks sent again",
        lambda: all(
            _queued(farm, b) > 0 or _containers(farm, farm.host_of(b), waiting_id)
            or _states(farm.builds.build(waiting_id) or {}).get(b) != "dispatched"
            for b in queued
        ) or None,
        120,
    )  # fmt: skip
    detected = time.monotonic() - t0
    done = {}
    for build_id, (name, version) in ((running_id, first), (waiting_id, second)):
        build = farm.builds.decided(build_id)
        assert build["retries"] == 0, build
        assert set(_states(build).values()) == {"succeeded"}, build["attempts"]
        done[build_id] = time.monotonic() - t0
        farm.builds.committed_once(build_id, name, version, start=start)
    report(
        "Redis wiped",
        lost_tasks=len(queued), resent=detected, recover=max(done.values()),
        commit_again=time.monotonic() - t0,
    )  # fmt: skip
