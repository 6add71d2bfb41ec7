"""Cluster test group 6 (issue 13): a rolling restart of every service of a farm of hosts,
one at a time, while builds run.

Each service (v0..v3, redis, postgres, the coordinator, b1..b3, the distribution node)
is restarted as an operator upgrading it would (``docker restart``: SIGTERM, then SIGKILL
after the compose file's grace period), and the next one only once its health check
passes again. Builds are requested before the roll starts, after the broker and the
database are back, and after the coordinator is back, so that each part goes down while
builds are queued, running or being attested. Every build requested during the roll
must be verified, its attestation committed exactly once (one on the coordinator, one
attest entry on the ledger), all four validators must end on the same 2f+1 co-signed
checkpoint, and the distribution node must serve every release.

Timings printed: each service's time from restart to healthy, and each build's time
from request to committed attestation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.farm_builds import Builds, docker, report, wait_healthy
from tests.support.hosts import FarmHosts
from tests.support.ledger_testnet import wait_for

# The first test of a session also brings the farm up (several minutes).
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(1800)]

ROLL = ("v0", "v1", "v2", "v3", "redis", "postgres", "coordinator", "b1", "b2", "b3", "dist")
REQUEST_BEFORE = {
    "v0": ("tomli_w", "1.1.0"),
    "postgres": ("tomli", "2.2.1"),
    "b1": ("pyproject_hooks", "1.2.0"),
}
"""A build is requested just before each of these services is restarted."""
GRACE = 20
"""Seconds ``docker restart`` waits after SIGTERM (the compose stop_grace_period)."""


@pytest.fixture(scope="module")
def builds(farm_hosts: FarmHosts) -> Iterator[Builds]:
    b = Builds(farm_hosts)
    try:
        yield b
    finally:
        b.close()


def test_rolling_restart_of_every_service_while_builds_run(builds: Builds) -> None:
    hosts = builds.hosts
    start = builds.log_size()
    requested: dict[str, tuple[str, str, float]] = {}
    healthy: dict[str, float] = {}
    t0 = time.monotonic()
    for service in ROLL:
        if service in REQUEST_BEFORE:
            name, version = REQUEST_BEFORE[service]
            recipe = f"{name}/{version}"
            build_id = wait_for(
                f"the coordinator taking a build of {name}",
                lambda: _request(builds, recipe),  # noqa: B023 (called at once)
                120,
            )
            requested[build_id] = (name, version, time.monotonic())
        docker("restart", "-t", str(GRACE), hosts.container(service), timeout=GRACE + 120)
        healthy[service] = wait_healthy(hosts, service, timeout=300)
        print(f"[rolling] {service} healthy again in {healthy[service]:.1f} s", flush=True)
    rolled = time.monotonic() - t0
    committed = {}
    for build_id, (name, version, asked) in requested.items():
        attestation = builds.committed_once(build_id, name, version, start=start, timeout=600)
        committed[name] = time.monotonic() - asked

        def served(n: str = name, v: str = version) -> bool:
            try:
                r = httpx.get(
                    f"{hosts.dist_url}/v1/packages/{n}/{v}", timeout=10, verify=hosts.verify
                )
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and bool(r.json().get("artifacts"))

        wait_for(f"{name} {version} served", served, 180)
        assert attestation["status"] == "committed"
    report(
        "rolling restart",
        roll_s=rolled,
        **{f"{s}_healthy": t for s, t in healthy.items()},
        **{f"{n}_committed": t for n, t in committed.items()},
    )


def _request(builds: Builds, recipe: str) -> str | None:
    """A new build's id, or None while the coordinator does not take requests."""
    try:
        return builds.request(recipe)
    except Exception as exc:  # the coordinator may be coming back: asked again
        print(f"[rolling] build request refused for now: {exc}", flush=True)
        return None
