"""Run one build command in a hermetic container, through the Docker Engine API.

The container, and what it guarantees:

* the image is named by its ID (``sha256:<64 hex>``) and must already be on this host;
  nothing is ever pulled;
* no network (``network_mode="none"``), a read-only root file system, every capability
  dropped, ``no-new-privileges``, no log driver;
* the source is bind-mounted read-only at ``/src``, dependencies read-only at ``/deps``;
  ``/tmp`` is a tmpfs of ``scratch_size`` (``HOME=/tmp/home``); ``/out`` is a tmpfs of
  ``output_size`` and the only other writable place. Nothing the build writes reaches
  the host's disk except what is copied out of ``/out``, bounded, after the build;
* CPU, memory (swap equal to memory, so none), process count and wall-clock time are
  limited; tmpfs pages count against the memory limit too;
* the environment is the recipe's plus fixed values (:data:`FIXED_ENV`); nothing of
  the host's environment is passed (the image's own ``ENV`` lines, which its digest
  pins, still apply);
* the build runs as uid/gid 1000 as ``/bin/sh -euc SCRIPT``.

Variation (:mod:`builders.variation`; builders and ``farm recipe check``): a
:class:`RunSpec` may set another hostname and domain name, a starting umask, a CPU count
(cpuset), environment under the recipe's (``LANG``) and a clock offset (libfaketime, only
if the image carries it). None of them overrides what the recipe sets (its env, its
limits, its own umask).

How it runs: the container's main process is Docker's init (tini) keeping a ``sleep``
alive, as uid 65534 so that the build (uid 1000) cannot signal it; tini also reaps the
build's orphans so their process slots come back. The build is an ``exec`` of
``/bin/sh -euc SCRIPT`` with stderr joined to stdout (so the log keeps their order),
streamed into a buffer that keeps the first ``log_size`` bytes; Docker reports its
exit status. When it ends, every process the build left behind is killed (an exec'd
``kill -9 -1`` as uid 1000 reaches the build's processes only), ``df`` says whether
``/out`` filled up, the Engine's ``oom`` events say whether the kernel killed anything
for memory, and — for a build that exited 0 — ``/out`` is streamed out by an exec'd
``tar`` (tmpfs mounts are invisible to ``docker cp``/``get_archive``) into a bounded
reader and unpacked on the host, never writing through a link or outside the output
directory. Symlinks, hard links within ``/out`` and FIFOs are recreated as they are
(never followed) so that :func:`builders.outputs.collect_outputs` can refuse them by
name.

The output limit is enforced while the build runs: ``/out`` is a tmpfs of
``output_size`` plus one 4 KiB page, so a write past the limit fails with ``ENOSPC``
inside the container (the build sees "No space left on device") and the host's disk
is never touched. ``output_exceeded`` is set when less than a page is left, which for
a page-aligned limit means more than ``output_size`` bytes were written. tmpfs counts
whole pages, so many small files reach the limit sooner than their byte count says.

The image therefore needs ``/bin/sh``, ``sleep``, ``kill``, ``df`` and ``tar``; any
Debian or busybox image has them.

The container is removed in every case: success, failure, timeout, a Docker error, and
``KeyboardInterrupt``. It carries the caller's labels, so a later attempt can remove
what an interrupted one left behind (:func:`remove_stale`); its keeper also exits by
itself a few minutes after the build's deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import re
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, cast

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import LogConfig, Mount, Ulimit

from builders.arch import docker_platform
from builders.errors import EngineError, OutputError, SandboxError
from farm.errors import ImageError
from farm.recipe import RESERVED_ENV, Limits

__all__ = [
    "BUILD_USER",
    "FIXED_ENV",
    "HERMETIC_LABEL",
    "RunOutcome",
    "RunSpec",
    "engine_answers",
    "remove_stale",
    "run_hermetic",
]

logger = logging.getLogger(__name__)

#: The user every build command runs as.
BUILD_USER = "1000:1000"
#: The user of the container's keeper process; the build cannot signal it.
_KEEPER_USER = "65534:65534"
#: Set on every container this module makes, besides the caller's labels.
HERMETIC_LABEL = "farm.hermetic"
#: Environment the runner sets; a recipe may not set these names.
FIXED_ENV: Mapping[str, str] = {
    "HOME": "/tmp/home",  # noqa: S108 - inside the container
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "FARM_SRC": "/src",
    "FARM_OUT": "/out",
    "FARM_DEPS": "/deps",
}
#: Environment defaults a recipe may override.
_DEFAULT_ENV: Mapping[str, str] = {"LANG": "C.UTF-8"}
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_PAGE = 4096
_POLL = 0.2
#: Seconds the keeper outlives the build's deadline if this process dies.
_KEEPER_SLACK = 300
#: After the build exits: kill what it left behind, then report /out's free space.
_SETTLE_SCRIPT = "kill -9 -1 2>/dev/null; kill -9 -1 2>/dev/null; df -P -k /out | tail -n 1"
#: Runs ``/bin/sh -euc SCRIPT`` with stderr joined to stdout, so the log keeps their order.
_BUILD_WRAPPER = 'exec /bin/sh -euc "$1" 2>&1'
#: Prints the image's libfaketime, if it has one.
_FIND_FAKETIME = (
    'for f in /usr/lib/*/faketime/libfaketime.so.1; do [ -f "$f" ] && echo "$f" && exit 0; done; '
    "exit 1"
)
_DockerFailure = (docker.errors.DockerException, requests.exceptions.RequestException)


@dataclass(frozen=True)
class RunSpec:
    """What to run, in what, with which limits."""

    image: str
    """Image ID, ``sha256:<64 hex>``; anything else is refused."""
    script: str
    """Shell script, run as ``["/bin/sh", "-euc", script]``."""
    workdir: str
    env: Mapping[str, str]
    """The recipe's environment; must not set a name in :data:`FIXED_ENV`."""
    source_dir: Path
    """Host directory mounted read-only at ``/src``."""
    deps_dir: Path | None
    """Host directory mounted read-only at ``/deps``, if any."""
    limits: Limits
    arch: str
    """Debian architecture name, e.g. ``amd64``."""
    labels: Mapping[str, str]
    """Container labels, e.g. ``farm.build-id``; :func:`remove_stale` finds containers by them."""
    # Variation of what a recipe leaves open (builders.variation.Variation); the
    # defaults are a run without variation. None of them overrides the recipe.
    hostname: str = "farm-build"
    """The container's hostname."""
    domainname: str = ""
    """The container's NIS domain name; empty: none."""
    varied_env: Mapping[str, str] = field(default_factory=dict)
    """Environment the variation sets (``LANG``); the recipe's :attr:`env` wins over it."""
    umask: int | None = None
    """The umask the build command starts with; ``None`` keeps Docker's exec default, 022.
    A command that sets its own umask overrides it."""
    time_offset_s: int = 0
    """Seconds added to the build's wall clock, through libfaketime (``LD_PRELOAD``) when the
    image has ``/usr/lib/*/faketime/libfaketime.so.1`` and the recipe's env sets neither
    ``LD_PRELOAD`` nor ``FAKETIME``; otherwise not applied (:attr:`RunOutcome.clock_offset_s`)."""
    cpus: float | None = None
    """Confine the build to the first ``ceil(cpus)`` CPUs of the host (what ``nproc`` sees),
    with a quota of at most ``cpus``; ``None``: every CPU, the recipe's quota."""


@dataclass(frozen=True)
class RunOutcome:
    """What happened. A failed build is an outcome; only a sandbox failure raises."""

    exit_code: int | None
    """The build command's exit status; ``None`` when it was killed by the timeout."""
    timed_out: bool
    oom_killed: bool
    """A process of the build was killed for exceeding the memory limit."""
    output_exceeded: bool
    """``/out`` filled up: the build wrote more than ``output_size`` (counted in 4 KiB pages)."""
    started_at: datetime
    finished_at: datetime
    log: bytes
    """stdout and stderr interleaved, at most ``log_size`` bytes (the first ones)."""
    log_truncated: bool
    log_sha256: str
    """sha256 hex of :attr:`log`."""
    output_dir: Path
    """Host directory holding what the build left in ``/out``; empty unless it succeeded."""
    clock_offset_s: int = 0
    """The wall-clock shift actually applied (0 when the image has no libfaketime)."""
    cpus: int = 0
    """How many CPUs the build could see (its cpuset, or every CPU of this host)."""
    host_cpus: int = 0
    """How many CPUs this process may use on this host."""


class _LogSink:
    """Keeps the first ``limit`` bytes of a stream, drains (and counts) the rest."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._total = 0
        self._lock = threading.Lock()
        self.done = threading.Event()

    def drain(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                with self._lock:
                    room = self._limit - len(self._buf)
                    if room > 0:
                        self._buf += chunk[:room]
                    self._total += len(chunk)
        except Exception as exc:  # the stream breaks when the container is removed
            logger.debug("build log stream ended: %s", exc)
        finally:
            self.done.set()

    def snapshot(self) -> tuple[bytes, bool]:
        with self._lock:
            return bytes(self._buf), self._total > len(self._buf)


def _require_image(client: docker.DockerClient, image: str, arch: str) -> None:
    if not _IMAGE_ID.match(image):
        raise ImageError(f"image must be named by its ID, sha256:<64 hex>; got {image!r}")
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"image {image} is not on this host; farm never pulls, load the pinned image first"
        ) from None
    except _DockerFailure as exc:
        raise EngineError(f"cannot inspect image {image}: {exc}") from None
    if found.id != image:
        raise ImageError(f"image {image} resolved to {found.id}")
    want = docker_platform(arch).split("/")[1]
    have = found.attrs.get("Architecture")
    if have != want:
        raise ImageError(f"image {image} is for {have}, not {arch} ({want})")


def _environment(env: Mapping[str, str], varied: Mapping[str, str]) -> dict[str, str]:
    """The build's environment: defaults, then the variation's, then the recipe's (which
    wins over both), then :data:`FIXED_ENV`."""
    reserved = set(FIXED_ENV) | RESERVED_ENV
    clash = sorted(set(env) & reserved)
    if clash:
        raise SandboxError(f"the runner sets {', '.join(clash)} itself; a recipe may not")
    clash = sorted(set(varied) & reserved)
    if clash:
        raise SandboxError(f"the runner sets {', '.join(clash)} itself; a variation may not")
    return {**_DEFAULT_ENV, **varied, **env, **FIXED_ENV}


def _out_tmpfs(limits: Limits) -> tuple[int, int]:
    """Size (bytes, whole pages) and inode count of the /out tmpfs."""
    size = -(-limits.output_size // _PAGE) * _PAGE + _PAGE
    return size, size // _PAGE + 1024


def _cpu_quota(spec: RunSpec) -> tuple[float, str | None]:
    """The CPU quota and, under a CPU-count variation, the cpuset (``"0"``, ``"0,1"``)."""
    cpus = min(spec.limits.cpus, float(os.cpu_count() or 1))
    if spec.cpus is None:
        return cpus, None
    host = sorted(os.sched_getaffinity(0))
    n = _visible_cpus(spec)
    return min(cpus, spec.cpus, float(n)), ",".join(str(c) for c in host[:n])


def _visible_cpus(spec: RunSpec) -> int:
    """How many CPUs the build sees: ``ceil(spec.cpus)`` of this host's, or all of them."""
    host = len(os.sched_getaffinity(0))
    return host if spec.cpus is None else max(1, min(host, math.ceil(spec.cpus)))


def _clock_env(container: Container, spec: RunSpec) -> dict[str, str]:
    """The environment that shifts the build's clock by ``spec.time_offset_s``, if it can."""
    if spec.time_offset_s == 0 or {"LD_PRELOAD", "FAKETIME"} & set(spec.env):
        return {}
    code, out, _ = _exec(container, ["/bin/sh", "-c", _FIND_FAKETIME])
    lib = out.decode("utf-8", "replace").strip()
    if code != 0 or not lib.startswith("/"):
        return {}
    return {
        "LD_PRELOAD": lib,
        "FAKETIME": f"{spec.time_offset_s:+d}",  # no suffix: seconds
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # timeouts and sleeps keep real time
    }


def _create(client: docker.DockerClient, spec: RunSpec) -> Container:
    limits = spec.limits
    out_size, out_inodes = _out_tmpfs(limits)
    mounts = [Mount("/src", str(spec.source_dir.resolve()), type="bind", read_only=True)]
    if spec.deps_dir is not None:
        mounts.append(Mount("/deps", str(spec.deps_dir.resolve()), type="bind", read_only=True))
    cpus, cpuset = _cpu_quota(spec)
    return client.containers.create(
        image=spec.image,
        command=["sleep", str(limits.timeout + _KEEPER_SLACK)],
        init=True,
        user=_KEEPER_USER,
        environment=_environment(spec.env, spec.varied_env),
        hostname=spec.hostname,
        domainname=spec.domainname or None,
        working_dir="/",
        labels={**spec.labels, HERMETIC_LABEL: "1"},
        platform=docker_platform(spec.arch),
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        nano_cpus=int(cpus * 1e9),
        cpuset_cpus=cpuset,
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        pids_limit=limits.pids,
        ulimits=[Ulimit(name="core", soft=0, hard=0)],
        tmpfs={
            "/tmp": f"rw,exec,nosuid,nodev,size={limits.scratch_size},mode=1777",  # noqa: S108
            "/out": (
                f"rw,exec,nosuid,nodev,size={out_size},nr_inodes={out_inodes},"
                "uid=1000,gid=1000,mode=0755"
            ),
        },
        mounts=mounts,
        log_config=LogConfig(type="none"),
        stdin_open=False,
        tty=False,
    )


def _remove(container: Container, *, quiet: bool) -> None:
    """Remove the container, retrying briefly; raise SandboxError unless ``quiet``."""
    last: Exception | None = None
    for attempt in range(5):
        try:
            container.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except _DockerFailure as exc:
            last = exc
            time.sleep(0.2 * (attempt + 1))
    message = f"could not remove build container {container.id}: {last}"
    if quiet:
        logger.error("%s", message)
    else:
        raise EngineError(message)


@contextlib.contextmanager
def _sandbox(client: docker.DockerClient, spec: RunSpec) -> Iterator[Container]:
    """A started build container that is removed however the block is left."""
    container: Container | None = None
    try:
        try:
            container = _create(client, spec)
            container.start()
            yield container
        except _DockerFailure as exc:
            raise EngineError(f"build container failed: {exc}") from None
    except BaseException:
        # already failing (KeyboardInterrupt included): remove, but keep the first error
        if container is not None:
            _remove(container, quiet=True)
        raise
    if container is not None:
        _remove(container, quiet=False)


def _kill(container: Container) -> None:
    with contextlib.suppress(docker.errors.APIError):  # not running any more
        container.kill()


def _exec(container: Container, cmd: list[str]) -> tuple[int | None, bytes, bytes]:
    result = container.exec_run(cmd, user=BUILD_USER, workdir="/", demux=True)
    out, err = cast(tuple[bytes | None, bytes | None], result.output)
    return result.exit_code, out or b"", err or b""


def _settle(container: Container) -> int | None:
    """Kill what the build left running; return the bytes still free in /out.

    Returns ``None`` if the container is gone or cannot run a command any more: a
    build that keeps every process slot taken, or whose tmpfs pages fill the memory
    limit so that any new process is OOM-killed.
    """
    deadline = time.monotonic() + 3
    while True:
        try:
            code, out, err = _exec(container, ["/bin/sh", "-c", _SETTLE_SCRIPT])
            if code == 0:
                break
            logger.debug("settling the build container: exit %s, %r", code, err[:200])
            if code == 128 + 9:  # SIGKILLed, and kill -1 spares its caller: out of memory
                return None
        except _DockerFailure as exc:
            logger.debug("settling the build container: %s", exc)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    for line in out.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[-1] == "/out" and fields[3].isdigit():
            return int(fields[3]) * 1024
    raise SandboxError(f"cannot tell how full /out is; df printed {out[:200]!r}")


def _oom_kills(container: Container, since: float) -> int:
    """How many processes of the container the kernel killed for memory, since ``since``."""
    # the stubs say int; the Engine takes "seconds.fraction", which needs no waiting
    api: Any = container.client.api  # type: ignore[union-attr]
    events = api.events(
        since=f"{since - 1:.3f}",
        until=f"{time.time():.3f}",
        filters={"container": container.id, "event": "oom"},
        decode=True,
    )
    return sum(1 for _ in events)


class _ChunkReader(io.RawIOBase):
    """A readable file over a stream of chunks, refusing more than ``limit`` bytes."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._pending = b""
        self._limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.total += len(chunk)
            if self.total > self._limit:
                raise OutputError(f"/out holds more than the limit of {self._limit} bytes")
            self._pending = chunk
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _member_name(raw: str) -> str | None:
    path = PurePosixPath(raw)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts:
        raise OutputError(f"/out member {raw!r} escapes the output directory")
    return "/".join(parts) or None


def _safe_parent(dest: Path, name: str) -> Path:
    """The host path for ``name``, after checking every parent is a real directory in ``dest``."""
    parent = dest
    for part in name.split("/")[:-1]:
        parent = parent / part
        if not parent.is_dir() or parent.is_symlink():
            raise OutputError(f"/out/{name}: a parent is not a directory")
    return parent / name.rsplit("/", maxsplit=1)[-1]


def _unpack(tar: tarfile.TarFile, dest: Path) -> None:
    """Recreate the tar's entries under ``dest``, never writing through or outside it."""
    for member in tar:
        name = _member_name(member.name)
        if name is None:
            continue
        target = _safe_parent(dest, name)
        if member.isdir():
            target.mkdir(mode=0o755)
        elif member.isreg():
            src = tar.extractfile(member)
            mode = 0o755 if member.mode & 0o111 else 0o644
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            if src is None:
                raise OutputError(f"/out/{name}: unreadable in the copy of /out")
            with src, os.fdopen(os.open(target, flags, mode), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        elif member.issym():
            target.symlink_to(member.linkname)  # kept as is, never followed
        elif member.islnk():
            link = _member_name(member.linkname)
            source = _safe_parent(dest, link) if link else None
            if source is None or source.is_symlink() or not source.is_file():
                raise OutputError(f"/out/{name}: hard link to {member.linkname!r} refused")
            target.hardlink_to(source)
        elif member.isfifo():
            os.mkfifo(target, 0o644)
        else:
            raise OutputError(f"/out/{name}: a device file; refused")


def _copy_out(container: Container, dest: Path, limits: Limits) -> None:
    """Stream /out out of the running container with an exec'd tar; unpack into ``dest``."""
    out_size, out_inodes = _out_tmpfs(limits)
    # content, plus a header and padding per entry, plus long names
    bound = out_size + out_inodes * 3 * 512 + 10 * 512
    api = container.client.api  # type: ignore[union-attr]
    exec_id = api.exec_create(
        container.id, ["tar", "-C", "/out", "-cf", "-", "."], user=BUILD_USER, workdir="/"
    )["Id"]
    stream = api.exec_start(exec_id, stream=True, demux=True)
    errors = bytearray()

    def stdout() -> Iterator[bytes]:
        for out, err in stream:
            if err and len(errors) < 4096:
                errors.extend(err)
            if out:
                yield out

    reader = _ChunkReader(stdout(), bound)
    try:
        with tarfile.open(fileobj=io.BufferedReader(reader), mode="r|") as tar:
            _unpack(tar, dest)
        for _ in stdout():  # drain, so the exit status is final
            pass
    except (tarfile.TarError, OSError) as exc:
        said = bytes(errors).decode("utf-8", "replace")
        raise OutputError(f"could not copy /out: {exc}; tar said: {said!r}") from None
    code = _exec_status(api, exec_id)
    if code != 0:
        said = bytes(errors).decode("utf-8", "replace")
        raise OutputError(f"could not copy /out (tar exit status {code}): {said!r}")


def _exec_status(api: Any, exec_id: str, wait: float = 5) -> int | None:
    """The exit status of a finished exec; its stream may close before Docker records it."""
    deadline = time.monotonic() + wait
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _wait(api: Any, exec_id: str, sink: _LogSink, deadline: float) -> int | None:
    """Wait for the build exec to end; its exit status, or ``None`` at the deadline."""
    unstarted_since: float | None = None
    begun = time.monotonic()
    while True:
        now = time.monotonic()
        # poll often at first (short builds), then about once a second
        interval = max(0.0, min(1.0, _POLL + (now - begun) / 30, deadline - now))
        if sink.done.is_set():
            time.sleep(min(interval, 0.05))  # output closed: the status follows shortly
        else:
            sink.done.wait(interval)
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            if info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            # not running and no status: not started yet, or it never will
            unstarted_since = unstarted_since or time.monotonic()
            if sink.done.is_set() and time.monotonic() - unstarted_since > 5:
                log, _ = sink.snapshot()
                raise SandboxError(f"the build command did not start: {log[:500]!r}")
        if time.monotonic() >= deadline:
            return None


def _run_build(container: Container, spec: RunSpec, output_dir: Path) -> RunOutcome:
    api = container.client.api  # type: ignore[union-attr]
    created = time.time()
    umask = "" if spec.umask is None else f"umask {spec.umask:04o}; "
    code, _, err = _exec(container, ["/bin/sh", "-c", umask + 'mkdir -p "$HOME"'])
    if code != 0:
        raise SandboxError(f"image {spec.image} cannot run /bin/sh as uid 1000: {err!r}")
    clock = _clock_env(container, spec)
    exec_id = api.exec_create(
        container.id,
        ["/bin/sh", "-c", umask + _BUILD_WRAPPER, "sh", spec.script],
        environment=clock or None,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        user=BUILD_USER,
        workdir=spec.workdir,
    )["Id"]
    sink = _LogSink(spec.limits.log_size)
    started_at = datetime.now(UTC)
    deadline = time.monotonic() + spec.limits.timeout
    stream = api.exec_start(exec_id, stream=True, demux=False)
    reader = threading.Thread(target=sink.drain, args=(stream,), name="build-log", daemon=True)
    reader.start()

    exit_code = _wait(api, exec_id, sink, deadline)
    timed_out = exit_code is None
    finished_at = datetime.now(UTC)

    free: int | None = None
    if timed_out:
        _kill(container)
    else:
        reader.join(0.5)
        free = _settle(container)
    container.reload()
    oom_killed = bool(container.attrs.get("State", {}).get("OOMKilled")) or bool(
        _oom_kills(container, created)
    )
    if not oom_killed and (exit_code == 128 + 9 or free is None):
        time.sleep(0.3)  # SIGKILLed: the Engine's oom event may trail the exit a little
        oom_killed = bool(_oom_kills(container, created))
    output_exceeded = free is not None and free < _PAGE
    if exit_code == 0 and free is not None and not output_exceeded:
        _copy_out(container, output_dir, spec.limits)
    elif exit_code == 0 and free is None and not oom_killed:
        raise SandboxError("the build exited but its container could not be reached to copy /out")
    if not timed_out:
        _kill(container)  # ends a log stream still held open by a killed build's leftovers
    reader.join(5)
    log, truncated = sink.snapshot()
    return RunOutcome(
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=oom_killed,
        output_exceeded=output_exceeded,
        started_at=started_at,
        finished_at=finished_at,
        log=log,
        log_truncated=truncated,
        log_sha256=hashlib.sha256(log).hexdigest(),
        output_dir=output_dir,
        clock_offset_s=spec.time_offset_s if clock else 0,
        cpus=_visible_cpus(spec),
        host_cpus=len(os.sched_getaffinity(0)),
    )


def run_hermetic(client: docker.DockerClient, spec: RunSpec, work_dir: Path) -> RunOutcome:
    """Run ``spec`` in a fresh hermetic container; its ``/out`` ends up in ``work_dir/out``.

    Returns an outcome for every build that ran, however it ended (non-zero exit,
    timeout, out of memory, ``/out`` full). Raises :class:`ImageError` if the image is
    not named by ID, absent, or for another architecture; :class:`SandboxError` if the
    container cannot be created, run or removed; :class:`OutputError` if ``/out``
    cannot be copied out safely. The container is gone when this returns or raises.
    """
    _require_image(client, spec.image, spec.arch)
    _environment(spec.env, spec.varied_env)
    if not spec.source_dir.is_dir():
        raise SandboxError(f"source directory {spec.source_dir} does not exist")
    if spec.deps_dir is not None and not spec.deps_dir.is_dir():
        raise SandboxError(f"dependency directory {spec.deps_dir} does not exist")
    output_dir = work_dir / "out"
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise SandboxError(f"output directory {output_dir} is not empty")
    with _sandbox(client, spec) as container:
        try:
            return _run_build(container, spec, output_dir)
        except _DockerFailure as exc:
            raise EngineError(f"build container {container.short_id} failed: {exc}") from None


def engine_answers(client: docker.DockerClient, within: float = 0.0, pause: float = 1.0) -> bool:
    """Whether this host's Docker Engine answers a ping, asking again every ``pause``
    seconds for up to ``within`` seconds (0: once). Never raises."""
    deadline = time.monotonic() + within
    while True:
        try:
            if client.ping():
                return True
        except _DockerFailure as exc:
            logger.debug("the Docker Engine does not answer: %s", exc)
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)


def remove_stale(client: docker.DockerClient, labels: Mapping[str, str]) -> int:
    """Remove every container (running or not) carrying all of ``labels``; return how many.

    ``labels`` must not be empty: that would match every container on the host.
    """
    if not labels:
        raise SandboxError("remove_stale needs at least one label to match")
    filters: dict[str, str | list[str] | bool] = {
        "label": [f"{k}={v}" for k, v in sorted(labels.items())]
    }
    try:
        found = client.containers.list(all=True, filters=filters)
    except _DockerFailure as exc:
        raise EngineError(f"cannot list containers: {exc}") from None
    for container in found:
        _remove(container, quiet=False)
    return len(found)
