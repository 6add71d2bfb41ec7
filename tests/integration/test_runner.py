"""The hermetic runner against a real Docker Engine, with hostile builds.

Builds run in a tiny image made here from Debian's busybox-static (``/bin/busybox``
and its applets, a passwd with uid 1000, ``/src /out /deps /tmp``), imported once per
session and reused. Nothing is pulled.
"""

from __future__ import annotations

import _thread
import hashlib
import io
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

import builders.runner as runner_mod
from builders.errors import OutputError, SandboxError
from builders.outputs import collect_outputs
from builders.runner import RunOutcome, RunSpec, remove_stale, run_hermetic
from farm.errors import ImageError
from farm.recipe import Limits, Output

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

IMAGE_TAG = "farm-test-busybox:runner-1"
BUSYBOX = Path("/bin/busybox")
FAST = Limits(
    timeout=20,
    cpus=1,
    memory="256MiB",
    pids=64,
    output_size="1MiB",
    log_size="64KiB",
    scratch_size="16MiB",
)


def _rootfs_tar() -> bytes:
    """A rootfs with busybox, its applets, a passwd with uid 1000 and the farm dirs."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buf = io.BytesIO()

    def add(
        name: str,
        *,
        data: bytes | None = None,
        mode: int = 0o755,
        kind: bytes = tarfile.DIRTYPE,
        link: str = "",
    ) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 0
        if data is not None:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "src", "out", "deps", "proc", "sys", "dev"):
            add(d)
        add("tmp", mode=0o1777)
        add("bin/busybox", data=BUSYBOX.read_bytes(), kind=tarfile.REGTYPE)
        for applet in sorted(set(applets) - {"busybox"}):
            add(f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000::/tmp/home:/bin/sh\n"
        add("etc/passwd", data=passwd, mode=0o644, kind=tarfile.REGTYPE)
        add("etc/group", data=b"root:x:0:\nbuild:x:1000:\n", mode=0o644, kind=tarfile.REGTYPE)
    return buf.getvalue()


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env()
    c.ping()
    yield c
    c.close()


@pytest.fixture(scope="session")
def image(client: docker.DockerClient) -> str:
    """The busybox test image's ID, imported once and reused."""
    try:
        return str(client.images.get(IMAGE_TAG).id)
    except docker.errors.ImageNotFound:
        pass
    assert BUSYBOX.is_file(), "needs Debian's busybox-static (/bin/busybox)"
    repo, tag = IMAGE_TAG.split(":")
    client.api.import_image_from_data(_rootfs_tar(), repository=repo, tag=tag)
    return str(client.images.get(IMAGE_TAG).id)


@pytest.fixture
def labels(client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """Labels unique to the test; afterwards no container may carry them."""
    mine = {"farm.build-id": uuid.uuid4().hex, "farm.builder-id": "test-runner"}
    yield mine
    left = client.containers.list(
        all=True, filters={"label": [f"{k}={v}" for k, v in mine.items()]}
    )
    assert left == [], f"containers left behind: {[c.short_id for c in left]}"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "input.txt").write_text("hello from the source\n")
    return src


def spec_for(
    image: str, source: Path, labels: Mapping[str, str], script: str, **overrides: Any
) -> RunSpec:
    fields: dict[str, Any] = {
        "image": image,
        "script": script,
        "workdir": "/src",
        "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "0"},
        "source_dir": source,
        "deps_dir": None,
        "limits": FAST,
        "arch": "amd64",
        "labels": labels,
    }
    fields.update(overrides)
    return RunSpec(**fields)


@pytest.fixture
def run(
    client: docker.DockerClient, image: str, source: Path, labels: dict[str, str], tmp_path: Path
) -> Any:
    def _run(script: str, **overrides: Any) -> RunOutcome:
        spec = spec_for(image, source, labels, script, **overrides)
        return run_hermetic(client, spec, tmp_path / f"work-{uuid.uuid4().hex[:8]}")

    return _run


def text(outcome: RunOutcome) -> str:
    return outcome.log.decode("utf-8", "replace")


# --- a normal build ---------------------------------------------------------------


def test_normal_build_outputs_are_collected(run: Any) -> None:
    outcome = run(
        """
        mkdir -p /out/dist
        tr a-z A-Z < input.txt > /out/dist/hello.txt
        echo "$HOME" > "$HOME/where"; cat "$HOME/where"
        cp /bin/busybox /tmp/true && /tmp/true   # scratch is writable and executable
        printf 'abc' > /out/dist/abc.bin
        echo built
        """
    )
    assert outcome.exit_code == 0, text(outcome)
    assert not (outcome.timed_out or outcome.oom_killed or outcome.output_exceeded)
    assert "built" in text(outcome) and "/tmp/home" in text(outcome)
    collected = collect_outputs(outcome.output_dir, [Output(path="dist/*")], max_total=1 << 20)
    assert [(c.name, c.size) for c in collected] == [("dist/abc.bin", 3), ("dist/hello.txt", 22)]
    assert collected[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (outcome.output_dir / "dist/hello.txt").read_text() == "HELLO FROM THE SOURCE\n"
    assert outcome.started_at <= outcome.finished_at


def test_exit_status_is_reported_faithfully(run: Any) -> None:
    outcome = run("echo partial > /out/f; echo failing >&2; exit 7")
    assert outcome.exit_code == 7
    assert not outcome.timed_out
    assert "failing" in text(outcome)
    assert list(outcome.output_dir.iterdir()) == []  # a failed build yields no outputs


# --- hostile builds ----------------------------------------------------------------


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on every host address; the build must not reach it."""
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def test_network_is_unreachable(run: Any, host_listener: int) -> None:
    port = host_listener
    outcome = run(
        f"""
        ip -o link | sed 's/^/LINK /'
        for target in 127.0.0.1:{port} 172.17.0.1:{port} 151.101.0.223:443 1.1.1.1:53; do
            if nc -w 3 "${{target%:*}}" "${{target#*:}}" </dev/null; then echo "OPEN $target"; fi
        done
        ip route | sed 's/^/ROUTE /'
        """
    )
    log = text(outcome)
    assert outcome.exit_code == 0, log
    assert "OPEN" not in log
    links = [line for line in log.splitlines() if line.startswith("LINK")]
    assert len(links) == 1 and "lo:" in links[0], links  # loopback only
    assert "ROUTE" not in log  # and no route anywhere
    assert log.count("Network is unreachable") == 3, log


@pytest.mark.parametrize("path", ["/src/input.txt", "/src/new", "/evil", "/etc/passwd", "/deps/x"])
def test_writes_outside_out_fail(run: Any, tmp_path: Path, path: str) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    outcome = run(f"echo pwned > {path}", deps_dir=deps)
    assert outcome.exit_code != 0
    assert "Read-only file system" in text(outcome)
    assert not (deps / "x").exists()
    assert (tmp_path / "src/input.txt").read_text() == "hello from the source\n"


def test_fork_bomb_is_contained(run: Any) -> None:
    limits = FAST.model_copy(update={"pids": 32, "timeout": 8})
    before = len(list(Path("/proc").iterdir()))
    t0 = time.monotonic()
    outcome = run("bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", limits=limits)
    assert time.monotonic() - t0 < 30
    log = text(outcome)
    assert "can't fork" in log or "Resource temporarily unavailable" in log, log
    assert outcome.timed_out or outcome.exit_code is not None
    assert len(list(Path("/proc").iterdir())) < before + 50  # nothing escaped onto the host


def test_leftover_processes_are_killed_and_outputs_kept(run: Any) -> None:
    limits = FAST.model_copy(update={"pids": 32})
    outcome = run(
        "bomb() { bomb | bomb & }; bomb; sleep 1000 & echo ok > /out/f; echo main exits",
        limits=limits,
    )
    assert outcome.exit_code == 0 and not outcome.timed_out
    (got,) = collect_outputs(outcome.output_dir, [Output(path="f")], max_total=1 << 20)
    assert got.size == 3


def test_endless_loop_times_out(run: Any) -> None:
    t0 = time.monotonic()
    outcome = run(
        "echo spinning; while :; do :; done", limits=FAST.model_copy(update={"timeout": 2})
    )
    took = time.monotonic() - t0
    assert outcome.timed_out and outcome.exit_code is None
    assert "spinning" in text(outcome)
    assert 2 <= took < 15
    assert list(outcome.output_dir.iterdir()) == []


def test_symlink_to_host_file_is_refused(run: Any) -> None:
    outcome = run("ln -s /etc/passwd /out/passwd; mkdir /out/d; ln -s ../passwd /out/d/p")
    assert outcome.exit_code == 0, text(outcome)
    link = outcome.output_dir / "passwd"
    assert link.is_symlink() and str(link.readlink()) == "/etc/passwd"  # kept, never followed
    with pytest.raises(OutputError, match=r"passwd: is a symlink to '/etc/passwd'"):
        collect_outputs(outcome.output_dir, [Output(path="passwd")], max_total=1 << 20)
    with pytest.raises(OutputError, match="symlink"):
        collect_outputs(outcome.output_dir, [Output(path="d")], max_total=1 << 20)


def test_links_and_fifos_made_in_out(run: Any) -> None:
    outcome = run(
        "echo a > /out/a; ln /out/a /out/b; mkfifo /out/p; mkdir /out/d; ln -s /out/a /out/d/abs"
    )
    assert outcome.exit_code == 0, text(outcome)
    got = collect_outputs(outcome.output_dir, [Output(path="[ab]")], max_total=1 << 20)
    assert [g.name for g in got] == ["a", "b"] and got[0].sha256 == got[1].sha256
    with pytest.raises(OutputError, match="p: is a FIFO"):
        collect_outputs(outcome.output_dir, [Output(path="p")], max_total=1 << 20)
    with pytest.raises(OutputError, match="d/abs: is a symlink to '/out/a'"):
        collect_outputs(outcome.output_dir, [Output(path="d/*")], max_total=1 << 20)


def test_output_over_the_limit_fills_out_and_is_flagged(run: Any) -> None:
    small = FAST.model_copy(update={"output_size": 64 * 1024})
    outcome = run("dd if=/dev/zero of=/out/big bs=1024 count=4096", limits=small)
    assert outcome.exit_code != 0 and outcome.output_exceeded
    assert "No space left on device" in text(outcome)
    # a build that ignores the failure is still caught, and nothing is copied out
    outcome = run("dd if=/dev/zero of=/out/big bs=1024 count=4096 || true", limits=small)
    assert outcome.exit_code == 0 and outcome.output_exceeded
    assert list(outcome.output_dir.iterdir()) == []


@pytest.mark.parametrize(("size", "exceeded"), [(65536, False), (65537, True)])
def test_output_limit_boundary(run: Any, size: int, exceeded: bool) -> None:
    small = FAST.model_copy(update={"output_size": 65536})
    outcome = run(f"head -c {size} /dev/zero > /out/big", limits=small)
    assert outcome.exit_code == 0 and outcome.output_exceeded is exceeded
    if not exceeded:
        (out,) = collect_outputs(outcome.output_dir, [Output(path="big")], max_total=65536)
        assert out.size == 65536


def test_memory_limit_kills_the_hog(run: Any) -> None:
    limits = FAST.model_copy(update={"memory": 32 * 2**20, "scratch_size": 256 * 2**20})
    outcome = run("dd if=/dev/zero of=/tmp/fill bs=1M count=200", limits=limits)
    assert outcome.exit_code != 0
    assert outcome.oom_killed, text(outcome)


# --- the environment of the build ----------------------------------------------------


def test_environment_is_fixed(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_TEST_HOST_SECRET", "leaked-xyzzy")
    outcome = run("env | sort", env={"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"})
    log = text(outcome)
    assert "xyzzy" not in log and "FARM_TEST_HOST_SECRET" not in log
    env = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == "/tmp/home"
    assert env["LANG"] == "C.UTF-8"
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["HOSTNAME"] == "farm-build"
    allowed = {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "SOURCE_DATE_EPOCH",
        "HOSTNAME",
        "PWD",
        "SHLVL",
        "FARM_SRC",
        "FARM_OUT",
        "FARM_DEPS",
    }
    assert set(env) <= allowed, set(env) - allowed


def test_reserved_env_is_refused(
    client: docker.DockerClient, image: str, source: Path, labels: dict[str, str], tmp_path: Path
) -> None:
    spec = spec_for(image, source, labels, "true", env={"HOME": "/root"})
    with pytest.raises(SandboxError, match="HOME"):
        run_hermetic(client, spec, tmp_path / "w")


def test_runs_unprivileged(run: Any) -> None:
    outcome = run("id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status")
    lines = text(outcome).split()
    assert lines[:2] == ["1000", "1000"]
    status = dict(zip(lines[2::2], lines[3::2], strict=True))
    assert status["CapEff:"] == status["CapPrm:"] == status["CapBnd:"] == "0000000000000000"
    assert status["NoNewPrivs:"] == "1"


def test_limits_are_applied(run: Any) -> None:
    """Read the limits back from inside: cgroup v1 or v2 files, and the mount table."""
    files = [
        "pids/pids.max", "pids.max",
        "memory/memory.limit_in_bytes", "memory.max",
        "memory/memory.memsw.limit_in_bytes", "memory.swap.max",
        "cpu/cpu.cfs_quota_us", "cpu.max",
    ]  # fmt: skip
    probes = [
        f'[ -e /sys/fs/cgroup/{f} ] && echo "CG {f} $(cat /sys/fs/cgroup/{f})"' for f in files
    ]
    probes.append("grep -E ' (/|/src|/out|/tmp) ' /proc/mounts | sed 's/^/MNT /'")
    probes.append("echo CORE $(ulimit -c)")
    outcome = run("\n".join(p + " || true" for p in probes))
    log = text(outcome)
    assert outcome.exit_code == 0, log
    tagged = [line.split(" ", 1) for line in log.splitlines()]
    found = dict(rest.split(" ", 1) for tag, rest in tagged if tag == "CG")
    mem = str(FAST.memory)
    if "memory.max" in found:  # cgroup v2
        assert found["pids.max"] == "64" and found["memory.max"] == mem
        assert found["memory.swap.max"] == "0" and found["cpu.max"].startswith("100000 ")
    else:
        assert found["pids/pids.max"] == "64"
        assert found["memory/memory.limit_in_bytes"] == mem
        assert found.get("memory/memory.memsw.limit_in_bytes", mem) == mem  # no swap
        assert found["cpu/cpu.cfs_quota_us"] == "100000"  # 1 cpu of a 100ms period
    mounts = {rest.split()[1]: rest.split()[3].split(",") for tag, rest in tagged if tag == "MNT"}
    assert "ro" in mounts["/"] and "ro" in mounts["/src"]
    assert "rw" in mounts["/out"] and "size=1028k" in mounts["/out"]  # 1 MiB + one page
    assert "size=16384k" in mounts["/tmp"]
    assert ["CORE", "0"] in tagged  # no core dumps


def test_log_is_truncated_at_log_size(run: Any) -> None:
    limits = FAST.model_copy(update={"log_size": 1000})
    outcome = run(
        "echo first >&2; i=0; while [ $i -lt 500 ]; do echo 0123456789; i=$((i+1)); done",
        limits=limits,
    )
    assert outcome.exit_code == 0
    assert len(outcome.log) == 1000 and outcome.log_truncated
    assert outcome.log == (b"first\n" + b"0123456789\n" * 91)[:1000]  # in order
    assert outcome.log_sha256 == hashlib.sha256(outcome.log).hexdigest()
    full = run("echo short")
    assert full.log == b"short\n" and not full.log_truncated


# --- images, cleanup -------------------------------------------------------------------


@pytest.mark.parametrize("ref", [IMAGE_TAG, "busybox:latest", "sha256:" + "0" * 64])
def test_image_must_be_a_local_id(
    client: docker.DockerClient, source: Path, labels: dict[str, str], tmp_path: Path, ref: str
) -> None:
    with pytest.raises(ImageError):
        run_hermetic(client, spec_for(ref, source, labels, "true"), tmp_path / "w")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("busybox:latest")  # and nothing was pulled


def test_wrong_arch_is_refused(
    client: docker.DockerClient, image: str, source: Path, labels: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ImageError, match="not arm64"):
        run_hermetic(client, spec_for(image, source, labels, "true", arch="arm64"), tmp_path / "w")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_container_removed_on_interrupt(
    run: Any, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    def boom(*_: object) -> None:
        raise exc("interrupted")

    monkeypatch.setattr(runner_mod, "_settle", boom)
    with pytest.raises(exc):
        run("echo hi")
    # the labels fixture asserts that no container is left


def test_container_removed_on_real_sigint(run: Any) -> None:
    timer = threading.Timer(1.5, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run("echo started; sleep 30")
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10


def test_remove_stale(client: docker.DockerClient, image: str, labels: dict[str, str]) -> None:
    for _ in range(2):
        client.containers.create(image, ["sleep", "60"], labels=labels, network_mode="none")
    other = client.containers.create(image, ["true"], labels={"farm.build-id": "someone-else"})
    try:
        assert remove_stale(client, labels) == 2
        assert remove_stale(client, labels) == 0
        other.reload()  # untouched
    finally:
        other.remove(force=True)
    with pytest.raises(SandboxError):
        remove_stale(client, {})


def test_work_dir_must_start_empty(
    run: Any,
    tmp_path: Path,
    client: docker.DockerClient,
    image: str,
    source: Path,
    labels: dict[str, str],
) -> None:
    work = tmp_path / "w"
    (work / "out").mkdir(parents=True)
    (work / "out" / "stale").write_text("x")
    with pytest.raises(SandboxError, match="not empty"):
        run_hermetic(client, spec_for(image, source, labels, "true"), work)
    shutil.rmtree(work)
