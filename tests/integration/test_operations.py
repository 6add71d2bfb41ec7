"""Health, readiness, Prometheus metrics and JSON logs of every service, on real ones.

One farm for the module: 4 ``farm ledger run`` validators, Redis, three builder
workers, ``farm serve --ledger`` (the scheduler and the ledger publisher), one
builder restarted with ``--metrics-address`` and a pinned image, and ``farm dist
serve``, every one with ``FARM_LOG_FORMAT=json``. One real build runs through all of
them. Then parts are stopped to see readiness follow: a validator whose peers are down
and a distribution node whose checkpoint went stale are unready until the peers are
back; a builder and the coordinator whose Redis is stopped are unready until it is.
The tests run in file order and share the farm.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.cluster import BuilderProcess, free_port
from tests.integration.conftest import write_recipe
from tests.integration.test_dist_node import Proc
from tests.support.ledger_testnet import LedgerTestnet, wait_for
from tests.support.served import ServedFarm, served_farm
from tests.support.served import farm_cli as _farm

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]

JSON_LOGS = {"FARM_LOG_FORMAT": "json"}
REQUIRED = {"ts", "level", "logger", "message", "service", "host"}
DIST_MAX_AGE = 3.0


@dataclass
class World:
    net: LedgerTestnet
    served: ServedFarm
    builder: BuilderProcess
    builder_url: str
    dist: Proc
    dist_url: str
    build_id: str | None = None


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def metrics(url: str) -> dict[str, float]:
    """``name{label=value,...}`` → value, parsed with prometheus_client's own parser."""
    r = get(url + "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out


def ready(url: str) -> tuple[int, dict[str, Any]]:
    r = get(url + "/readyz")
    return r.status_code, r.json()


def json_lines(path: Path, service: str) -> list[dict[str, Any]]:
    """Every line of ``path`` as JSON (each must parse), checked for the required keys."""
    lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    assert lines, f"{path} is empty"
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}: not a JSON line: {line!r}")
        assert isinstance(value, dict) and set(value) >= REQUIRED, line
        assert value["service"] == service, line
        parsed.append(value)
    return parsed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[World]:
    root = tmp_path_factory.mktemp("operations")
    net = LedgerTestnet(root / "ledger", 4, env=JSON_LOGS)
    try:
        for i in range(3):  # v3 waits: v0 sees too few peers first
            net.start(i, wait=False)
        for i in range(3):
            wait_for(f"v{i} serving", lambda i=i: net.status(i) is not None, 60)
        yield from _with_farm(root, net, builder_image)
    finally:
        net.close()


def _with_farm(root: Path, net: LedgerTestnet, builder_image: str) -> Iterator[World]:
    with served_farm(
        root,
        label="operations test",
        serve_args=[
            "--ledger", ",".join(net.url(i) for i in range(net.n)),
            "--coordinator-key", str(net.root / "coordinator.key"),
            "--ledger-chain", net.chain_id, "--log-level", "info",
            "--genesis", str(net.genesis),
        ],
        serve_env={**JSON_LOGS, "FARM_COORDINATOR_LEDGER_INTERVAL": "0.5"},
        operator=(net.root / "operator.key", net.genesis),
    ) as served:  # fmt: skip
        cluster = served.cluster
        builder = cluster.builders[0]
        port = free_port()
        cluster.stop_builder(builder)
        builder.log_path.write_bytes(b"")  # from here on: JSON lines only
        cluster.env.update(
            FARM_METRICS_ADDRESS=f"127.0.0.1:{port}",
            FARM_BUILDER_IMAGE=builder_image,
            **JSON_LOGS,
        )
        cluster.start_builder(builder)
        cluster.env.clear()  # only this builder serves metrics
        cluster.wait_ready()
        builder_url = f"http://127.0.0.1:{port}"
        dist_port = free_port()
        dist = Proc(
            [
                sys.executable, "-m", "farm.cli", "dist", "serve",
                "--genesis", str(net.genesis),
                "--ledger", ",".join(net.url(i) for i in range(net.n)),
                "--coordinator", served.url, "--data", str(root / "dist"),
                "--port", str(dist_port), "--poll-interval", "0.2",
                "--max-age", str(DIST_MAX_AGE),
            ],
            root / "dist.log",
            f"http://127.0.0.1:{dist_port}/healthz",
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("FARM_")},
                **JSON_LOGS,
            },
        )  # fmt: skip
        dist.start()
        try:
            yield World(net, served, builder, builder_url, dist, f"http://127.0.0.1:{dist_port}")
        finally:
            dist.stop()


# --------------------------------------------------------------------------- validators


def test_validator_is_alive_and_ready_only_with_2f_peers(world: World) -> None:
    net = world.net
    assert get(net.url(0) + "/healthz").json() == {"status": "ok"}
    # v0 may already see v1 and v2 (2f = 2 of n = 4): stop v2 to be one short.
    net.stop(2)
    try:
        wait_for("v0 to lose v2", lambda: len((net.status(0) or {"peers": "xx"})["peers"]) < 2, 30)
        status, body = ready(net.url(0))
        assert status == 503, body
        assert body["failed"] == ["peers"]
        assert "1 peer(s) connected, 2 (2f of n=4) needed" in body["checks"]["peers"]["detail"]
    finally:  # the later tests need every validator
        net.start(2)
        net.start(3)
    wait_for("v0 ready", lambda: ready(net.url(0))[0] == 200, 60)
    wait_for(
        "every validator ready", lambda: all(ready(net.url(i))[0] == 200 for i in range(4)), 60
    )


# --------------------------------------------------------------------------- one build


def test_a_real_build_shows_in_every_services_metrics(
    world: World, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    served = world.served
    builder_ready = wait_for("the builder ready", lambda: ready(world.builder_url)[0] == 200, 30)
    assert builder_ready
    assert ready(served.url)[0] == 200, ready(served.url)
    wait_for(
        "three builders enrolled on the ledger",
        lambda: (
            all(b["ledger_index"] is not None for b in served.http.get("/v1/builders").json())
            or None
        ),
        60,
    )
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "cp data.txt /out/data.txt\n", ["data.txt"], name="ops-demo",
    )  # fmt: skip
    proc = _farm(
        "submit", str(recipe), "--coordinator", served.url, "--operator-token", served.token,
        "--wait", "--timeout", "150",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout

    def attested() -> dict[str, Any] | None:
        page: dict[str, Any] = served.http.get(
            "/v1/attestations", params={"name": "ops-demo"}
        ).json()
        return page["items"][0] if page["total"] == 1 else None

    att = wait_for("the attestation", attested, 60)
    world.build_id = att["build_id"]
    sha = att["artifacts"][0]["sha256"]

    c = metrics(served.url)
    assert c["farm_coordinator_builds{status=verified}"] == 1
    assert c["farm_coordinator_build_duration_seconds_count"] == 1
    assert 0 < c["farm_coordinator_build_duration_seconds_sum"] < 150
    assert c["farm_coordinator_agreement_rate"] == 1.0
    assert c["farm_coordinator_attestations{status=committed}"] == 1
    assert c["farm_coordinator_submit_to_commit_seconds_count"] == 1
    assert 0 <= c["farm_coordinator_submit_to_commit_seconds_sum"] < 60
    depths = {k: v for k, v in c.items() if k.startswith("farm_coordinator_queue_depth{")}
    assert len(depths) == 3 and set(depths.values()) == {0.0}, depths

    b = metrics(world.builder_url)
    assert b["farm_builder_builds_started_total"] == 1
    assert b["farm_builder_builds_finished_total{outcome=succeeded}"] == 1
    assert b["farm_builder_builds_finished_total{outcome=error}"] == 0
    assert b["farm_builder_build_duration_seconds_count"] == 1
    assert b["farm_builder_image_present"] == 1
    assert b["farm_builder_queue_depth"] == 0

    size = att["ledger_index"] + 1
    for i in range(world.net.n):
        v = metrics(world.net.url(i))
        assert v["farm_ledger_log_size"] == size
        assert v["farm_ledger_height"] >= 2  # enrollments, then the attestation
        assert v["farm_ledger_peers_connected"] == 3
        assert v["farm_ledger_mempool_transactions"] == 0
        assert 0 <= v["farm_ledger_checkpoint_age_seconds"] < 30
    # A height started here (the ones caught up from peers are not timed).
    latencies = [metrics(world.net.url(i)) for i in range(world.net.n)]
    assert any(v["farm_ledger_commit_latency_seconds_count"] >= 1 for v in latencies)
    assert get(world.net.url(0) + "/v1/metrics").json()["heights"]  # the JSON route stays

    def mirrored() -> bool:
        return get(f"{world.dist_url}/artifacts/sha256/{sha}").status_code == 200

    wait_for("the artifact served", mirrored, 60)
    assert get(f"{world.dist_url}/artifacts/sha256/{'0' * 64}").status_code == 404
    d = metrics(world.dist_url)
    assert d["farm_dist_requests_total{route=artifacts,status=200}"] >= 1
    assert d["farm_dist_requests_total{route=artifacts,status=404}"] >= 1
    assert d["farm_dist_bytes_served_total{route=artifacts}"] >= len("some data\n")
    assert d["farm_dist_log_size"] == size
    assert d["farm_dist_lag_heights"] == 0
    assert 0 <= d["farm_dist_lag_seconds"] < 10
    assert d["farm_dist_mirror_backlog"] == 0
    assert d["farm_dist_artifacts_served"] == 1
    assert not math.isnan(d["farm_dist_checkpoint_age_seconds"])
    assert ready(world.dist_url)[0] == 200


def test_every_service_logs_json_lines_with_service_host_and_ids(world: World) -> None:
    assert world.build_id is not None, "runs after the build test"
    v0 = json_lines(world.net.root / "v0.log", "validator")
    assert any("p2p" in line["message"] for line in v0)
    coordinator = json_lines(world.served.root / "serve.log", "coordinator")
    assert any(line.get("build_id") == world.build_id for line in coordinator)
    assert any(line["logger"] == "uvicorn.access" for line in coordinator)
    builder = json_lines(world.builder.log_path, "builder")
    tagged = [x for x in builder if x.get("build_id") == world.build_id]
    assert tagged and all(x["builder_id"] == world.builder.builder_id for x in tagged)
    assert any(x["logger"].startswith("builders.") for x in tagged)
    json_lines(world.dist.log_path, "distribution")


# --------------------------------------------------------------------------- faults


def test_distribution_node_unready_once_its_checkpoint_is_stale(world: World) -> None:
    net = world.net
    net.stop(2)
    net.stop(3)  # 2 of 4: nothing is co-signed by 2f+1 any more
    try:
        status, body = wait_for(
            "the dist node unready",
            lambda: ((r := ready(world.dist_url))[0] == 503 and r) or None,
            DIST_MAX_AGE + 20,
        )
        assert body["failed"] == ["checkpoint"], body
        assert "old, at most 3 s allowed" in body["checks"]["checkpoint"]["detail"]
        status, body = ready(net.url(0))
        assert status == 503 and body["failed"] == ["peers"], body
        assert get(world.dist_url + "/healthz").status_code == 200  # alive all the same
    finally:
        net.start(2)
    wait_for("the dist node ready again", lambda: ready(world.dist_url)[0] == 200, 60)
    wait_for("v0 ready again", lambda: ready(net.url(0))[0] == 200, 60)
    net.start(3)


def test_builder_and_coordinator_unready_while_redis_is_down(world: World) -> None:
    redis = world.served.cluster.redis
    redis.stop()
    try:
        status, body = wait_for(
            "the builder unready", lambda: (r := ready(world.builder_url))[0] == 503 and r, 30
        )
        assert body["failed"] == ["redis"], body
        status, body = ready(world.served.url)
        assert status == 503 and body["failed"] == ["redis"], body
        assert get(world.builder_url + "/healthz").status_code == 200
    finally:
        redis.start()
    wait_for("the builder ready again", lambda: ready(world.builder_url)[0] == 200, 30)
    assert ready(world.served.url)[0] == 200
