"""``farm bench ledger``: submit-to-commit latency and sustained throughput of a ledger.

Starts N real ``farm ledger run`` processes on 127.0.0.1 (a fresh ``farm ledger
testnet`` in a temporary directory), enrolls three builder keys, and submits attest
transactions that are real: each carries three builders' signed DSSE results and the
coordinator's signed SLSA statement (:func:`farm.result.sign_result`,
:func:`farm.attestation.build_bundle`), each for its own build and artifact. They are
all made before any clock starts, in worker processes, so the generator's cost is not
measured.

Two phases:

* light load: one client, one transaction at a time, round-robin over the validators;
  the latency of each ``POST /v1/tx`` (which answers once the transaction is committed,
  with its inclusion proof) gives ``p50_ms`` and ``p99_ms``;
* sustained load: ``clients`` concurrent clients (spread over the validators) for
  ``duration`` seconds; ``tx_per_s`` is what the ledger committed over the measured
  window, read from the validators' log sizes at its start and end, not what the
  clients were told.

The clients speak plain HTTP/1.1 over asyncio streams with keep-alive: a general
purpose client (httpx) costs more CPU per request than the validators do on this
machine, and the bench would measure itself. A short warm-up measures the rate first,
so that enough transactions are made for the whole sustained window.

Prints a table to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from farm.bench.ledger_explain import (
    ProcSample,
    Submit,
    explain_light,
    print_explanation,
    proc_sample,
)
from farm.cluster import free_port_range
from farm.poll import poll

__all__ = ["BenchNet", "HttpConn", "bench_ledger", "make_attest_txs"]

console = Console(stderr=True)
log = logging.getLogger(__name__)

FARM = [sys.executable, "-m", "farm.cli"]
RECIPE = "sha256:" + "ab" * 32
IMAGE = "sha256:" + "cd" * 32
ARCH = "x86_64"

#: Validator settings for a loopback bench: short timeouts (a lost round costs little).
BENCH_ENV = {
    "FARM_LEDGER_TIMEOUT_PROPOSE": "1.0",
    "FARM_LEDGER_TIMEOUT_PREVOTE": "0.5",
    "FARM_LEDGER_TIMEOUT_PRECOMMIT": "0.5",
    "FARM_LEDGER_TIMEOUT_DELTA": "0.25",
    "FARM_LEDGER_STATUS_INTERVAL": "0.5",
    "FARM_LEDGER_SYNC_AFTER": "2.0",
    "FARM_LEDGER_RECONNECT_MAX": "0.5",
    "FARM_LEDGER_COMMIT_WAIT": "60",
}


# ---------------------------------------------------------------------- transactions


def _attest_range(
    coordinator_pem: bytes, builder_pems: Sequence[bytes], start: int, count: int, tag: str
) -> list[bytes]:
    """``count`` distinct attest transactions (builds ``start`` …), in a worker process."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from farm.attestation import build_bundle
    from farm.keys import KeyPair
    from farm.result import BuildPredicate, OutputDigest, sign_result
    from farm.transactions import make_attest

    def key(pem: bytes) -> KeyPair:
        private = load_pem_private_key(pem, password=None)
        assert isinstance(private, Ed25519PrivateKey)
        return KeyPair(private)

    coordinator = key(coordinator_pem)
    builders = [key(p) for p in builder_pems]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(start, start + count):
        build = f"bench-{tag}-{i}"
        artifact = build.encode()
        outputs = (
            OutputDigest(
                name=f"pkg-{i}.whl", sha256=hashlib.sha256(artifact).hexdigest(), size=6_000 + i
            ),
        )
        envelopes = [
            sign_result(
                BuildPredicate(
                    build_id=build,
                    recipe_digest=RECIPE,
                    recipe_name="pkg",
                    recipe_version="1.0",
                    image_digest=IMAGE,
                    arch=ARCH,
                    builder_id=b.keyid,
                    started_at=now,
                    finished_at=now,
                    status="succeeded",
                    exit_code=0,
                    log_sha256=hashlib.sha256(b"log " + artifact).hexdigest(),
                    outputs=outputs,
                ),
                b,
            )
            for b in builders
        ]
        bundle = build_bundle(RECIPE, "pkg", "1.0", ARCH, build, envelopes, coordinator, 3)
        out.append(make_attest(bundle))
    return out


def _pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data


def make_attest_txs(
    coordinator: Any, builders: Sequence[Any], start: int, count: int, tag: str, workers: int
) -> list[bytes]:
    """``count`` distinct, fully signed attest transactions, made by ``workers`` processes.

    ``coordinator`` and ``builders`` are :class:`farm.keys.KeyPair` s.
    """
    if count <= 0:
        return []
    cpem, bpems = _pem(coordinator), [_pem(b) for b in builders]
    workers = max(1, min(workers, count // 200 or 1))
    step = -(-count // workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [
            pool.submit(_attest_range, cpem, bpems, s, min(step, start + count - s), tag)
            for s in range(start, start + count, step)
        ]
        return [tx for f in futures for tx in f.result()]


# ---------------------------------------------------------------------- HTTP client


class HttpError(Exception):
    """A request that did not get a well-formed HTTP answer."""


class HttpConn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body); raises HttpError or OSError."""
        try:
            return await self._request(method, path, body)
        except (OSError, HttpError, asyncio.IncompleteReadError):
            await self.close()
            raise

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/octet-stream\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise HttpError("chunked answers are not expected")
        if length is None:
            raise HttpError("answer without content-length")
        data = await reader.readexactly(length)
        if close:
            await self.close()
        return int(parts[1]), data

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# ---------------------------------------------------------------------- processes


class BenchNet:
    """N validator processes of a fresh testnet in ``root`` (see the module docstring)."""

    def __init__(self, root: Path, n: int, *, profile: Path | None = None) -> None:
        self.root = root
        self.n = n
        self.base_port = free_port_range(2 * n)
        self.env = {**os.environ, **BENCH_ENV}
        self.profile = profile
        self.procs: list[subprocess.Popen[bytes]] = []
        subprocess.run(
            [
                *FARM,
                "ledger",
                "testnet",
                str(n),
                "--dir",
                str(root),
                "--base-port",
                str(self.base_port),
                "--quorum",
                "3",
            ],
            check=True,
            capture_output=True,
            env=self.env,
        )

    def http_port(self, i: int) -> int:
        """Validator ``i``'s HTTP port."""
        return self.base_port + 2 * i + 1

    def start(self) -> None:
        """Start every validator (validator 0 under cProfile if asked)."""
        for i in range(self.n):
            argv = [sys.executable, "-m", "ledger", "run", "--dir", str(self.root / f"v{i}")]
            argv += ["--genesis", str(self.root / "genesis.json"), "--log-level", "WARNING"]
            if i == 0 and self.profile is not None:
                argv[1:3] = ["-m", "cProfile", "-o", str(self.profile), "-m", "ledger"]
            with (self.root / f"v{i}.log").open("ab") as log:
                self.procs.append(
                    subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
                )

    def close(self) -> None:
        """SIGTERM every validator, then SIGKILL those that do not exit."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the validator processes used so far (Linux /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def proc_samples(self) -> list[ProcSample]:
        """Each validator's CPU, run-queue wait and context switches (Linux /proc)."""
        return [proc_sample(p.pid) for p in self.procs]

    def check_alive(self) -> None:
        """Raise if a validator process has exited."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                tail = (self.root / f"v{i}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"validator v{i} exited with {p.returncode}:\n{tail}")


async def _status(conns: Sequence[HttpConn]) -> list[dict[str, Any] | None]:
    async def one(c: HttpConn) -> dict[str, Any] | None:
        await c.close()  # a fresh connection: the server drops idle keep-alive ones
        try:
            code, body = await asyncio.wait_for(c.request("GET", "/v1/status"), 30.0)
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("status of %s:%d: %r", c.host, c.port, exc)
            return None
        value: dict[str, Any] = json.loads(body)
        return value if code == 200 else None

    return list(await asyncio.gather(*(one(c) for c in conns)))


async def _sizes(conns: Sequence[HttpConn]) -> list[int]:
    return [s["size"] if s is not None else -1 for s in await _status(conns)]


# ---------------------------------------------------------------------- phases


async def _submit(conn: HttpConn, tx: bytes) -> bytes:
    """POST one transaction; the answer's body (raises RuntimeError unless 200)."""
    code, body = await conn.request("POST", "/v1/tx", tx)
    if code != 200:
        raise RuntimeError(f"submit refused ({code}): {body[:300]!r}")
    return body


async def _light(net: BenchNet, txs: Sequence[bytes]) -> list[Submit]:
    """One-at-a-time submits, round-robin over the validators (times from
    ``time.monotonic``, the clock the validators' phase times use)."""
    conns = [HttpConn("127.0.0.1", net.http_port(i)) for i in range(net.n)]
    out = []
    try:
        for k, tx in enumerate(txs):
            t0 = time.monotonic()
            body = await _submit(conns[k % net.n], tx)
            t1 = time.monotonic()
            out.append(Submit(k % net.n, t0, t1, int(json.loads(body)["height"])))
    finally:
        for c in conns:
            await c.close()
    return out


async def _metrics(net: BenchNet, since: int = 0) -> list[dict[str, Any] | None]:
    """Every validator's ``GET /v1/metrics`` (None where it does not answer)."""

    async def one(i: int) -> dict[str, Any] | None:
        conn = HttpConn("127.0.0.1", net.http_port(i))
        try:
            code, body = await asyncio.wait_for(
                conn.request("GET", f"/v1/metrics?since={since}"), 30.0
            )
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError):
            return None
        finally:
            await conn.close()
        value: dict[str, Any] = json.loads(body)
        return value if code == 200 else None

    return list(await asyncio.gather(*(one(i) for i in range(net.n))))


def _check_ms_per_tx(genesis: Path, enroll: Sequence[bytes], txs: Sequence[bytes]) -> float:
    """What one validator spends checking one fresh attest transaction (decode, four
    Ed25519 signatures, the bundle's rules), in ms: :meth:`LedgerState.check` in this
    process, on a state holding the bench's enrollments, while the validators idle.

    Every validator checks every transaction once, so ``cpus / (n * this)`` bounds
    the committed rate of n validators sharing this machine even if nothing else
    (transport, consensus, storage, HTTP) cost anything.
    """
    from ledger.genesis import load_genesis
    from ledger.state import LedgerState

    state = LedgerState.from_genesis(load_genesis(genesis))
    state.apply_block(list(enroll))
    t0 = time.process_time()
    for tx in txs:
        reason = state.check(tx)
        if reason is not None:
            raise RuntimeError(f"a bench transaction does not check: {reason}")
    return 1000 * (time.process_time() - t0) / len(txs)


async def _sustained(
    net: BenchNet, txs: list[bytes], clients: int, duration: float, ramp: float
) -> dict[str, Any]:
    """Run ``clients`` submitters until ``ramp + duration`` or the transactions run out;
    committed entries per second over the measured window (after ``ramp``)."""
    pool = iter(txs)
    errors: list[str] = []
    stop = asyncio.Event()
    done = 0
    latencies: list[float] = []

    async def client(i: int) -> None:
        nonlocal done
        conn = HttpConn("127.0.0.1", net.http_port(i % net.n))
        try:
            while not stop.is_set():
                tx = next(pool, None)
                if tx is None:
                    return
                t0 = time.perf_counter()
                try:
                    await _submit(conn, tx)
                except (OSError, HttpError, RuntimeError, asyncio.IncompleteReadError) as exc:
                    if len(errors) < 20:
                        errors.append(str(exc))
                    await asyncio.sleep(0.1)
                    continue
                done += 1
                latencies.append(time.perf_counter() - t0)
        finally:
            await conn.close()

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    try:
        await asyncio.sleep(ramp)
        measured = await _window(net, tasks, duration)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        **measured,
        "answered": done,
        "errors": errors,
        "latency_p50_ms": _pct(latencies, 50) * 1000 if latencies else None,
    }


async def _window(
    net: BenchNet, tasks: Sequence[asyncio.Task[None]], duration: float
) -> dict[str, Any]:
    """Committed entries per second (median over the validators) for ``duration`` s.

    The window runs from before the first probe is sent to after the last answer
    arrives: slow answers under load make the rate lower, never higher.
    """
    probes = [HttpConn("127.0.0.1", net.http_port(i)) for i in range(net.n)]
    try:
        t_start = time.monotonic()
        cpu0, own0 = net.cpu_seconds(), time.process_time()
        start_sizes = await _sizes(probes)
        end = t_start + duration
        exhausted = False
        while time.monotonic() < end:
            await asyncio.sleep(min(0.25, max(0.0, end - time.monotonic())))
            if all(t.done() for t in tasks):
                exhausted = True
                break
        end_sizes = await _sizes(probes)
        window = time.monotonic() - t_start
        cpu, own = net.cpu_seconds() - cpu0, time.process_time() - own0
    finally:
        for c in probes:
            await c.close()
    committed = [e - s for s, e in zip(start_sizes, end_sizes, strict=True) if s >= 0 and e >= 0]
    if not committed:
        raise RuntimeError("no validator answered its status")
    return {
        "tx_per_s": statistics.median(committed) / window,
        "window_s": window,
        "committed": int(statistics.median(committed)),
        "exhausted": exhausted,
        "validator_cpu_s": cpu,
        "client_cpu_s": own,
    }


def _pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of sorted ``values``."""
    k = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


async def _run(
    net: BenchNet,
    validators: int,
    duration: float,
    clients: int,
    light: int,
    workers: int,
) -> dict[str, Any]:
    from farm.keys import generate_key, load_key
    from farm.transactions import make_enroll
    from ledger.genesis import load_genesis

    conns = [HttpConn("127.0.0.1", net.http_port(i)) for i in range(net.n)]

    def connected() -> bool:
        net.check_alive()
        statuses = asyncio.run_coroutine_threadsafe(_status(conns), loop).result()
        return all(s is not None and len(s["peers"]) == net.n - 1 for s in statuses)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(poll, "the validators to connect", connected, 60.0)
    for c in conns:
        await c.close()

    operator = load_key(net.root / "operator.key")
    coordinator = load_key(net.root / "coordinator.key")
    chain = load_genesis(net.root / "genesis.json").chain_id
    builders = [generate_key() for _ in range(3)]
    enroll = [
        make_enroll(
            operator, b.public_dict(), [ARCH], f"bench-host-{i}", domain=f"bench-{i}", chain=chain
        )
        for i, b in enumerate(builders)
    ]
    conn = HttpConn("127.0.0.1", net.http_port(0))
    for tx in enroll:
        await _submit(conn, tx)
    await conn.close()

    console.print(f"[bold]making {light + 2_000} attest transactions…")
    first = await asyncio.to_thread(
        make_attest_txs, coordinator, builders, 0, light + 2_000, "a", workers
    )
    light_txs, warm_txs = first[:light], first[light:]

    warmed = await _light(net, light_txs[:10])  # connections, caches, first blocks
    metrics0, procs0, own0 = await _metrics(net), net.proc_samples(), time.process_time()
    submits = await _light(net, light_txs[10:])
    own1, procs1 = time.process_time(), net.proc_samples()
    metrics1 = await _metrics(net, since=warmed[-1].height)
    net.check_alive()
    lat = sorted(s.answered - s.sent for s in submits)
    console.print(f"light load: p50 {_pct(lat, 50) * 1000:.1f} ms over {len(lat)} submits")
    cpus = os.cpu_count() or 1
    explained = explain_light(submits, metrics0, metrics1, procs0, procs1, own1 - own0, cpus)
    print_explanation(console, validators, cpus, explained)

    check_ms = _check_ms_per_tx(net.root / "genesis.json", enroll, warm_txs[:400])
    ceiling = cpus * 1000 / (validators * check_ms)
    console.print(
        f"checking one attest tx: {check_ms:.3f} ms CPU; {validators} validators on {cpus} "
        f"CPUs cannot commit more than {ceiling:.0f} tx/s even if nothing else cost anything"
    )

    warm = await _sustained(net, warm_txs, clients, 4.0, 1.0)
    net.check_alive()
    rate = max(warm["tx_per_s"], 300.0)
    # The warm-up rate is rough (short, and this machine may be busy with other work):
    # make well over what the window can take, so the pool does not run dry in it.
    need = int(rate * 2.5 * (duration + 5)) + 4 * clients
    console.print(
        f"warm-up: {rate:.0f} tx/s; making {need} attest transactions for {duration:g} s…"
    )
    t0 = time.monotonic()
    more = await asyncio.to_thread(make_attest_txs, coordinator, builders, 0, need, "b", workers)
    console.print(f"made them in {time.monotonic() - t0:.1f} s")
    sustained = await _sustained(net, more, clients, duration, 3.0)
    net.check_alive()
    if sustained["exhausted"]:
        console.print(
            f"[bold red]the transactions ran out after {sustained['window_s']:.1f} s; "
            "the rate is over that shorter window"
        )
    return {
        "n": validators,
        "p50_ms": round(_pct(lat, 50) * 1000, 2),
        "p99_ms": round(_pct(lat, 99) * 1000, 2),
        "tx_per_s": round(sustained["tx_per_s"], 1),
        "light_submits": len(lat),
        "light_mean_ms": round(statistics.fmean(lat) * 1000, 2),
        "light_max_ms": round(lat[-1] * 1000, 2),
        "clients": clients,
        "window_s": round(sustained["window_s"], 2),
        "committed_in_window": sustained["committed"],
        "sustained_p50_ms": None
        if sustained["latency_p50_ms"] is None
        else round(sustained["latency_p50_ms"], 1),
        "pool_exhausted": sustained["exhausted"],
        "errors": len(sustained["errors"]),
        "tx_bytes": len(more[0]) if more else len(first[0]),
        "validator_cpu_pct": round(100 * sustained["validator_cpu_s"] / sustained["window_s"], 1),
        "client_cpu_pct": round(100 * sustained["client_cpu_s"] / sustained["window_s"], 1),
        "validator_cpu_ms_per_tx": round(
            1000 * sustained["validator_cpu_s"] / max(1, sustained["committed"]), 3
        ),
        "cpus": cpus,
        "check_ms_per_tx": round(check_ms, 3),
        "validation_ceiling_tx_per_s": round(ceiling, 1),
        "light": explained,
    }


def bench_ledger(
    validators: Annotated[int, typer.Option("--validators", "-n", help="Validator processes.")] = 4,
    duration: Annotated[
        float, typer.Option(help="Seconds of sustained load that are measured.")
    ] = 30.0,
    clients: Annotated[int, typer.Option(help="Concurrent submitters under sustained load.")] = 512,
    light: Annotated[int, typer.Option(help="Submits, one at a time, under light load.")] = 300,
    workers: Annotated[
        int, typer.Option(help="Processes making transactions (before timing).")
    ] = 2,
    keep: Annotated[
        Path | None, typer.Option(help="Make the testnet here and keep it (logs, stores).")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="Run validator v0 under cProfile, writing here.")
    ] = None,
) -> None:
    """N validators on loopback: submit-to-commit latency and committed tx/s."""
    if validators < 1 or light < 20 or clients < 1 or duration <= 0:
        raise typer.BadParameter("need validators >= 1, light >= 20, clients >= 1, duration > 0")
    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-bench-")))
        else:
            keep.mkdir(parents=True, exist_ok=False)
            root = keep
        net = BenchNet(root / "net", validators, profile=profile)
        try:
            net.start()
            result = asyncio.run(_run(net, validators, duration, clients, light, workers))
        finally:
            net.close()
    _print(result)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _print(result: dict[str, Any]) -> None:
    table = Table(title=f"farm bench ledger: {result['n']} validators")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("light load: submits, one at a time", f"{result['light_submits']}"),
        ("  submit → commit p50", f"{result['p50_ms']:.1f} ms"),
        ("  submit → commit p99", f"{result['p99_ms']:.1f} ms"),
        ("  submit → commit max", f"{result['light_max_ms']:.1f} ms"),
        ("sustained: clients", f"{result['clients']}"),
        ("  measured window", f"{result['window_s']:.1f} s"),
        ("  committed in the window", f"{result['committed_in_window']}"),
        ("  committed tx/s", f"{result['tx_per_s']:.1f}"),
        ("  client-side p50 under load", f"{result['sustained_p50_ms']} ms"),
        ("  transaction pool ran out", f"{result['pool_exhausted']}"),
        ("  failed submits", f"{result['errors']}"),
        ("  validators' CPU (all processes)", f"{result['validator_cpu_pct']} %"),
        ("  bench client's CPU", f"{result['client_cpu_pct']} %"),
        ("  validator CPU per committed tx", f"{result['validator_cpu_ms_per_tx']} ms"),
        ("checking one attest tx (one validator)", f"{result['check_ms_per_tx']} ms"),
        ("  ceiling: CPUs / (n x that)", f"{result['validation_ceiling_tx_per_s']} tx/s"),
        ("attest transaction size", f"{result['tx_bytes']} bytes"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
