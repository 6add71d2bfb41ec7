"""Attestation queries against a real ``farm serve``, for ``farm bench api``.

Each filter the API offers (name, name and version, architecture, artifact sha256,
recipe digest, and plain pagination) gets its own list of queries whose values are
drawn from what was loaded. Two measurements:

* latency: one keep-alive connection, one query at a time; every answer is checked
  (status 200, the ``total`` the loaded data implies) after its clock stops;
* throughput: ``clients`` concurrent keep-alive connections for a fixed number of
  queries.

Both use :class:`farm.bench.ledger.HttpConn` (plain HTTP/1.1 over asyncio streams): on a
two-core machine a general purpose client costs as much CPU per request as the server
(about 2 ms per query here), and the figures would measure the client. The latency is
also taken through one keep-alive :class:`httpx.Client` and shown beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from farm.bench.api_load import Loaded
from farm.bench.ledger import HttpConn
from farm.cluster import free_port
from farm.errors import FarmError

__all__ = [
    "FILTERS",
    "WARMUP",
    "Query",
    "QueryStats",
    "Served",
    "cpu_seconds",
    "farm_serve",
    "make_queries",
    "run_latency",
    "run_latency_httpx",
    "run_throughput",
]

FARM = [sys.executable, "-m", "farm.cli"]
FILTERS = ("name", "name+version", "arch", "sha256", "recipe_digest", "page")
PAGE = 20
WARMUP = 30
"""Queries sent (and checked) before the clock starts."""
"""Page size of the pagination queries (the others use the API's default, 50)."""


@dataclass(frozen=True)
class Query:
    """One GET of /v1/attestations and the ``total`` its answer must have."""

    kind: str
    path: str
    total: int


@dataclass(frozen=True)
class QueryStats:
    """Latencies (ms) of one filter's sequential queries."""

    kind: str
    latencies_ms: tuple[float, ...]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _path(**params: str | int) -> str:
    return "/v1/attestations?" + urlencode(params)


def make_queries(loaded: Loaded, per_filter: int, seed: int = 1) -> list[Query]:
    """``per_filter`` queries of each kind in :data:`FILTERS`, values drawn from ``loaded``."""
    rng = random.Random(seed)
    names, versions = list(loaded.by_name), list(loaded.by_version)
    recipes, arches = list(loaded.by_recipe), list(loaded.by_arch)
    out: list[Query] = []
    for _ in range(per_filter):
        name = rng.choice(names)
        out.append(Query("name", _path(name=name), loaded.by_name[name]))
        name, version = rng.choice(versions)
        out.append(
            Query(
                "name+version",
                _path(name=name, version=version),
                loaded.by_version[(name, version)],
            )
        )
        arch = rng.choice(arches)
        out.append(Query("arch", _path(arch=arch), loaded.by_arch[arch]))
        out.append(Query("sha256", _path(sha256=rng.choice(loaded.sha256s)), 1))
        digest = rng.choice(recipes)
        out.append(Query("recipe_digest", _path(recipe_digest=digest), loaded.by_recipe[digest]))
        offset = rng.randrange(0, max(1, loaded.count - PAGE))
        out.append(Query("page", _path(limit=PAGE, offset=offset), loaded.count))
    return out


def _check(query: Query, status: int, body: bytes) -> None:
    if status != 200:
        raise FarmError(f"GET {query.path} answered {status}: {body[:300]!r}")
    page = json.loads(body)
    if not page["items"] or page["total"] != query.total:
        raise FarmError(
            f"GET {query.path} found {page['total']} attestations, expected {query.total}"
        )


async def _sequential(host: str, port: int, queries: list[Query], warmup: int) -> list[float]:
    conn = HttpConn(host, port)
    times: list[float] = []
    try:
        for q in queries[:warmup]:
            _check(q, *await conn.request("GET", q.path))
        for q in queries:
            start = time.perf_counter()
            status, body = await conn.request("GET", q.path)
            times.append((time.perf_counter() - start) * 1000)
            _check(q, status, body)
    finally:
        await conn.close()
    return times


def _by_kind(queries: list[Query], times: list[float]) -> list[QueryStats]:
    grouped: dict[str, list[float]] = {k: [] for k in FILTERS}
    for q, ms in zip(queries, times, strict=True):
        grouped[q.kind].append(ms)
    return [QueryStats(k, tuple(v)) for k, v in grouped.items() if v]


def run_latency(base_url: str, queries: list[Query], warmup: int = WARMUP) -> list[QueryStats]:
    """Sequential latency of every query over one keep-alive connection, per filter.

    The client is :class:`~farm.bench.ledger.HttpConn`, so that the figure is the API's and
    not the client's; :func:`run_latency_httpx` gives what an httpx client sees.
    """
    url = httpx.URL(base_url)
    assert url.port is not None
    return _by_kind(queries, asyncio.run(_sequential(url.host, url.port, queries, warmup)))


def run_latency_httpx(
    base_url: str, queries: list[Query], warmup: int = WARMUP
) -> list[QueryStats]:
    """The same as :func:`run_latency` through one keep-alive :class:`httpx.Client`."""
    times: list[float] = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for q in queries[:warmup]:
            r = client.get(q.path)
            _check(q, r.status_code, r.content)
        for q in queries:
            start = time.perf_counter()
            r = client.get(q.path)
            body = r.content
            times.append((time.perf_counter() - start) * 1000)
            _check(q, r.status_code, body)
    return _by_kind(queries, times)


async def _throughput(host: str, port: int, queries: list[Query], clients: int) -> float:
    pending = list(reversed(queries))

    async def worker() -> None:
        conn = HttpConn(host, port)
        try:
            while pending:
                q = pending.pop()
                status, body = await conn.request("GET", q.path)
                if status != 200:
                    raise FarmError(f"GET {q.path} answered {status}: {body[:300]!r}")
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(queries) / (time.perf_counter() - start)


def run_throughput(base_url: str, queries: list[Query], clients: int) -> float:
    """Queries per second answered with ``clients`` concurrent keep-alive connections."""
    url = httpx.URL(base_url)
    assert url.port is not None
    return asyncio.run(_throughput(url.host, url.port, queries, clients))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Served:
    """A running ``farm serve``: its base URL and process id."""

    url: str
    pid: int


@contextmanager
def farm_serve(db_url: str, root: Path, env: dict[str, str], *extra: str) -> Iterator[Served]:
    """A ``farm serve`` process on ``db_url`` and a free port (see :class:`Served`)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*FARM, "serve", "--db", db_url, "--port", str(port), "--staging",
            str(root / "staging"), "--log-level", "warning", *extra]  # fmt: skip
    log_path = root / f"serve-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-1500:]
                    raise FarmError(f"farm serve exited ({proc.returncode}):\n{tail}")
                try:
                    if client.get(url + "/v1/builders").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise FarmError(f"farm serve did not answer on {url} within 60 s")
                time.sleep(0.1)
        yield Served(url, proc.pid)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
