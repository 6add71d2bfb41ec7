"""``farm bench dist``: the distribution node against nginx, and ``farm verify`` against
``sha256sum``.

What runs, all on 127.0.0.1 in a temporary directory:

* a ledger of 4 real ``farm ledger run`` validators (:class:`farm.bench.ledger.BenchNet`),
  three builder keys enrolled by the genesis operator, and one attest transaction
  (three builders' signed results, the coordinator's signed statement) naming two
  outputs: a small file (50 KB) and a large one (1 GB) of random bytes;
* a real coordinator (``farm serve``) whose staging store holds those bytes;
* a real distribution node (``farm dist serve``) that follows the ledger, mirrors the
  two blobs from the coordinator, checks them and serves them;
* nginx (Debian's package) with a generated configuration (its own prefix, pid and
  log files, ``worker_processes auto``, sendfile), serving the *same files* (hard
  links to the node's blobs) under the same URL paths.

Measured, alternating node and nginx rounds so that load on the shared machine hits
both alike:

* small file: ``clients`` keep-alive connections (spread over two client processes,
  plain HTTP/1.1 over asyncio streams so the client costs little) fetch it for
  ``seconds``; requests per second, counting only complete 200 answers of the right
  length, and (less sensitive to other load on a shared machine) requests per CPU
  second of the server's processes (nginx: master and workers);
* large file: ``rounds`` sequential full downloads over one connection each; MB/s;
* ``farm verify`` of the 1 GB file (the real console script, offline, with the
  evidence the node serves saved beside the file, so it checks the digest, the bundle,
  the inclusion proof and the co-signed checkpoint) against ``sha256sum`` of it, wall
  time of each process, median of ``rounds``.

Prints a table to stderr; the last line on stdout is one JSON object with
``small_vs_nginx`` and ``large_vs_nginx`` (node throughput / nginx throughput) and
``verify_vs_sha256sum`` (sha256sum time / farm verify time), plus the raw figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from farm.poll import poll
from farm.ports import free_port as _free_port

__all__ = ["bench_dist"]

console = Console(stderr=True)
FARM = [sys.executable, "-m", "farm.cli"]
RECIPE = "sha256:" + "ef" * 32
IMAGE = "sha256:" + "cd" * 32
SMALL = "bench-small.bin"
LARGE = "bench-large.bin"


def _get_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _head_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.head(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------- the world


def _write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their sha256."""
    import random

    rng = random.Random(size)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, 16 << 20))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


@dataclass
class _Procs:
    """Processes this bench started, stopped in reverse order (by their own pid)."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append((name, proc))

    def alive(self, name: str) -> None:
        for n, p in self.procs:
            if n == name and p.poll() is not None:
                raise RuntimeError(f"{name} exited with status {p.returncode}")

    def stop(self) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in reversed(self.procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}


def _submit(url: str, tx: bytes) -> dict[str, Any]:
    import httpx

    r = httpx.post(
        f"{url}/v1/tx",
        content=tx,
        headers={"content-type": "application/octet-stream"},
        timeout=90,
    )
    if r.status_code != 200:
        raise RuntimeError(f"the ledger refused a transaction: {r.status_code} {r.text[:300]}")
    body: dict[str, Any] = r.json()
    return body


def _attest_files(ledger_dir: Path, ledger_url: str, files: dict[str, tuple[str, int]]) -> None:
    """Enroll three builders and commit one attestation of ``files`` (name → sha, size)."""
    from farm.attestation import build_bundle
    from farm.consumer.flow import host_arch
    from farm.keys import generate_key, load_key
    from farm.result import BuildPredicate, OutputDigest, sign_result
    from farm.transactions import make_attest, make_enroll
    from ledger.genesis import load_genesis

    chain = load_genesis(ledger_dir / "genesis.json").chain_id
    operator = load_key(ledger_dir / "operator.key")
    coordinator = load_key(ledger_dir / "coordinator.key")
    arch = host_arch()
    builders = [generate_key() for _ in range(3)]
    for i, b in enumerate(builders):
        _submit(
            ledger_url,
            make_enroll(
                operator, b.public_dict(), [arch], f"bench{i}", domain=f"bench-{i}", chain=chain
            ),
        )
    now = datetime.now(UTC)
    outputs = tuple(
        OutputDigest(name=n, sha256=sha, size=size) for n, (sha, size) in sorted(files.items())
    )
    build = f"bench-dist-{int(time.time())}"
    envelopes = [
        sign_result(
            BuildPredicate(
                build_id=build,
                recipe_digest=RECIPE,
                recipe_name="farm-bench",
                recipe_version="1.0",
                image_digest=IMAGE,
                arch=arch,
                builder_id=b.keyid,
                started_at=now,
                finished_at=now,
                status="succeeded",
                exit_code=0,
                log_sha256="0" * 64,
                outputs=outputs,
            ),
            b,
        )
        for b in builders
    ]
    bundle = build_bundle(RECIPE, "farm-bench", "1.0", arch, build, envelopes, coordinator, 3)
    _submit(ledger_url, make_attest(bundle))


_NGINX_CONF = """\
{user}worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ }}
    }}
}}
"""


def _nginx(prefix: Path, www: Path, port: int, procs: _Procs) -> None:
    """Start nginx with its own configuration, pid and logs under ``prefix``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is not installed: apt-get install -y nginx")
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(user=user, prefix=prefix, www=www, port=port))
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    procs.start("nginx", argv, prefix / "stdout.log", _clean_env())


# ---------------------------------------------------------------------- load


async def _small_load(
    port: int, path: str, size: int, conns: int, seconds: float
) -> tuple[int, int, float]:
    from farm.bench.ledger import HttpConn, HttpError

    ok = bad = 0
    start = time.monotonic()
    deadline = start + seconds

    async def one() -> None:
        nonlocal ok, bad
        conn = HttpConn("127.0.0.1", port)
        while time.monotonic() < deadline:
            try:
                status, body = await conn.request("GET", path)
            except (OSError, HttpError, asyncio.IncompleteReadError):
                bad += 1
                continue
            if status == 200 and len(body) == size:
                ok += 1
            else:
                bad += 1
        await conn.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return ok, bad, time.monotonic() - start


def _small_worker(
    port: int, path: str, size: int, conns: int, seconds: float
) -> tuple[int, int, float]:
    return asyncio.run(_small_load(port, path, size, conns, seconds))


def _small_rps(
    pool: Any, port: int, path: str, size: int, clients: int, seconds: float, procs: int = 2
) -> tuple[float, int, int]:
    """(requests per second, failed, completed) over ``clients`` connections, split
    across ``procs`` client processes."""
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    futures = [pool.submit(_small_worker, port, path, size, n, seconds) for n in per if n]
    results = [f.result() for f in futures]
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    return ok / elapsed, bad, ok


def _download(port: int, path: str, size: int) -> float:
    """Seconds to download ``path`` fully over a fresh connection; checks the length."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"{path}: connection closed in the headers")
            head += chunk
        header, _, body = head.partition(b"\r\n\r\n")
        if not header.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{path}: {header.splitlines()[0]!r}")
        got = len(body)
        while n := s.recv_into(view):
            got += n
    elapsed = time.monotonic() - start
    if got != size:
        raise RuntimeError(f"{path}: got {got} bytes, want {size}")
    return elapsed


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and its children so far (Linux /proc):
    for nginx, the master and its workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {(done.stdout + done.stderr).strip()}")
    return elapsed, done.stdout


# ---------------------------------------------------------------------- the bench


@contextlib.contextmanager
def _workdir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    root = Path(tempfile.mkdtemp(prefix="farm-bench-dist-"))
    try:
        yield root
    finally:
        if keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def bench_dist(
    small_kb: Annotated[int, typer.Option("--small-kb", min=1, help="Small file size, KB.")] = 50,
    large_mb: Annotated[
        int, typer.Option("--large-mb", min=1, help="Large file size, MB (MiB).")
    ] = 1024,
    clients: Annotated[
        int, typer.Option("--clients", min=1, help="Concurrent connections for the small file.")
    ] = 32,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="Length of one small-file round.")
    ] = 5.0,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Rounds of each measurement per server.")
    ] = 3,
    workdir: Annotated[
        Path | None, typer.Option("--dir", help="Work directory (default: a temporary one).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary directory.")] = False,
) -> None:
    """Serve 50 KB and 1 GB files with the node and nginx; compare throughput; time
    `farm verify` of the large file against sha256sum. Ends with one line of JSON."""
    with _workdir(workdir, keep) as root:
        root.chmod(0o755)
        procs = _Procs()
        try:
            result = _run(root, procs, small_kb * 1000, large_mb << 20, clients, seconds, rounds)
        finally:
            procs.stop()
    _print(result)


@dataclass(frozen=True)
class _World:
    node: str
    node_port: int
    node_pid: int
    nginx_pid: int
    nginx_port: int
    small_sha: str
    large_sha: str
    large_file: Path


def _run(
    root: Path,
    procs: _Procs,
    small_size: int,
    large_size: int,
    clients: int,
    seconds: float,
    rounds: int,
) -> dict[str, Any]:
    world = _start(root, procs, small_size, large_size)
    small, large, per_cpu, errors = _measure(
        world, small_size, large_size, clients, seconds, rounds
    )
    verify_s, sha_s = _verify_vs_sha256sum(root, world, rounds)
    small_node, small_nginx = statistics.median(small["node"]), statistics.median(small["nginx"])
    large_node, large_nginx = statistics.median(large["node"]), statistics.median(large["nginx"])
    return {
        "small_vs_nginx": round(small_node / small_nginx, 3),
        "large_vs_nginx": round(large_node / large_nginx, 3),
        "verify_vs_sha256sum": round(sha_s / verify_s, 3),
        "small_node_rps": round(small_node, 1),
        "small_node_req_per_cpu_s": round(statistics.median(per_cpu["node"]), 1),
        "small_nginx_req_per_cpu_s": round(statistics.median(per_cpu["nginx"]), 1),
        "small_nginx_rps": round(small_nginx, 1),
        "large_node_MBps": round(large_node, 1),
        "large_nginx_MBps": round(large_nginx, 1),
        "verify_s": round(verify_s, 3),
        "sha256sum_s": round(sha_s, 3),
        "small_bytes": small_size,
        "large_bytes": large_size,
        "clients": clients,
        "rounds": rounds,
        "http_errors": errors,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def _start(root: Path, procs: _Procs, small_size: int, large_size: int) -> _World:
    """Files, ledger, coordinator, node (with both blobs mirrored) and nginx."""
    from farm.bench.ledger import BenchNet

    files = root / "files"
    files.mkdir()
    with console.status("writing the test files"):
        small_sha = _write_random(files / SMALL, small_size)
        large_sha = _write_random(files / LARGE, large_size)
    net = BenchNet(root / "ledger", 4)
    net.start()
    procs.procs.extend((f"validator {i}", p) for i, p in enumerate(net.procs))
    urls = [f"http://127.0.0.1:{net.http_port(i)}" for i in range(net.n)]
    with console.status("starting the ledger, the coordinator and the node"):
        poll("the validators", lambda: all(_get_ok(u + "/v1/status") for u in urls), 120)
        coordinator = _start_coordinator(root, procs, files, {SMALL: small_sha, LARGE: large_sha})
        _attest_files(
            root / "ledger",
            urls[0],
            {SMALL: (small_sha, small_size), LARGE: (large_sha, large_size)},
        )
        node_port = _free_port()
        argv = [*FARM, "dist", "serve", "--genesis", str(root / "ledger" / "genesis.json")]
        argv += ["--ledger", ",".join(urls), "--coordinator", coordinator]
        argv += ["--data", str(root / "node"), "--port", str(node_port)]
        argv += ["--poll-interval", "0.5", "--log-level", "warning"]
        procs.start("node", argv, root / "node.log", _clean_env())
        node = f"http://127.0.0.1:{node_port}"
        poll("the node", lambda: _get_ok(node + "/v1/status"), 120)
        for sha in (small_sha, large_sha):

            def mirrored(sha: str = sha) -> bool:
                procs.alive("node")
                return _head_ok(f"{node}/artifacts/sha256/{sha}")

            poll(f"the node to mirror sha256:{sha[:12]}", mirrored, 600)
    nginx_port = _start_nginx(root, procs, (small_sha, large_sha))
    pids = {name: p.pid for name, p in procs.procs}
    return _World(
        node,
        node_port,
        pids["node"],
        pids["nginx"],
        nginx_port,
        small_sha,
        large_sha,
        files / LARGE,
    )


def _start_coordinator(root: Path, procs: _Procs, files: Path, blobs: dict[str, str]) -> str:
    """A real ``farm serve`` whose staging store holds ``blobs`` (name → sha256)."""
    from farm.coordinator.staging import Staging

    staging = Staging(root / "staging")
    for name, sha in blobs.items():
        target = staging.path_for(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(files / name, target)
    port = _free_port()
    argv = [*FARM, "serve", "--db", f"sqlite:///{root / 'coordinator.db'}", "--port", str(port)]
    argv += ["--staging", str(root / "staging"), "--log-level", "warning"]
    procs.start("coordinator", argv, root / "coordinator.log", _clean_env())
    url = f"http://127.0.0.1:{port}"
    poll("the coordinator", lambda: _get_ok(url + "/v1/builders"), 120)
    return url


def _start_nginx(root: Path, procs: _Procs, shas: tuple[str, ...]) -> int:
    """nginx serving the node's own blob files (hard links) under the node's URL paths."""
    from api.distribution.blobs import BlobStore

    www = root / "www" / "artifacts" / "sha256"
    www.mkdir(parents=True)
    for d in (root / "www", root / "www" / "artifacts", www):
        d.chmod(0o755)
    blobs = BlobStore(root / "node" / "blobs")
    for sha in shas:
        os.link(blobs.path_for(sha), www / sha)
    port = _free_port()
    _nginx(root / "nginx", root / "www", port, procs)
    poll("nginx", lambda: _head_ok(f"http://127.0.0.1:{port}/artifacts/sha256/{shas[0]}"), 60)
    return port


def _measure(
    world: _World, small_size: int, large_size: int, clients: int, seconds: float, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]], int]:
    """Small-file req/s and large-file MB/s per server, alternating the order per round."""
    from concurrent.futures import ProcessPoolExecutor

    small_path = f"/artifacts/sha256/{world.small_sha}"
    large_path = f"/artifacts/sha256/{world.large_sha}"
    servers = [("node", world.node_port), ("nginx", world.nginx_port)]
    pid = {"node": world.node_pid, "nginx": world.nginx_pid}
    per_cpu: dict[str, list[float]] = {"node": [], "nginx": []}
    small: dict[str, list[float]] = {"node": [], "nginx": []}
    large: dict[str, list[float]] = {"node": [], "nginx": []}
    errors = 0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        for _, port in servers:  # warm up both, unmeasured
            _small_rps(pool, port, small_path, small_size, clients, 0.5)
        for r in range(rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for who, port in order:
                with console.status(f"small file, {who}, round {r + 1}/{rounds}"):
                    cpu = _cpu_seconds(pid[who])
                    rps, bad, ok = _small_rps(pool, port, small_path, small_size, clients, seconds)
                    cpu = _cpu_seconds(pid[who]) - cpu
                small[who].append(rps)
                per_cpu[who].append(ok / cpu if cpu > 0 else 0.0)
                errors += bad
            for who, port in order:
                with console.status(f"large file, {who}, round {r + 1}/{rounds}"):
                    large[who].append(large_size / _download(port, large_path, large_size) / 1e6)
    return small, large, per_cpu, errors


def _verify_vs_sha256sum(root: Path, world: _World, rounds: int) -> tuple[float, float]:
    """Median wall times of `farm verify --offline FILE` and `sha256sum FILE`."""
    import httpx

    from farm.consumer.state import evidence_path

    large, large_sha = world.large_file, world.large_sha
    evidence = httpx.get(f"{world.node}/v1/evidence/sha256/{large_sha}", timeout=30)
    evidence.raise_for_status()
    evidence_path(large).write_bytes(evidence.content)
    farm = Path(sys.executable).with_name("farm")
    env = {
        **_clean_env(),
        "FARM_GENESIS": str(root / "ledger" / "genesis.json"),
        "FARM_STATE_DIR": str(root / "consumer-state"),
    }
    argv_verify = [str(farm), "verify", str(large), "--offline"]
    argv_sha = ["sha256sum", str(large)]
    _timed(argv_verify, env)  # warm: compiled modules, trust memory, page cache
    verify_times: list[float] = []
    sha_times: list[float] = []
    for r in range(rounds):
        with console.status(f"farm verify vs sha256sum, round {r + 1}/{rounds}"):
            t, out = _timed(argv_verify, env)
            if "verified" not in out and "✓" not in out:
                raise RuntimeError(f"farm verify did not verify: {out}")
            verify_times.append(t)
            t, out = _timed(argv_sha, env)
            if not out.startswith(large_sha):
                raise RuntimeError(f"sha256sum disagrees: {out}")
            sha_times.append(t)
    return statistics.median(verify_times), statistics.median(sha_times)


def _print(result: dict[str, Any]) -> None:
    table = Table(title="farm bench dist", title_justify="left")
    table.add_column("measure")
    table.add_column("node / farm", justify="right")
    table.add_column("nginx / sha256sum", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        f"{result['small_bytes'] // 1000} KB file, {result['clients']} connections (req/s)",
        f"{result['small_node_rps']:.0f}",
        f"{result['small_nginx_rps']:.0f}",
        f"{result['small_vs_nginx']:.2f}",
    )
    table.add_row(
        "  same, requests per server CPU second",
        f"{result['small_node_req_per_cpu_s']:.0f}",
        f"{result['small_nginx_req_per_cpu_s']:.0f}",
        f"{result['small_node_req_per_cpu_s'] / max(result['small_nginx_req_per_cpu_s'], 1):.2f}",
    )
    table.add_row(
        f"{result['large_bytes'] >> 20} MiB file, sequential downloads (MB/s)",
        f"{result['large_node_MBps']:.0f}",
        f"{result['large_nginx_MBps']:.0f}",
        f"{result['large_vs_nginx']:.2f}",
    )
    table.add_row(
        "verify the large file (s, lower is better)",
        f"{result['verify_s']:.2f}",
        f"{result['sha256sum_s']:.2f}",
        f"{result['verify_vs_sha256sum']:.2f}",
    )
    console.print(table)
    console.print(
        f"medians of {result['rounds']} rounds; {result['cpus']} CPUs, load average "
        f"{result['loadavg_1m']} at the end; {result['http_errors']} failed requests"
    )
    print(json.dumps(result, sort_keys=False))
