"""The two consumer workflows, wiring I/O around the pure verifier.

``pull``: fetch the release, verify each artifact's evidence *before* downloading (a
stale, rolled-back or forged release costs no bandwidth), stream the bytes into a
temporary file beside the destination while hashing them, verify again with the
digest actually computed, and only then save the evidence and rename the file into
place. ``verify``: hash a local file and check it against its saved evidence, or the
node's evidence for its digest.

Both update the trust memory only with a checkpoint that verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.consumer.client import NodeClient, consistency_proofs
from farm.consumer.errors import NodeError, RefusedError, RollbackError, StaleError
from farm.consumer.state import evidence_path, load_evidence, load_memory, remember, write_atomic
from farm.consumer.trust import TrustMemory, TrustRoot
from farm.consumer.verify import VerifiedArtifact, consistency_needed, verify_artifact
from farm.errors import ConfigError
from farm.evidence import ArtifactEvidence
from ledger.genesis import load_genesis

__all__ = [
    "Options",
    "ProgressFactory",
    "VerifyOutcome",
    "hash_file",
    "host_arch",
    "pull",
    "verify_file",
    "verify_served",
]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_HASH_BUFFER = 4 << 20

ProgressFactory = Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], None]]]
"""(description, total bytes) → a context manager yielding an ``advance(n)`` callback."""


def host_arch() -> str:
    """This machine's architecture in farm's naming (amd64, arm64, …)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


def hash_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of ``path``, read with a large buffer. Raises ConfigError."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_HASH_BUFFER)
    view = memoryview(buf)
    try:
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(view):
                digest.update(view[:n])
                size += n
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return digest.hexdigest(), size


@dataclass(frozen=True)
class Options:
    """What the user configured (options over ``FARM_*``)."""

    genesis: Path | None
    node: str | None
    state_dir: Path
    max_age: float
    allow_stale: bool = False

    def trust(self) -> TrustRoot:
        """The pinned trust root. Raises ConfigError when there is none."""
        if self.genesis is None:
            raise ConfigError(
                "no trust root: pass --genesis FILE or set FARM_GENESIS to the ledger's genesis"
            )
        return TrustRoot.from_genesis(load_genesis(self.genesis))

    def client(self, *, timeout: float = 30.0) -> NodeClient:
        """A client of the node. Raises ConfigError when no node is configured."""
        if not self.node:
            raise ConfigError("no distribution node: pass --node URL or set FARM_DIST_URL")
        return NodeClient(self.node, timeout=timeout)

    def validator_urls(self) -> list[str]:
        """HTTP base URLs of the validators named in the genesis (for consistency proofs)."""
        if self.genesis is None:
            return []
        return [f"http://{v.http}" for v in load_genesis(self.genesis).validators]


def _check(
    evidence: ArtifactEvidence,
    trust: TrustRoot,
    memory: TrustMemory | None,
    opts: Options,
    client: NodeClient | None,
    digest: str,
    size: int,
    package: tuple[str, str] | None = None,
    arch: str | None = None,
) -> VerifiedArtifact:
    needed = consistency_needed(evidence.checkpoint, memory)
    candidates: Iterator[list[bytes]] = iter(())
    if needed is not None and client is not None:
        candidates = consistency_proofs(client, opts.validator_urls(), *needed)
    proof = next(candidates, None)
    while True:
        try:
            return verify_artifact(
                evidence,
                trust,
                memory,
                digest=digest,
                size=size,
                now=time.time(),
                max_age=opts.max_age,
                consistency=proof,
                allow_stale=opts.allow_stale,
                package=package,
                arch=arch,
            )
        except RollbackError:
            # A proof that does not hold may be a lying source: try the next one.
            proof = next(candidates, None) if proof is not None else None
            if proof is None:
                raise


def pull(
    name: str,
    version: str,
    arch: str | None,
    dest: Path,
    opts: Options,
    progress: ProgressFactory,
) -> list[tuple[Path, VerifiedArtifact]]:
    """Download and verify every artifact of ``name==version`` for ``arch`` into ``dest``.

    Raises RefusedError (nothing is written), NodeError, ConfigError.
    """
    trust = opts.trust()
    memory = load_memory(opts.state_dir, trust.genesis_hash)
    with opts.client() as client:
        release = client.release(name, version)
        chosen = _choose(release.artifacts, arch, name, version)
        results: list[tuple[Path, VerifiedArtifact]] = []
        dest.mkdir(parents=True, exist_ok=True)
        for evidence in chosen:
            art = evidence.artifact
            if Path(art.filename).name != art.filename or art.filename in ("", ".", ".."):
                raise NodeError(f"the node names a file {art.filename!r}; refusing to write it")
            # Everything but the bytes, before spending bandwidth on them.
            _check(evidence, trust, memory, opts, client, art.sha256, art.size, (name, version))
            target = dest / art.filename
            fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{art.filename}.", suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, progress(art.filename, art.size) as advance:
                    digest, size = client.download(art, out, advance)
                    out.flush()
                    os.fsync(out.fileno())
                verified = _check(
                    evidence, trust, memory, opts, client, digest, size, (name, version)
                )
                write_atomic(
                    evidence_path(target), evidence.model_dump_json(indent=2).encode() + b"\n"
                )
                tmp.chmod(0o644)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
            memory = remember(opts.state_dir, verified.memory)
            results.append((target, verified))
    return results


def verify_served(
    client: NodeClient, name: str, version: str, arch: str | None, opts: Options
) -> list[VerifiedArtifact]:
    """Check, as :func:`pull` does, every artifact of ``name==version`` the node serves for
    ``arch``: its evidence, then its bytes (downloaded, hashed and dropped), verified
    again with the digest computed here; the trust memory is updated as pull does.

    Raises RefusedError, NodeError (including: the node has no such release), ConfigError.
    """
    trust = opts.trust()
    memory = load_memory(opts.state_dir, trust.genesis_hash)
    release = client.release(name, version)
    verified: list[VerifiedArtifact] = []
    for evidence in _choose(release.artifacts, arch, name, version):
        art = evidence.artifact
        _check(evidence, trust, memory, opts, client, art.sha256, art.size, (name, version))
        with Path(os.devnull).open("wb") as sink:
            digest, size = client.download(art, sink)
        done = _check(evidence, trust, memory, opts, client, digest, size, (name, version))
        memory = remember(opts.state_dir, done.memory)
        verified.append(done)
    return verified


def _choose(
    artifacts: list[ArtifactEvidence], arch: str | None, name: str, version: str
) -> list[ArtifactEvidence]:
    if not artifacts:
        raise NodeError(f"the node lists no artifacts for {name}=={version}")
    arches = sorted({e.artifact.arch for e in artifacts})
    want = arch or host_arch()
    chosen = [e for e in artifacts if e.artifact.arch == want]
    if not chosen and arch is None and len(arches) == 1:
        chosen = list(artifacts)
    if not chosen:
        raise ConfigError(
            f"{name}=={version} has no artifact for arch {want}; it has {', '.join(arches)}: "
            "pass --arch"
        )
    return chosen


@dataclass(frozen=True)
class VerifyOutcome:
    """A verified file and where its evidence came from."""

    verified: VerifiedArtifact
    source: str
    """``evidence file`` or the node's URL."""


@contextlib.contextmanager
def _maybe_client(opts: Options, use: bool) -> Iterator[NodeClient | None]:
    if not use or not opts.node:
        yield None
        return
    with opts.client() as client:
        yield client


def verify_file(
    path: Path,
    opts: Options,
    *,
    digest: tuple[str, int] | None = None,
    online: bool = False,
    offline: bool = False,
) -> VerifyOutcome:
    """Verify ``path`` against its saved evidence, else against the node's evidence.

    ``digest`` is the (sha256, size) of the file when the caller already has it. With
    saved evidence that is stale or older than the remembered tree, the node (if one
    is configured and ``offline`` is not set) is asked for current evidence instead.

    Raises RefusedError, NodeError, ConfigError.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    trust = opts.trust()
    memory = load_memory(opts.state_dir, trust.genesis_hash)
    sha, size = digest if digest is not None else hash_file(path)
    saved = evidence_path(path)
    with _maybe_client(opts, not offline) as client:
        if saved.exists() and not online:
            evidence = load_evidence(saved)
            try:
                verified = _check(evidence, trust, memory, opts, None, sha, size)
                source = f"evidence file {saved.name}"
            except (StaleError, RollbackError) as exc:
                if client is None:
                    hint = "" if offline else " (no node configured to refresh it from)"
                    raise type(exc)(f"{exc}{hint}") from None
                verified, source, fresh = _from_node(client, path, trust, memory, opts, sha, size)
                write_atomic(saved, fresh.model_dump_json(indent=2).encode() + b"\n")
        else:
            if client is None:
                raise ConfigError(
                    f"{path}: no evidence file {saved.name} beside it and no node to ask: "
                    "pass --node URL or set FARM_DIST_URL"
                )
            verified, source, _ = _from_node(client, path, trust, memory, opts, sha, size)
    remember(opts.state_dir, verified.memory)
    return VerifyOutcome(verified, source)


def _from_node(
    client: NodeClient,
    path: Path,
    trust: TrustRoot,
    memory: TrustMemory | None,
    opts: Options,
    sha: str,
    size: int,
) -> tuple[VerifiedArtifact, str, ArtifactEvidence]:
    try:
        evidence = client.evidence(sha)
    except NodeError as exc:
        raise RefusedError(
            f"refused {path.name} (sha256:{sha[:12]}…): the node knows no attested artifact "
            f"with this digest ({exc})"
        ) from None
    verified = _check(evidence, trust, memory, opts, client, sha, size)
    return verified, client.base_url, evidence
