"""The distribution node as real processes: 4 ``farm ledger run`` validators, a real
``farm serve`` coordinator whose staging store holds the bytes, and ``farm dist serve``.

Attest transactions are made here with real keys (three builders enrolled on the
ledger by the genesis operator), submitted to a validator, committed; the node follows,
mirrors from the coordinator and serves. Checked: bytes with Range/HEAD/ETag, 404 for
anything uncommitted, the evidence verifies against the genesis alone, the PEP 503/691
index, revocation (410 and gone from the index), a restart that downloads nothing
again, a lying validator refused, every route read-only, and the command's errors.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.distribution.catalog import entries_of_attest
from api.errors import ErrorBody
from farm.attestation import AttestationBundle, build_bundle, verify_bundle
from farm.checkpoint import signature_threshold, verify_checkpoint
from farm.cluster import free_port
from farm.coordinator.staging import Staging
from farm.evidence import ArtifactEvidence, PackageRelease
from farm.keys import KeyPair, generate_key, public_key_from_dict
from farm.merkle import hash_leaf, verify_inclusion
from farm.result import BuildPredicate, OutputDigest, sign_result
from farm.transactions import EnrollTx, decode_tx, make_attest, make_enroll, make_revoke
from ledger.genesis import Genesis, load_genesis
from ledger.verify import AbsenceProof, commitment_of, verify_absent
from tests.integration.openapi_checks import assert_one_error_body
from tests.support.ledger_testnet import LedgerTestnet

T = TypeVar("T")
FARM = [sys.executable, "-m", "farm.cli"]
RECIPE = "sha256:" + "1" * 64
IMAGE = "sha256:" + "2" * 64


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A restartable subprocess with a log file, ready when ``ready_url`` answers 200."""

    argv: list[str]
    log_path: Path
    ready_url: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def up() -> bool:
            assert proc.poll() is None, self.log()
            try:
                return httpx.get(self.ready_url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(f"{self.argv[3:5]} to serve", up, timeout)
        except BaseException:
            self.stop()  # never leave a process behind a failed start
            raise

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def coordinator_proc(root: Path) -> tuple[Proc, Path]:
    """A real ``farm serve`` (no scheduler) and its staging directory."""
    port = free_port()
    staging = root / "staging"
    argv = [
        *FARM, "serve", "--db", f"sqlite:///{root / 'coordinator.db'}", "--port", str(port),
        "--staging", str(staging), "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    url = f"http://127.0.0.1:{port}"
    return Proc(argv, root / "coordinator.log", url + "/v1/builders", env), staging


def dist_proc(
    root: Path, genesis: Path, ledger: list[str], coordinator: str, name: str = "dist"
) -> Proc:
    """A ``farm dist serve`` process on a free port with its data in ``root/name``."""
    port = free_port()
    argv = [
        *FARM, "dist", "serve", "--genesis", str(genesis), "--ledger", ",".join(ledger),
        "--coordinator", coordinator, "--data", str(root / name), "--port", str(port),
        "--poll-interval", "0.2", "--log-level", "info",
    ]  # fmt: skip
    return Proc(argv, root / f"{name}.log", f"http://127.0.0.1:{port}/v1/status")


def base(p: Proc) -> str:
    return p.ready_url.removesuffix("/v1/status")


# --------------------------------------------------------------------------- the world


def wheel_bytes(name: str, version: str, body: str = "") -> bytes:
    """A small but installable pure-Python wheel (deterministic bytes)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n{body}',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256="
        + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        + f",{len(text.encode())}\n"
        for path, text in files.items()
    )
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for path, text in files.items():
            z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
    return out.getvalue()


@dataclass
class World:
    """Validators, a coordinator with a staging store, three enrolled builders."""

    root: Path
    net: LedgerTestnet
    genesis: Genesis
    coordinator: Proc
    staging: Staging
    builders: list[KeyPair]
    submitted: int = 0

    @property
    def coordinator_url(self) -> str:
        return self.coordinator.ready_url.removesuffix("/v1/builders")

    @property
    def ledger_urls(self) -> list[str]:
        return [self.net.url(i) for i in range(self.net.n)]

    def submit(self, tx: bytes) -> dict[str, Any]:
        response = self.net.submit(self.submitted % self.net.n, tx)
        self.submitted += 1
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def attest(
        self,
        name: str,
        version: str,
        files: dict[str, bytes],
        *,
        stage: bool = True,
        arch: str = "amd64",
    ) -> dict[str, Any]:
        """Commit an attestation of ``files`` (output name → bytes) built for ``arch``;
        stage the bytes."""
        now = datetime(2026, 1, 1, tzinfo=UTC)
        build = f"build-{name}-{version}-{self.submitted}"
        outputs = tuple(
            OutputDigest(name=n, sha256=hashlib.sha256(b).hexdigest(), size=len(b))
            for n, b in sorted(files.items())
        )
        envelopes = [
            sign_result(
                BuildPredicate(
                    build_id=build, recipe_digest=RECIPE, recipe_name=name,
                    recipe_version=version, image_digest=IMAGE, arch=arch,
                    builder_id=b.keyid, started_at=now, finished_at=now, status="succeeded",
                    exit_code=0, log_sha256="0" * 64, outputs=outputs,
                ),
                b,
            )
            for b in self.builders
        ]  # fmt: skip
        coordinator = self.net.coordinator
        bundle = build_bundle(RECIPE, name, version, arch, build, envelopes, coordinator, 3)
        if stage:
            for data in files.values():
                self.staging.put(hashlib.sha256(data).hexdigest(), data)
        return self.submit(make_attest(bundle))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("dist")
    net = LedgerTestnet(root / "ledger", 4)
    coordinator, staging_dir = coordinator_proc(root)
    try:
        net.start_all()
        coordinator.start()
        builders = [generate_key() for _ in range(3)]
        w = World(root, net, load_genesis(net.genesis), coordinator, Staging(staging_dir), builders)
        for i, b in enumerate(builders):
            w.submit(
                make_enroll(
                    net.operator,
                    b.public_dict(),
                    ["amd64", "arm64"],
                    f"host{i}",
                    domain=f"host{i}",
                    chain=net.chain_id,
                )
            )
        yield w
    finally:
        coordinator.stop()
        net.close()


@pytest.fixture(scope="module")
def dist(world: World) -> Iterator[Proc]:
    down = f"http://127.0.0.1:{free_port()}"  # a validator that is down does not matter
    p = dist_proc(world.root, world.net.genesis, [down, *world.ledger_urls], world.coordinator_url)
    p.start()
    try:
        yield p
    finally:
        p.stop()


def served(node: Proc, sha: str, timeout: float = 30.0) -> httpx.Response:
    """Wait until the node serves ``sha``; return the 200 response."""

    def probe() -> httpx.Response | None:
        r = httpx.get(f"{base(node)}/artifacts/sha256/{sha}", timeout=10)
        return r if r.status_code == 200 else None

    return wait_for(f"the node to serve sha256:{sha[:12]}", probe, timeout)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- tests


def test_bytes_with_range_head_etag_and_404(world: World, dist: Proc) -> None:
    data = os.urandom(3 * (1 << 20) + 12345)  # larger than one chunk
    digest = sha(data)
    world.attest("blobby", "1.0", {"blobby.bin": data})
    r = served(dist, digest)
    url = f"{base(dist)}/artifacts/sha256/{digest}"
    assert r.content == data
    assert r.headers["etag"] == f'"{digest}"'
    assert "immutable" in r.headers["cache-control"]
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["accept-ranges"] == "bytes"

    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))

    part = httpx.get(url, headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = httpx.get(url, headers={"range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == data[-7:]
    rest = httpx.get(url, headers={"range": f"bytes={len(data) - 3}-"})
    assert rest.status_code == 206 and rest.content == data[-3:]
    beyond = httpx.get(url, headers={"range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    several = httpx.get(url, headers={"range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and len(several.content) == len(data)
    stale = httpx.get(url, headers={"range": "bytes=0-1", "if-range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == len(data)
    cached = httpx.get(url, headers={"if-none-match": f'"{digest}"'})
    assert cached.status_code == 304 and cached.content == b""

    named = httpx.get(f"{url}/blobby.bin")
    assert named.status_code == 200 and named.content == data
    assert httpx.get(f"{url}/other.bin").status_code == 404

    # Staged but never attested: not served. Attested but never staged: not served either.
    loose = os.urandom(1000)
    world.staging.put(sha(loose), loose)
    nowhere = httpx.get(f"{base(dist)}/artifacts/sha256/{sha(loose)}")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{base(dist)}/artifacts/sha256/nothex").status_code == 404


def test_mirror_retries_and_never_serves_wrong_bytes(world: World, dist: Proc) -> None:
    # Attested before the coordinator has the bytes: 404 until they are staged.
    late = os.urandom(1000)
    world.attest("late", "1.0", {"late.bin": late}, stage=False)
    wait_for("a failed mirror attempt", lambda: "is not in the coordinator's staging" in dist.log())
    assert httpx.get(f"{base(dist)}/artifacts/sha256/{sha(late)}").status_code == 404
    world.staging.put(sha(late), late)
    assert served(dist, sha(late), 60).content == late
    # The coordinator's copy is not what was attested: refused, never served.
    good = os.urandom(4000)
    target = world.staging.path_for(sha(good))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    world.attest("tampered", "1.0", {"t.bin": good}, stage=False)
    wait_for(
        "the refusal of the tampered blob",
        lambda: f"bytes for sha256:{sha(good)[:12]}" in dist.log(),
    )
    assert httpx.get(f"{base(dist)}/artifacts/sha256/{sha(good)}").status_code == 404
    longer = good + b"more"
    target.chmod(0o644)
    target.write_bytes(longer)
    wait_for("the refusal of the longer blob", lambda: "more than the 4000 bytes" in dist.log())
    assert httpx.get(f"{base(dist)}/artifacts/sha256/{sha(good)}").status_code == 404
    target.write_bytes(good)
    assert served(dist, sha(good), 60).content == good


def _verify_proof(proof: Any, cp_root: bytes) -> bytes:
    entry = base64.b64decode(proof.entry)
    path = [bytes.fromhex(h) for h in proof.inclusion_proof]
    verify_inclusion(hash_leaf(entry), proof.index, proof.tree_size, path, cp_root)
    return entry


def test_release_and_evidence_verify_against_the_genesis_alone(world: World, dist: Proc) -> None:
    whl = wheel_bytes("evident", "2.0")
    filename = "evident-2.0-py3-none-any.whl"
    world.attest("evident", "2.0", {filename: whl})
    served(dist, sha(whl))
    r = httpx.get(f"{base(dist)}/v1/packages/Evident/2.0")
    assert r.status_code == 200, r.text
    release = PackageRelease.model_validate(r.json())
    g = world.genesis
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    cp = verify_checkpoint(release.checkpoint, known, signature_threshold(g.n), g.chain_id)
    assert cp.size == release.tree_size
    (ev,) = release.artifacts
    assert ev.artifact.filename == filename and ev.artifact.sha256 == sha(whl)
    assert ev.artifact.size == len(whl) and ev.artifact.arch == "amd64"
    assert ev.genesis_hash == g.hash and ev.checkpoint == release.checkpoint
    attest = decode_tx(_verify_proof(ev.attestation, cp.root_hash))
    assert attest.type == "attest"
    assert attest.bundle == AttestationBundle.model_validate(ev.bundle)
    # The builders' keys come from enroll entries proven in the same tree.
    keys = {}
    for keyid, proof in ev.enrollments.items():
        enroll = decode_tx(_verify_proof(proof, cp.root_hash))
        assert isinstance(enroll, EnrollTx)
        key = public_key_from_dict(enroll.key)
        assert key.keyid == keyid
        keys[keyid] = key
    assert set(keys) == {b.keyid for b in world.builders}
    verified = verify_bundle(attest.bundle, keys, g.coordinator_keys(), g.quorum)
    assert sha(whl) in verified.artifact_digests()
    # Not revoked: proven against the revoked set the checkpoint commits to.
    assert ev.artifact.revoked is None and ev.not_revoked is not None
    count, root = commitment_of(cp)
    verify_absent(sha(whl), count, root, AbsenceProof.from_json(ev.not_revoked.model_dump()))

    one = httpx.get(f"{base(dist)}/v1/evidence/sha256/{sha(whl)}")
    assert one.status_code == 200
    assert ArtifactEvidence.model_validate(one.json()).attestation.index == ev.attestation.index
    assert httpx.get(f"{base(dist)}/v1/evidence/sha256/{'0' * 64}").status_code == 404
    assert httpx.get(f"{base(dist)}/v1/packages/evident/9.9").status_code == 404


def test_python_index_pep503_and_pep691(world: World, dist: Proc) -> None:
    whl = wheel_bytes("Index_Me", "1.0")
    filename = "Index_Me-1.0-py3-none-any.whl"
    world.attest("Index_Me", "1.0", {filename: whl, "notes.txt": b"not a distribution"})
    served(dist, sha(whl))
    root = httpx.get(f"{base(dist)}/simple/")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert '<a href="/simple/index-me/">index-me</a>' in root.text
    page = httpx.get(f"{base(dist)}/simple/index-me/")
    link = f"/artifacts/sha256/{sha(whl)}/{filename}#sha256={sha(whl)}"
    assert f'<a href="{link}">{filename}</a>' in page.text
    assert "notes.txt" not in page.text
    assert page.headers["vary"] == "Accept"

    pip_accept = (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
        "text/html; q=0.01"
    )
    js = httpx.get(f"{base(dist)}/simple/index-me/", headers={"accept": pip_accept})
    assert js.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    body = js.json()
    assert body["name"] == "index-me" and body["versions"] == ["1.0"]
    assert body["files"] == [
        {
            "filename": filename,
            "url": f"/artifacts/sha256/{sha(whl)}/{filename}",
            "hashes": {"sha256": sha(whl)},
            "size": len(whl),
        }
    ]
    assert body["meta"]["api-version"].startswith("1.")
    by_param = httpx.get(
        f"{base(dist)}/simple/", params={"format": "application/vnd.pypi.simple.v1+json"}
    )
    assert {"name": "index-me"} in by_param.json()["projects"]
    v1html = httpx.get(
        f"{base(dist)}/simple/", headers={"accept": "application/vnd.pypi.simple.v1+html"}
    )
    assert v1html.headers["content-type"].startswith("application/vnd.pypi.simple.v1+html")
    assert httpx.get(f"{base(dist)}/simple/", headers={"accept": "image/png"}).status_code == 406
    moved = httpx.get(f"{base(dist)}/simple/Index_Me/")
    assert moved.status_code == 301 and moved.headers["location"] == "/simple/index-me/"
    assert httpx.get(f"{base(dist)}/simple/nothing-here/").status_code == 404


def test_a_pure_wheel_attested_on_two_architectures_is_served_for_each(
    world: World, dist: Proc, tmp_path: Path
) -> None:
    """One file, two attestations (amd64 and arm64 agreed on the same bytes): the index
    lists it once, the release offers it for each architecture with that architecture's
    attestation, and ``farm pull --arch arm64`` verifies it (ADR 42)."""
    whl = wheel_bytes("everywhere", "1.0")
    filename = "everywhere-1.0-py3-none-any.whl"
    world.attest("everywhere", "1.0", {filename: whl}, arch="amd64")
    world.attest("everywhere", "1.0", {filename: whl}, arch="arm64")
    served(dist, sha(whl))

    def both() -> PackageRelease | None:
        r = httpx.get(f"{base(dist)}/v1/packages/everywhere/1.0")
        if r.status_code != 200:
            return None
        release = PackageRelease.model_validate(r.json())
        return release if len(release.artifacts) == 2 else None

    release = wait_for("both architectures' attestations", both)
    assert [(a.artifact.arch, a.artifact.sha256) for a in release.artifacts] == [
        ("amd64", sha(whl)),
        ("arm64", sha(whl)),
    ]
    # Each architecture its own attestation, each naming its architecture.
    assert len({a.attestation.index for a in release.artifacts}) == 2
    for a in release.artifacts:
        entry = base64.b64decode(a.attestation.entry)
        (offered,) = entries_of_attest(entry, a.attestation.index)
        assert offered.arch == a.artifact.arch
    page = httpx.get(
        f"{base(dist)}/simple/everywhere/",
        headers={"accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    assert [f["filename"] for f in page["files"]] == [filename]

    pulled = subprocess.run(
        [sys.executable, "-m", "farm.cli", "pull", "everywhere==1.0", "--arch", "arm64",
         "--node", base(dist), "--genesis", str(world.net.genesis), "--dest", str(tmp_path),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (tmp_path / filename).read_bytes() == whl
    assert "arm64" in pulled.stdout


def test_revoked_artifact_answers_410_and_leaves_the_index(world: World, dist: Proc) -> None:
    whl = wheel_bytes("revokable", "1.0")
    filename = "revokable-1.0-py3-none-any.whl"
    keeper = wheel_bytes("keeper", "1.0")
    world.attest("revokable", "1.0", {filename: whl})
    world.attest("keeper", "1.0", {"keeper-1.0-py3-none-any.whl": keeper})
    served(dist, sha(whl))
    served(dist, sha(keeper))
    assert "revokable" in httpx.get(f"{base(dist)}/simple/").text
    world.submit(
        make_revoke(
            world.net.operator, sha(whl), "CVE-2026-0001: backdoored", chain=world.net.chain_id
        )
    )

    def gone() -> httpx.Response | None:
        r = httpx.get(f"{base(dist)}/artifacts/sha256/{sha(whl)}/{filename}")
        return r if r.status_code == 410 else None

    r = wait_for("410", gone)
    assert "CVE-2026-0001: backdoored" in r.json()["error"]["message"]
    assert "revokable" not in httpx.get(f"{base(dist)}/simple/").text
    assert httpx.get(f"{base(dist)}/simple/revokable/").status_code == 404

    def evidence() -> dict[str, Any] | None:
        e = httpx.get(f"{base(dist)}/v1/evidence/sha256/{sha(whl)}")
        return e.json() if e.status_code == 200 else None

    ev = ArtifactEvidence.model_validate(wait_for("revocation evidence", evidence))
    assert ev.artifact.revoked is not None
    assert ev.artifact.revoked.reason == "CVE-2026-0001: backdoored"
    g = world.genesis
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    cp = verify_checkpoint(ev.checkpoint, known, signature_threshold(g.n), g.chain_id)
    revoke = decode_tx(_verify_proof(ev.artifact.revoked.proof, cp.root_hash))
    assert revoke.type == "revoke" and revoke.artifact == sha(whl)
    assert ev.not_revoked is None
    # The checkpoint commits to a revoked set holding it; the other artifact is proven
    # absent from the set of a checkpoint at least as large.
    count, _ = commitment_of(cp)
    assert count >= 1
    other = httpx.get(f"{base(dist)}/v1/evidence/sha256/{sha(keeper)}")
    kept = ArtifactEvidence.model_validate(other.json())
    assert kept.artifact.revoked is None and kept.not_revoked is not None
    kept_cp = verify_checkpoint(kept.checkpoint, known, signature_threshold(g.n), g.chain_id)
    assert kept_cp.size >= cp.size
    kept_count, kept_root = commitment_of(kept_cp)
    proof = AbsenceProof.from_json(kept.not_revoked.model_dump())
    verify_absent(sha(keeper), kept_count, kept_root, proof)
    assert proof.count == kept_count >= count


def test_restart_resumes_without_downloading_again(world: World, tmp_path: Path) -> None:
    node = dist_proc(world.root, world.net.genesis, world.ledger_urls, world.coordinator_url, "r")
    node.start()
    try:
        data = os.urandom(200_000)
        world.attest("restartable", "1.0", {"restartable.bin": data})
        served(node, sha(data))
        # The earlier tests' artifacts too (mirrored concurrently): counted after restart.
        status = wait_for(
            "the mirror to catch up",
            lambda: (s := httpx.get(node.ready_url).json())["mirror_pending"] == 0 and s,
        )
        blob = world.root / "r" / "blobs" / "sha256" / sha(data)[:2] / sha(data)
        before = blob.stat()
        assert node.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
        first_log = node.log()
        assert "Application shutdown complete" in first_log
        assert "mirrored sha256:" in first_log
        # Back up with the coordinator stopped: whatever it serves cannot be downloaded now.
        world.coordinator.stop()
        try:
            node.start()
            again = httpx.get(f"{base(node)}/artifacts/sha256/{sha(data)}")
            assert again.status_code == 200 and again.content == data
            after = httpx.get(node.ready_url).json()
            assert after["height"] >= status["height"]
            assert after["artifacts"] == status["artifacts"]
            assert after["mirror_pending"] == 0
        finally:
            world.coordinator.start()
        later = node.log()[len(first_log) :]
        assert f"resuming at height {status['height']}" in later or "resuming at height" in later
        assert "mirrored sha256:" not in later
        assert blob.stat().st_ino == before.st_ino and blob.stat().st_mtime == before.st_mtime
    finally:
        node.stop()


# --------------------------------------------------------------------------- lying validator


class LyingValidator:
    """A real HTTP server in a thread that relays a real validator but lies: it serves
    its blocks with one transaction's bytes altered (and the root recomputed), or with a
    forged certificate, and a checkpoint whose signatures are not the validators'."""

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream = upstream
        self.mode = mode
        self.port = free_port()
        app = FastAPI()

        @app.get("/v1/blocks")
        def blocks(request: Request) -> JSONResponse:
            real = httpx.get(f"{upstream}/v1/blocks", params=dict(request.query_params)).json()
            self.tamper(real["blocks"])
            return JSONResponse(real)

        @app.get("/v1/checkpoint")
        def checkpoint() -> JSONResponse:
            real = httpx.get(f"{upstream}/v1/checkpoint").json()
            text, _, sigs = real["note"].partition("\n\n")
            forged = "".join(
                line[:-8] + ("A" if line[-8] != "A" else "B") + line[-7:] + "\n"
                for line in sigs.splitlines()
            )
            return JSONResponse({"size": real["size"], "note": text + "\n\n" + forged})

        @app.get("/v1/status")
        def status() -> JSONResponse:
            return JSONResponse(httpx.get(f"{upstream}/v1/status").json())

        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tamper(self, items: list[dict[str, Any]]) -> None:
        if self.mode == "skip" and items:
            del items[0]  # a gap: the next block does not follow ours
        for item in items:
            self.tamper_one(item)

    def tamper_one(self, item: dict[str, Any]) -> None:
        block, cert = item["block"], item["certificate"]
        if self.mode == "certificate":
            for s in cert["signatures"]:
                s["signature"] = ("00" if s["signature"][:2] != "00" else "11") + s["signature"][2:]
        elif self.mode == "block":
            block["log_root"] = "ab" * 32

    def __enter__(self) -> LyingValidator:
        self.thread.start()
        wait_for("the lying validator", lambda: self.server.started, 10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


REFUSALS = {
    "certificate": "bad precommit signature",
    "block": "certificate is for block",
    "skip": "wanted 1",
}


@pytest.mark.parametrize("mode", sorted(REFUSALS))
def test_a_lying_validator_is_refused(world: World, mode: str) -> None:
    data = os.urandom(5000)
    world.attest(f"lied-{mode}", "1.0", {"lied.bin": data})
    with LyingValidator(world.net.url(0), mode) as liar:
        # Only the liar: nothing is accepted, and the node says why.
        alone = dist_proc(
            world.root, world.net.genesis, [liar.url], world.coordinator_url, f"liar-{mode}"
        )
        alone.start()
        try:
            status = wait_for(
                "the refusal",
                lambda: (s := httpx.get(alone.ready_url).json())["validators_refused"] and s,
            )
            why = status["validators_refused"][liar.url]
            assert REFUSALS[mode] in why, why
            assert status["height"] == 0 and status["artifacts"] == 0
            assert httpx.get(f"{base(alone)}/artifacts/sha256/{sha(data)}").status_code == 404
        finally:
            alone.stop()
        # The liar first, then an honest validator: the node follows the honest one.
        both = dist_proc(
            world.root,
            world.net.genesis,
            [liar.url, world.net.url(1)],
            world.coordinator_url,
            f"both-{mode}",
        )
        both.start()
        try:
            assert served(both, sha(data)).content == data
            status = httpx.get(both.ready_url).json()
            assert liar.url in status["validators_refused"]
            assert "refused" in both.log()
        finally:
            both.stop()


def test_every_route_is_read_only(world: World, dist: Proc) -> None:
    from api.distribution.app import create_app
    from api.distribution.settings import DistSettings

    app = create_app(
        DistSettings(
            genesis=world.net.genesis,
            coordinator_url=world.coordinator_url,
            data_dir=world.root / "routes",
        )
    )
    try:
        methods: set[str] = set()
        for route in app.api.routes:
            methods |= set(getattr(route, "methods", None) or ())
        assert methods <= {"GET", "HEAD"}, methods
        assert_one_error_body(app.api.openapi())
    finally:
        app.node.store.close()
    paths = [
        "/artifacts/sha256/" + "0" * 64,
        "/simple/",
        "/simple/x/",
        "/v1/packages/x/1",
        "/v1/evidence/sha256/" + "0" * 64,
        "/v1/status",
    ]
    for path in paths:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = httpx.request(method, base(dist) + path, content=b"x")
            assert r.status_code == 405, (method, path, r.status_code)
            assert ErrorBody.model_validate(r.json()).error.code == "method_not_allowed"


def test_the_command_explains_bad_input(world: World, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FARM, "dist", "serve", *args], check=False, capture_output=True, text=True, timeout=60
        )

    bad = tmp_path / "genesis.json"
    bad.write_text("{not json")
    common = ["--coordinator", world.coordinator_url, "--data", str(tmp_path / "d")]
    r = run("--genesis", str(bad), *common)
    assert r.returncode == 1 and "genesis is not JSON" in r.stderr
    r = run("--genesis", str(tmp_path / "missing.json"), *common)
    assert r.returncode == 1 and "no genesis file" in r.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    r = run("--genesis", str(world.net.genesis), "--ledger", dead, *common)
    assert r.returncode == 1 and f"no ledger validator answers at {dead}" in r.stderr
    r = run("--genesis", str(world.net.genesis), "--ledger", "ftp://x", *common)
    assert r.returncode == 1 and "is not an http(s) URL" in r.stderr
    assert json.loads(world.net.genesis.read_text())["chain_id"]  # the genesis is untouched
    help_text = subprocess.run(
        [*FARM, "dist", "serve", "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "--poll-interval" in help_text.stdout
