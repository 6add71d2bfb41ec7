"""Realistic attestations for ``farm bench api``, stored in a coordinator database.

Every attestation is what the coordinator itself would store for a verified build:

* a real recipe (parsed by :func:`farm.recipe.parse_recipe`; its digest is the
  canonical one), one per package version, built for ``amd64`` and ``arm64``;
* three builders' signed results (:func:`farm.result.sign_result`, real Ed25519 keys,
  three of a pool of six builders) and the coordinator's signed SLSA statement over
  them (:func:`farm.attestation.build_bundle`), the attest transaction's bytes and id
  (:mod:`farm.transactions`);
* a ledger receipt that verifies: the transactions (after the six builders' enroll
  transactions) form an RFC 6962 log, committed in blocks of :data:`BLOCK`; each
  attestation carries its inclusion proof at its block's tree size and that
  checkpoint, co-signed (timestamped cosignatures, as validators make them) by three of
  four validator keys.

Every bundle is signed for real, none is copied: signing runs in worker processes
before the database is touched. Rows are written with the coordinator's own models
(:class:`~farm.coordinator.models.Attestation`,
:class:`~farm.coordinator.models.AttestationArtifact`), as its ledger publisher does.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from farm.attestation import build_bundle
from farm.checkpoint import Checkpoint, cosign_checkpoint, merge_signatures
from farm.coordinator.models import Attestation, AttestationArtifact
from farm.keys import KeyPair, generate_key
from farm.merkle import MerkleLog, hash_leaf
from farm.recipe import parse_recipe
from farm.result import BuildPredicate, OutputDigest, sign_result
from farm.task import new_build_id
from farm.transactions import make_attest, make_enroll, tx_id
from ledger.revoked_set import RevokedSet

__all__ = [
    "ARCHES",
    "BLOCK",
    "CHAIN_ID",
    "VERSIONS",
    "Loaded",
    "Made",
    "analyze",
    "bundle_size",
    "make_attestations",
    "package_name",
    "store_attestations",
]

ARCHES = ("amd64", "arm64")
VERSIONS = 5
"""Versions of each package: a name query finds ``VERSIONS * len(ARCHES)`` attestations."""
BLOCK = 8
"""Attest transactions per ledger block in the simulated receipts."""
CHAIN_ID = "farm-bench"
IMAGE = "sha256:" + hashlib.sha256(b"farm bench builder image").hexdigest()
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

_FIRST = ("py", "fast", "tiny", "open", "deep", "easy", "json", "http", "yaml", "toml",
          "async", "data", "web", "cloud", "test", "log", "time", "crypto", "net", "text",
          "image", "graph", "sql", "cache", "auth", "task", "config", "parse", "stream", "math")  # fmt: skip  # noqa: E501
_SECOND = ("kit", "lib", "tools", "utils", "core", "client", "server", "io", "parser", "schema",
           "rpc", "api", "cli", "db", "fmt", "check", "lint", "pack", "sync", "queue",
           "store", "hash", "box", "map", "flow", "path", "plug", "view", "wire", "zip")  # fmt: skip  # noqa: E501


def package_name(p: int) -> str:
    """The ``p``-th package name (distinct for every ``p``)."""
    a, b = divmod(p, len(_SECOND))
    base = f"{_FIRST[a % len(_FIRST)]}-{_SECOND[b]}"
    return base if a < len(_FIRST) else f"{base}{a // len(_FIRST) + 1}"


def _version(v: int) -> str:
    return f"{1 + v // 3}.{v % 3}.{(v * 7) % 5}"


def _recipe(name: str, version: str) -> dict[str, Any]:
    commit = hashlib.sha1(f"{name}=={version}".encode()).hexdigest()  # noqa: S324 - a git id
    return {
        "name": name,
        "version": version,
        "source": {"type": "git", "url": f"https://git.example.org/{name}.git", "commit": commit},
        "image": IMAGE,
        "architectures": list(ARCHES),
        "build": {
            "command": "python3 -m build --wheel --no-isolation --outdir /out .\n",
            "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"},
        },
        "outputs": [{"path": f"{name.replace('-', '_')}-{version}-*.whl"}],
    }


@dataclass(frozen=True)
class Made:
    """One signed attestation, ready to store (the receipt is added when stored)."""

    index: int
    build_id: str
    name: str
    version: str
    arch: str
    recipe_digest: str
    bundle: dict[str, Any]
    tx_id: str
    leaf_hash: bytes
    artifacts: tuple[tuple[str, str], ...]


def _pem(key: KeyPair) -> bytes:
    return key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key(pem: bytes) -> KeyPair:
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return KeyPair(private)


def _make_range(
    coordinator_pem: bytes, builder_pems: Sequence[bytes], start: int, end: int
) -> list[Made]:
    """Attestations ``start`` … ``end - 1``, signed in a worker process."""
    coordinator = _key(coordinator_pem)
    builders = [_key(p) for p in builder_pems]
    out: list[Made] = []
    per_package = VERSIONS * len(ARCHES)
    for i in range(start, end):
        p, rest = divmod(i, per_package)
        v, a = divmod(rest, len(ARCHES))
        name, version, arch = package_name(p), _version(v), ARCHES[a]
        recipe = parse_recipe(_recipe(name, version), f"{name}=={version}")
        build_id = new_build_id()
        wheel = f"{name.replace('-', '_')}-{version}-cp311-cp311-linux_{arch}.whl"
        outputs = [(wheel, f"wheel {wheel} {i}".encode())]
        if i % 4 == 0:  # some recipes also ship their sdist
            sdist = f"{name.replace('-', '_')}-{version}.tar.gz"
            outputs.append((sdist, f"sdist {sdist} {i}".encode()))
        digests = tuple(
            OutputDigest(
                name=n, sha256=hashlib.sha256(b).hexdigest(), size=20_000 + 37 * i + len(b)
            )
            for n, b in outputs
        )
        started = EPOCH + timedelta(minutes=i)
        chosen = [builders[(i + k) % len(builders)] for k in range(3)]
        envelopes = [
            sign_result(
                BuildPredicate(
                    build_id=build_id,
                    recipe_digest=recipe.digest,
                    recipe_name=name,
                    recipe_version=version,
                    image_digest=IMAGE,
                    arch=arch,
                    builder_id=b.keyid,
                    started_at=started + timedelta(seconds=k),
                    finished_at=started + timedelta(seconds=40 + 3 * k + i % 7),
                    status="succeeded",
                    exit_code=0,
                    log_sha256=hashlib.sha256(f"log {i} {k}".encode()).hexdigest(),
                    outputs=digests,
                ),
                b,
            )
            for k, b in enumerate(chosen)
        ]
        bundle = build_bundle(
            recipe.digest, name, version, arch, build_id, envelopes, coordinator, recipe.quorum
        )
        tx = make_attest(bundle)
        out.append(
            Made(
                index=i,
                build_id=build_id,
                name=name,
                version=version,
                arch=arch,
                recipe_digest=recipe.digest,
                bundle=bundle.model_dump(mode="json"),
                tx_id=tx_id(tx),
                leaf_hash=hash_leaf(tx),
                artifacts=tuple((d.name, d.sha256) for d in digests),
            )
        )
    return out


@dataclass
class Loaded:
    """What was stored: the values the queries pick from and the totals they expect."""

    count: int
    by_name: dict[str, int] = field(default_factory=dict)
    by_version: dict[tuple[str, str], int] = field(default_factory=dict)
    by_arch: dict[str, int] = field(default_factory=dict)
    by_recipe: dict[str, int] = field(default_factory=dict)
    sha256s: list[str] = field(default_factory=list)


def make_attestations(
    count: int, workers: int, progress: Callable[[int], None] = lambda _n: None
) -> tuple[list[Made], list[KeyPair], KeyPair]:
    """``count`` signed attestations (in ``workers`` processes), the six builder keys and
    the coordinator's key."""
    coordinator = generate_key()
    builders = [generate_key() for _ in range(6)]
    cpem, bpems = _pem(coordinator), [_pem(b) for b in builders]
    chunk = 250
    made: list[Made] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, workers), mp_context=ctx) as pool:
        futures = [
            pool.submit(_make_range, cpem, bpems, s, min(s + chunk, count))
            for s in range(0, count, chunk)
        ]
        for future in as_completed(futures):
            part = future.result()
            made.extend(part)
            progress(len(part))
    made.sort(key=lambda m: m.index)
    return made, builders, coordinator


def _receipts(
    made: Sequence[Made],
    builders: Sequence[KeyPair],
    validators: Sequence[tuple[str, Ed25519PrivateKey]],
) -> list[tuple[int, int, int, list[str], str]]:
    """(index, height, tree size, inclusion proof, checkpoint note) of each attestation."""
    operator = generate_key()
    log = MerkleLog(
        hash_leaf(
            make_enroll(
                operator,
                b.public_dict(),
                list(ARCHES),
                f"host-{n}",
                domain=f"site-{n}",
                chain=CHAIN_ID,
            )
        )
        for n, b in enumerate(builders)
    )
    first = len(log)
    log.extend(m.leaf_hash for m in made)
    out = []
    notes: dict[int, str] = {}
    for k in range(len(made)):
        index = first + k
        block = k // BLOCK
        size = min(first + (block + 1) * BLOCK, len(log))
        if size not in notes:
            # No revocations in the bench: every checkpoint commits to the empty set.
            cp = Checkpoint(CHAIN_ID, size, log.root(size), (RevokedSet().extension(),))
            stamp = int((EPOCH + timedelta(seconds=30 * k)).timestamp())
            notes[size] = merge_signatures(
                *(cosign_checkpoint(cp, name, key, stamp) for name, key in validators[:3])
            )
        proof = [h.hex() for h in log.inclusion_proof(index, size)]
        out.append((index, len(builders) + 1 + block, size, proof, notes[size]))
    return out


def store_attestations(
    engine: Engine,
    made: Sequence[Made],
    builders: Sequence[KeyPair],
    progress: Callable[[int], None] = lambda _n: None,
    validators: Sequence[tuple[str, Ed25519PrivateKey]] | None = None,
) -> Loaded:
    """Store ``made`` as committed attestations with their receipts; return what was stored.

    Checkpoints are co-signed by three of ``validators`` (name, key); four fresh ones
    if not given.
    """
    if validators is None:
        validators = [(f"v{i}", Ed25519PrivateKey.generate()) for i in range(4)]
    receipts = _receipts(made, builders, validators)
    loaded = Loaded(count=len(made))
    batch = 500
    for start in range(0, len(made), batch):
        with Session(engine) as session:
            for m, (index, height, size, proof, note) in zip(
                made[start : start + batch], receipts[start : start + batch], strict=True
            ):
                session.add(
                    Attestation(
                        tx_id=m.tx_id,
                        build_id=m.build_id,
                        status="committed",
                        name=m.name,
                        version=m.version,
                        arch=m.arch,
                        recipe_digest=m.recipe_digest,
                        bundle=m.bundle,
                        ledger_index=index,
                        height=height,
                        tree_size=size,
                        inclusion_proof=proof,
                        checkpoint=note,
                        submitted_at=EPOCH + timedelta(seconds=30 * m.index),
                    )
                )
                for name, sha in m.artifacts:
                    session.add(AttestationArtifact(tx_id=m.tx_id, name=name, sha256=sha))
            session.commit()
        progress(len(made[start : start + batch]))
    for m in made:
        loaded.by_name[m.name] = loaded.by_name.get(m.name, 0) + 1
        key = (m.name, m.version)
        loaded.by_version[key] = loaded.by_version.get(key, 0) + 1
        loaded.by_arch[m.arch] = loaded.by_arch.get(m.arch, 0) + 1
        loaded.by_recipe[m.recipe_digest] = loaded.by_recipe.get(m.recipe_digest, 0) + 1
        loaded.sha256s.extend(sha for _, sha in m.artifacts)
    return loaded


def bundle_size(made: Sequence[Made]) -> int:
    """Mean size in bytes of a stored bundle's JSON (for the report)."""
    sample = random.Random(0).sample(list(made), min(50, len(made)))
    return sum(len(json.dumps(m.bundle)) for m in sample) // max(1, len(sample))


def analyze(engine: Engine) -> None:
    """On PostgreSQL, ``VACUUM ANALYZE`` the attestation tables; elsewhere nothing.

    A table just filled in one go has no planner statistics and no visibility map until
    autovacuum visits it (up to a minute later): the planner then takes it for a few
    dozen rows and sorts it whole. A running coordinator's tables were filled over time
    and autovacuum has long caught up, so the bench measures that state. SQLite has no
    autovacuum daemon, and farm never runs ``ANALYZE`` on it, so it is left as stored.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (Attestation.__tablename__, AttestationArtifact.__tablename__):
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
