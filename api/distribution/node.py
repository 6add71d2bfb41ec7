"""The distribution node: a follower, a mirror, and what they publish to HTTP readers.

:class:`DistNode` wires the stages in pipeline order: the :class:`~api.distribution.follower.
Follower` replicates and checks the ledger, each committed attest transaction adds
:class:`~api.distribution.catalog.CatalogEntry` values, the :class:`~api.distribution.mirror.Mirror`
fetches their bytes, and after every change an immutable :class:`View` is published.
HTTP handlers read only the current view (one attribute read, no lock), and the
evidence builders (:meth:`DistNode.evidence`, :meth:`DistNode.release`) take the state
lock for the few microseconds a proof costs.

What is served (the invariant of :class:`View`): an artifact's bytes are served only
if an attest transaction committed in a certified block names it, that entry is inside
the tree of a checkpoint co-signed by 2f+1 genesis validators, its blob is on disk and
hashed to its digest, and no committed revoke names it. A revoke is honoured as soon
as its block is committed (before any checkpoint covers it).

The evidence of an artifact that is not revoked at the view's checkpoint carries a
proof of that (``not_revoked``), against the revoked set the checkpoint commits to
(the follower keeps only checkpoints whose commitment is our own state's, so the proof
always verifies).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, field

import httpx

from api.distribution.blobs import BlobStore
from api.distribution.catalog import CatalogEntry, builder_ids, entries_of_attest, normalize_name
from api.distribution.errors import DistError
from api.distribution.follower import Follower
from api.distribution.mirror import Mirror
from api.distribution.settings import DistSettings
from farm.checkpoint import Checkpoint, parse_note
from farm.errors import ConfigError, FarmError
from farm.evidence import (
    ArtifactEvidence,
    ArtifactInfo,
    LedgerEntryProof,
    NotRevokedProof,
    PackageRelease,
    Revocation,
)
from farm.transactions import AttestTx, decode_tx
from ledger.block import Block
from ledger.genesis import Genesis, load_genesis
from ledger.storage import LedgerStore

__all__ = ["DistNode", "Served", "View"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """An artifact whose bytes may be served, and where they are."""

    entry: CatalogEntry
    path: str


@dataclass(frozen=True)
class View:
    """What the node publishes at one moment (see the module docstring)."""

    tree_size: int = 0
    note: str | None = None
    served: dict[str, Served] = field(default_factory=dict)
    """sha256 → servable artifact."""
    gone: dict[str, str] = field(default_factory=dict)
    """sha256 → revocation reason, for every attested artifact that is revoked."""
    projects: dict[str, tuple[CatalogEntry, ...]] = field(default_factory=dict)
    """Normalized project name → its servable Python distributions (for /simple/)."""


_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")


def dist_project(filename: str) -> str | None:
    """The normalized project name a wheel or sdist file name carries, if it is one."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return normalize_name(parts[0]) if len(parts) in (5, 6) else None
    for suffix in _DIST_SUFFIXES[1:]:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            name, sep, _ = stem.rpartition("-")
            return normalize_name(name) if sep and name else None
    return None


class DistNode:
    """One distribution node (see the module docstring). ``start``/``stop`` run it."""

    def __init__(self, settings: DistSettings) -> None:
        self.settings = settings
        self.genesis: Genesis = load_genesis(settings.genesis)
        self.urls = list(settings.ledger_urls) or [
            f"http://{v.http}" for v in self.genesis.validators
        ]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = LedgerStore(settings.ledger_dir, self.genesis)
        self.state = self.store.load_state(self.genesis)
        self.lock = threading.RLock()
        self.blobs = BlobStore(settings.blob_dir)
        self.catalog: dict[str, CatalogEntry] = {}
        """sha256 → the first attestation of those bytes (what the bytes are served as)."""
        self.arches: dict[str, dict[str, CatalogEntry]] = {}
        """sha256 → architecture → the first attestation of those bytes for it: a pure
        wheel attested for amd64 and for arm64 is one file with two attestations, and a
        consumer of either architecture gets its own (ADR 42)."""
        for start in range(0, self.state.size, 1024):  # pages: bounded memory
            for offset, data in enumerate(self.store.entries(start, start + 1024)):
                self._catalog_entry(data, start + offset)
        self.follower = Follower(
            self.genesis,
            self.urls,
            self.store,
            self.state,
            self.lock,
            on_block=self._on_block,
            on_checkpoint=self._on_checkpoint,
            timeout=settings.fetch_timeout,
        )
        self.mirror = Mirror(
            self.blobs,
            settings.coordinator_url,
            self._on_stored,
            retry_max=settings.mirror_retry_max,
            timeout=settings.fetch_timeout,
        )
        self.view = View()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        """Polls of the validators completed (tests wait on it)."""
        self.followed = 0
        """Polls that a validator answered (``/readyz`` needs one)."""
        log.info(
            "chain %s: resuming at height %d, log size %d, checkpoint size %d, %d artifact(s)",
            self.genesis.chain_id,
            self.follower.height,
            self.state.size,
            self.follower.checkpoint_size,
            len(self.catalog),
        )
        self._publish()

    # ------------------------------------------------------------------ running

    def check_ledger(self) -> None:
        """Raise :class:`ConfigError` unless at least one validator URL answers."""
        with httpx.Client(timeout=self.settings.fetch_timeout) as client:
            for url in self.urls:
                try:
                    client.get(f"{url}/v1/status")
                    return
                except httpx.HTTPError:
                    continue
        raise ConfigError("no ledger validator answers at " + ", ".join(self.urls))

    def start(self) -> None:
        """Start following and mirroring in background threads."""
        for sha, entry in list(self.catalog.items()):
            if not self.state.is_revoked(sha):
                self.mirror.want(sha, entry.size)
        self.mirror.start()
        self._thread = threading.Thread(target=self._follow, name="dist-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the threads and close the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.fetch_timeout + 5)
        self.mirror.stop()
        self.store.close()

    def _follow(self) -> None:
        trouble: str | None = None  # logged once, not at every poll
        with httpx.Client(timeout=self.settings.fetch_timeout) as client:
            while not self._stop.is_set():
                try:
                    applied = self.follower.poll(client)
                    self.followed += 1
                    if trouble is not None:
                        log.info("a validator answers again")
                    trouble = None
                except DistError as exc:
                    if str(exc) != trouble:
                        log.warning("%s", exc)
                    trouble, applied = str(exc), 0
                self.polls += 1
                if not applied:
                    self._stop.wait(self.settings.poll_interval)

    # ------------------------------------------------------------------ changes

    def _catalog_entry(self, data: bytes, index: int) -> list[CatalogEntry]:
        try:
            entries = entries_of_attest(data, index)
        except FarmError as exc:  # committed, so valid; but offer nothing we cannot read
            log.error("entry %d not catalogued: %s", index, exc)
            return []
        new = []
        with self.lock:
            for e in entries:
                self.arches.setdefault(e.sha256, {}).setdefault(e.arch, e)
                if e.sha256 not in self.catalog:
                    self.catalog[e.sha256] = e
                    new.append(e)
        return new

    def _on_block(self, block: Block, first: int) -> None:
        for offset, data in enumerate(block.txs):
            for entry in self._catalog_entry(data, first + offset):
                log.info(
                    "attested %s %s %s: %s sha256:%s…",
                    entry.name,
                    entry.version,
                    entry.arch,
                    entry.filename,
                    entry.sha256[:12],
                )
                self.mirror.want(entry.sha256, entry.size)
        with self.lock:
            shas = list(self.catalog)
        for sha in shas:
            revoked = self.state.revocation(sha)
            if revoked is not None and revoked.index >= first:
                log.info("revoked sha256:%s…: %s", sha[:12], revoked.reason)
                self.mirror.drop(sha)
        self._publish()

    def _on_checkpoint(self, note: str, cp: Checkpoint) -> None:
        self._publish()

    def _on_stored(self, digest: str) -> None:
        self._publish()

    def _publish(self) -> None:
        """Recompute and swap the view (called from the follower and mirror threads)."""
        with self.lock:
            note = self.store.latest_checkpoint()
            size = 0 if note is None else Checkpoint.from_body(parse_note(note).text).size
            served: dict[str, Served] = {}
            gone: dict[str, str] = {}
            for sha, entry in self.catalog.items():
                revoked = self.state.revocation(sha)
                if revoked is not None:
                    gone[sha] = revoked.reason
                    continue
                if entry.index >= size or self.blobs.size_of(sha) != entry.size:
                    continue
                served[sha] = Served(entry, str(self.blobs.path_for(sha)))
            projects: dict[str, list[CatalogEntry]] = {}
            for s in served.values():
                project = dist_project(s.entry.filename)
                if project is not None:
                    projects.setdefault(project, []).append(s.entry)
            self.view = View(
                tree_size=size,
                note=note,
                served=served,
                gone=gone,
                projects={
                    p: tuple(sorted(es, key=lambda e: e.filename)) for p, es in projects.items()
                },
            )

    # ------------------------------------------------------------------ evidence

    def _proof(self, index: int, size: int) -> LedgerEntryProof:
        data = self.store.entry(index)
        if data is None:  # pragma: no cover - the store holds every index below size
            raise DistError(f"entry {index} is missing from the replicated log")
        return LedgerEntryProof(
            index=index,
            tree_size=size,
            entry=base64.b64encode(data).decode("ascii"),
            inclusion_proof=[h.hex() for h in self.state.log.inclusion_proof(index, size)],
            height=self.store.entry_height(index),
        )

    def evidence(
        self, sha: str, view: View | None = None, arch: str | None = None
    ) -> ArtifactEvidence | None:
        """Everything to check artifact ``sha`` at the view's checkpoint, or None if it
        is not attested inside that checkpoint or, unrevoked, not mirrored yet. ``arch``
        chooses the attestation for that architecture (default: the first of any).
        A revoked artifact's evidence carries the revocation (with its proof) when the
        checkpoint covers the revoke; otherwise None (the caller answers 410). An
        unrevoked one carries the proof that it is not in the checkpoint's revoked set."""
        view = view or self.view
        with self.lock:
            entry = self.catalog.get(sha) if arch is None else self.arches.get(sha, {}).get(arch)
        size, note = view.tree_size, view.note
        if entry is None or note is None or entry.index >= size:
            return None
        with self.lock:
            revoked = self.state.revocation(sha)
            if revoked is None and sha not in view.served:
                return None
            if revoked is not None and revoked.index >= size:
                return None
            attestation = self._proof(entry.index, size)
            data = base64.b64decode(attestation.entry)
            tx = decode_tx(data)
            assert isinstance(tx, AttestTx)
            enrollments = {}
            for keyid in builder_ids(tx):
                record = self.state.builder(keyid)
                if record is not None and record.enrolled_at is not None:
                    enrollments[keyid] = self._proof(record.enrolled_at, size)
            revocation: Revocation | None = None
            not_revoked: NotRevokedProof | None = None
            if revoked is None:
                absent = self.state.revoked_set(size).absence_proof(sha)
                not_revoked = NotRevokedProof.model_validate(absent.to_json())
            else:
                revocation = Revocation(
                    sha256=sha, reason=revoked.reason, proof=self._proof(revoked.index, size)
                )
        info = ArtifactInfo(
            filename=entry.filename,
            output=entry.output,
            sha256=sha,
            size=entry.size,
            arch=entry.arch,
            url=f"/artifacts/sha256/{sha}",
            attestation_index=entry.index,
            revoked=revocation,
        )
        return ArtifactEvidence(
            artifact=info,
            bundle=json.loads(data)["bundle"],
            attestation=attestation,
            enrollments=enrollments,
            checkpoint=note,
            genesis_hash=self.genesis.hash,
            not_revoked=not_revoked,
        )

    def release(self, name: str, version: str) -> PackageRelease | None:
        """The release's artifacts (served or revoked) at the view's checkpoint, or None."""
        view = self.view
        want = normalize_name(name)
        with self.lock:
            attested = [
                (sha, arch, e.name)
                for sha, by_arch in self.arches.items()
                for arch, e in by_arch.items()
                if normalize_name(e.name) == want and e.version == version
            ]
        artifacts = [
            ev for sha, arch, _ in attested if (ev := self.evidence(sha, view, arch)) is not None
        ]
        if not artifacts or view.note is None:
            return None
        artifacts.sort(key=lambda a: (a.artifact.arch, a.artifact.filename))
        return PackageRelease(
            name=attested[0][2],
            version=version,
            checkpoint=view.note,
            tree_size=view.tree_size,
            artifacts=artifacts,
        )

    def status(self) -> dict[str, object]:
        """Height, log and checkpoint sizes, artifacts served, blobs left to mirror."""
        view = self.view
        return {
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash,
            "height": self.follower.height,
            "log_size": self.state.size,
            "tree_size": view.tree_size,
            "artifacts": len(view.served),
            "revoked": len(view.gone),
            "mirror_pending": self.mirror.pending,
            "validators_refused": dict(self.follower.refused),
        }
