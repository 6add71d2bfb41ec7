"""Decide whether to believe an artifact: evidence + trust root + memory + now → verdict.

Pure: no network, no files, no clock (``now`` is an argument). The distribution node
may lie in every field of :class:`~farm.evidence.ArtifactEvidence`; the only things
believed are the pinned :class:`~farm.consumer.trust.TrustRoot`, the
:class:`~farm.consumer.trust.TrustMemory` and the digest the caller computed itself
from the bytes. :func:`verify_artifact` checks, in this order, and raises the first
failure as a :class:`~farm.consumer.errors.RefusedError` whose message names the
artifact, what failed and what to do:

1. the evidence is for the pinned ledger (genesis hash) and for these bytes (digest,
   size);
2. the checkpoint is co-signed by at least 2f+1 pinned validator keys;
3. it is fresh: 2f+1 validators vouch for a time at most ``max_age`` ago (freeze);
4. it is not smaller than the remembered tree, and a larger tree comes with a
   consistency proof from the remembered one (rollback, fork);
5. the attest entry is exactly the attest transaction of the bundle shown, and its
   inclusion proof leads to the checkpoint's root;
6. every builder key the bundle rests on is a genesis builder or was enrolled, before
   the attestation, by an enroll entry signed by a genesis operator and proven included;
7. the bundle verifies (:func:`farm.attestation.verify_bundle`): the coordinator's
   signature by a genesis coordinator key, each builder's envelope signature, at least
   ``quorum`` distinct builders with identical digests, and those builders span at
   least ``quorum`` independence domains as their genesis entry or enroll transaction
   names them (:func:`farm.quorum.require_domains`);
8. the attested subjects include this artifact's name and digest, for the requested
   package, version and architecture (mix-and-match);
9. the artifact is not revoked: a revocation the node shows is checked (operator
   signature, inclusion) and refuses the artifact; otherwise the evidence must prove
   that the artifact's digest is not in the revoked set the (already trusted)
   checkpoint commits to (its ``farm-revoked/v1`` line, :mod:`ledger.revoked_set`).
   A node cannot forge a revocation, and it cannot hide one either: without a valid
   absence proof the artifact is refused (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from securesystemslib.signer import SSlibKey

from farm.attestation import AttestationBundle, VerifiedBundle, verify_bundle
from farm.checkpoint import (
    Checkpoint,
    cosigned_time,
    parse_note,
    verify_checkpoint,
    verify_fresh_checkpoint,
)
from farm.consumer.errors import (
    DigestError,
    EvidenceError,
    RefusedError,
    RevokedError,
    RollbackError,
    StaleError,
)
from farm.consumer.trust import TrustMemory, TrustRoot
from farm.errors import CheckpointError, FarmError, ProofError, SigningKeyError
from farm.evidence import ArtifactEvidence, LedgerEntryProof
from farm.keys import public_key_from_dict
from farm.merkle import hash_leaf, verify_consistency, verify_inclusion
from farm.quorum import require_domains
from farm.result import envelope_payload, parse_statement
from farm.transactions import EnrollTx, RevokeTx, decode_tx, make_attest, verify_operator_signature
from ledger.verify import AbsenceProof, commitment_of, verify_absent

__all__ = [
    "VerifiedArtifact",
    "consistency_needed",
    "describe_age",
    "verify_artifact",
]


@dataclass(frozen=True)
class VerifiedArtifact:
    """What :func:`verify_artifact` proved about one artifact; never made otherwise."""

    name: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int
    builders: tuple[str, ...]
    coordinator: str
    attestation_index: int
    tree_size: int
    checkpoint_time: int
    checkpoint_age: float
    memory: TrustMemory
    """What to remember from now on (the larger of the old memory and this checkpoint)."""


def describe_age(seconds: float) -> str:
    """A duration for people: ``42 s``, ``7 min``, ``3.5 h``, ``2.0 days``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def consistency_needed(note: str, memory: TrustMemory | None) -> tuple[int, int] | None:
    """(old, new) sizes of the consistency proof :func:`verify_artifact` will need for
    the checkpoint ``note`` given ``memory``, or None. Verifies nothing; a malformed
    note answers None and is refused later by :func:`verify_artifact`."""
    if memory is None:
        return None
    try:
        size = Checkpoint.from_body(parse_note(note).text).size
    except CheckpointError:
        return None
    return (memory.tree_size, size) if size > memory.tree_size else None


def verify_artifact(
    evidence: ArtifactEvidence,
    trust: TrustRoot,
    memory: TrustMemory | None,
    *,
    digest: str,
    size: int,
    now: float,
    max_age: float,
    consistency: Sequence[bytes] | None = None,
    allow_stale: bool = False,
    package: tuple[str, str] | None = None,
    arch: str | None = None,
) -> VerifiedArtifact:
    """Check ``evidence`` for bytes whose sha256 is ``digest`` and length ``size``.

    ``consistency`` is the proof from ``memory``'s tree to the evidence's checkpoint
    (see :func:`consistency_needed`); ``package`` (name, version) and ``arch`` are what
    the user asked for, when they asked. With ``allow_stale`` a checkpoint older than
    ``max_age`` is accepted (its age is still reported).

    Raises:
        RefusedError: the first check of the module docstring that fails, as one of
            DigestError, EvidenceError, StaleError, RollbackError or RevokedError.
    """
    label = f"{evidence.artifact.filename} (sha256:{evidence.artifact.sha256[:12]}…)"
    try:
        return _verify(
            evidence, trust, memory, digest, size, now, max_age, consistency, allow_stale,
            package, arch,
        )  # fmt: skip
    except RefusedError as exc:
        raise type(exc)(f"refused {label}: {exc}") from None


def _verify(
    evidence: ArtifactEvidence,
    trust: TrustRoot,
    memory: TrustMemory | None,
    digest: str,
    size: int,
    now: float,
    max_age: float,
    consistency: Sequence[bytes] | None,
    allow_stale: bool,
    package: tuple[str, str] | None,
    arch: str | None,
) -> VerifiedArtifact:
    art = evidence.artifact
    if evidence.genesis_hash != trust.genesis_hash:
        raise EvidenceError(
            f"the evidence is for ledger {evidence.genesis_hash[:12]}…, not the pinned genesis "
            f"{trust.genesis_hash[:12]}…; check --genesis / FARM_GENESIS or use another node"
        )
    if digest != art.sha256:
        raise DigestError(
            f"the bytes hash to sha256:{digest[:12]}…, not the attested digest; the file was "
            "tampered with or mixed up: delete it and pull again from a node you trust more"
        )
    if size != art.size:
        raise DigestError(f"the bytes are {size} long, the node declared {art.size}")
    checkpoint, cp_time, age = _check_checkpoint(evidence.checkpoint, trust, now, max_age)
    if age > max_age and not allow_stale:
        raise StaleError(
            f"the newest checkpoint is {describe_age(age)} old, more than the allowed "
            f"{describe_age(max_age)}; the node or ledger may be frozen: try another node, "
            "or accept it knowingly with --max-age / --allow-stale"
        )
    new_memory = _check_rollback(checkpoint, cp_time, trust, memory, consistency)
    bundle = _check_attest_entry(evidence, checkpoint)
    builder_keys = _enrolled_keys(evidence, trust, checkpoint)
    try:
        verified = verify_bundle(bundle, builder_keys, trust.coordinators, trust.quorum)
    except FarmError as exc:
        raise EvidenceError(f"the attestation does not verify: {exc}") from None
    try:
        require_domains(
            verified.builder_ids, lambda b: _enrolled_domain(evidence, trust, b), trust.quorum
        )
    except FarmError as exc:
        raise EvidenceError(f"the attestation does not verify: {exc}") from None
    _check_subject(evidence, verified, trust, package, arch)
    _check_revocation(evidence, trust, checkpoint)
    ext = verified.statement.external
    return VerifiedArtifact(
        name=ext.recipe,
        version=ext.version,
        arch=ext.arch,
        filename=art.filename,
        sha256=art.sha256,
        size=art.size,
        builders=verified.builder_ids,
        coordinator=verified.coordinator_id,
        attestation_index=evidence.attestation.index,
        tree_size=checkpoint.size,
        checkpoint_time=cp_time,
        checkpoint_age=age,
        memory=new_memory,
    )


def _check_checkpoint(
    note: str, trust: TrustRoot, now: float, max_age: float
) -> tuple[Checkpoint, int, float]:
    """(checkpoint, vouched time, age) of a note 2f+1 pinned validators signed."""
    try:
        checkpoint = verify_checkpoint(note, trust.validators, trust.threshold, trust.origin)
    except CheckpointError as exc:
        raise EvidenceError(
            f"the checkpoint is not trusted: {exc}; the node may be forging or replaying "
            "ledger state: try another node"
        ) from None
    try:
        cp_time = cosigned_time(note, trust.validators, trust.threshold, trust.origin)
    except CheckpointError as exc:
        raise StaleError(
            f"no time is vouched for by {trust.threshold} validators ({exc}); freshness "
            "cannot be shown: try another node"
        ) from None
    age = now - cp_time
    if age <= max_age:
        try:
            verify_fresh_checkpoint(
                note, trust.validators, trust.threshold, trust.origin, now=now, max_age=max_age
            )
        except CheckpointError as exc:
            raise StaleError(f"the checkpoint is not fresh: {exc}; try another node") from None
    return checkpoint, cp_time, age


def _check_rollback(
    checkpoint: Checkpoint,
    cp_time: int,
    trust: TrustRoot,
    memory: TrustMemory | None,
    consistency: Sequence[bytes] | None,
) -> TrustMemory:
    """The memory after this checkpoint; raises RollbackError for a smaller or
    inconsistent tree."""
    here = TrustMemory(
        genesis_hash=trust.genesis_hash,
        tree_size=checkpoint.size,
        root_hash=checkpoint.root_hash.hex(),
        checkpoint_time=cp_time,
    )
    if memory is None:
        return here
    if memory.genesis_hash != trust.genesis_hash:
        raise RollbackError("the remembered ledger state is for another genesis")
    if checkpoint.size < memory.tree_size:
        raise RollbackError(
            f"the checkpoint has {checkpoint.size} entries but this machine already verified "
            f"{memory.tree_size}: the node is behind or rolled back; try another node, or "
            "fetch current evidence (farm verify --online)"
        )
    if checkpoint.size == memory.tree_size:
        if checkpoint.root_hash != memory.root:
            raise RollbackError(
                f"the ledger at size {checkpoint.size} has another root than the one verified "
                "before: the validators forked the log; report it and stop trusting this ledger"
            )
        if memory.checkpoint_time is not None and memory.checkpoint_time > cp_time:
            return memory
        return here
    if consistency is None:
        raise RollbackError(
            f"no consistency proof from the remembered size {memory.tree_size} to "
            f"{checkpoint.size}; the log cannot be shown to extend what was verified: "
            "try again online or use another node"
        )
    try:
        verify_consistency(
            memory.tree_size, checkpoint.size, memory.root, checkpoint.root_hash, consistency
        )
    except ProofError as exc:
        raise RollbackError(
            f"the log at size {checkpoint.size} does not extend the one verified at size "
            f"{memory.tree_size} ({exc}): the ledger was rewritten; report it"
        ) from None
    return here


def _entry_bytes(proof: LedgerEntryProof, what: str) -> bytes:
    try:
        return base64.b64decode(proof.entry, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceError(f"the {what} entry is not base64") from None


def _check_included(
    proof: LedgerEntryProof, data: bytes, checkpoint: Checkpoint, what: str
) -> None:
    if proof.tree_size != checkpoint.size:
        raise EvidenceError(
            f"the {what} proof is for tree size {proof.tree_size}, the checkpoint for "
            f"{checkpoint.size}; the node's evidence is inconsistent: try another node"
        )
    try:
        path = [bytes.fromhex(h) for h in proof.inclusion_proof]
        verify_inclusion(hash_leaf(data), proof.index, checkpoint.size, path, checkpoint.root_hash)
    except (ValueError, ProofError) as exc:
        raise EvidenceError(
            f"the {what} at ledger index {proof.index} is not in the co-signed log ({exc}); "
            "the node is serving something the ledger did not commit"
        ) from None


def _check_attest_entry(evidence: ArtifactEvidence, checkpoint: Checkpoint) -> AttestationBundle:
    """The bundle, once its attest entry is shown to be exactly it and included."""
    try:
        bundle = AttestationBundle.model_validate(evidence.bundle)
    except ValidationError as exc:
        raise EvidenceError(
            f"the attestation bundle is malformed: {exc.errors()[0]['msg']}"
        ) from None
    data = _entry_bytes(evidence.attestation, "attestation")
    if evidence.attestation.index != evidence.artifact.attestation_index:
        raise EvidenceError(
            f"the artifact names ledger index {evidence.artifact.attestation_index} but the "
            f"proof is for index {evidence.attestation.index}"
        )
    try:
        expected = make_attest(bundle)
    except (FarmError, ValueError) as exc:
        raise EvidenceError(f"the attestation bundle cannot be encoded: {exc}") from None
    if data != expected:
        raise EvidenceError(
            f"ledger entry {evidence.attestation.index} is not the attest transaction of the "
            "bundle shown (mix-and-match): the node paired an attestation with another entry"
        )
    _check_included(evidence.attestation, data, checkpoint, "attestation")
    return bundle


def _enrolled_keys(
    evidence: ArtifactEvidence, trust: TrustRoot, checkpoint: Checkpoint
) -> dict[str, SSlibKey]:
    """Builder keys the bundle may rest on: genesis builders, then proven enrollments."""
    keys = {keyid: b.key for keyid, b in trust.builders.items()}
    for keyid, proof in evidence.enrollments.items():
        what = f"enrollment of builder {keyid[:12]}…"
        data = _entry_bytes(proof, what)
        try:
            tx = decode_tx(data)
        except FarmError as exc:
            raise EvidenceError(f"the {what} is not a transaction: {exc}") from None
        if not isinstance(tx, EnrollTx):
            raise EvidenceError(f"the {what} at index {proof.index} is a {tx.type}, not an enroll")
        reason = verify_operator_signature(tx, trust.operators, trust.origin)
        if reason is not None:
            raise EvidenceError(f"the {what}: {reason} (operators come from the pinned genesis)")
        try:
            key = public_key_from_dict(tx.key)
        except SigningKeyError as exc:
            raise EvidenceError(f"the {what} carries a bad key: {exc}") from None
        if key.keyid != keyid:
            raise EvidenceError(f"the {what} enrolls another key, {key.keyid[:12]}…")
        if proof.index >= evidence.attestation.index:
            raise EvidenceError(f"the {what} comes after the attestation it should support")
        _check_included(proof, data, checkpoint, what)
        keys[keyid] = key
    return keys


def _enrolled_domain(evidence: ArtifactEvidence, trust: TrustRoot, keyid: str) -> str | None:
    """The independence domain a builder was enrolled in (None: a domain of its own)."""
    proof = evidence.enrollments.get(keyid)
    if proof is None:
        b = trust.builders.get(keyid)
        return None if b is None or not b.domain else b.domain
    tx = decode_tx(base64.b64decode(proof.entry))
    assert isinstance(tx, EnrollTx)
    return tx.domain


def _enrolled_arches(evidence: ArtifactEvidence, trust: TrustRoot, keyid: str) -> tuple[str, ...]:
    proof = evidence.enrollments.get(keyid)
    if proof is None:
        b = trust.builders.get(keyid)
        return () if b is None else b.arches
    tx = decode_tx(base64.b64decode(proof.entry))
    assert isinstance(tx, EnrollTx)
    return tx.arches


def _check_subject(
    evidence: ArtifactEvidence,
    verified: VerifiedBundle,
    trust: TrustRoot,
    package: tuple[str, str] | None,
    arch: str | None,
) -> None:
    art = evidence.artifact
    if (art.output, art.sha256) not in verified.subjects:
        named = ", ".join(f"{n} sha256:{s[:12]}…" for n, s in verified.subjects)
        raise DigestError(
            f"the attestation is for {named}, not this artifact (mix-and-match): the node "
            "served an attestation of something else; try another node"
        )
    if art.filename != posixpath.basename(art.output):
        raise DigestError(
            f"the node names the file {art.filename!r} but the builders named it "
            f"{posixpath.basename(art.output)!r}; try another node"
        )
    ext = verified.statement.external
    if ext.arch != art.arch:
        raise DigestError(f"the attestation is for arch {ext.arch}, the node said {art.arch}")
    if arch is not None and ext.arch != arch:
        raise DigestError(f"the attestation is for arch {ext.arch}, you asked for {arch}")
    if package is not None and (ext.recipe, ext.version) != package:
        raise DigestError(
            f"the attestation is for {ext.recipe}=={ext.version}, you asked for "
            f"{package[0]}=={package[1]} (mix-and-match); try another node"
        )
    sizes = _signed_sizes(evidence, art.output)
    if sizes != {art.size}:
        raise DigestError(
            f"the node declares {art.size} bytes but the builders signed "
            f"{', '.join(map(str, sorted(sizes)))} for {art.output}; try another node"
        )
    for b in verified.builder_ids:
        arches = _enrolled_arches(evidence, trust, b)
        if arches and ext.arch not in arches:
            raise EvidenceError(f"builder {b[:12]}… is not enrolled for arch {ext.arch}")


def _signed_sizes(evidence: ArtifactEvidence, output: str) -> set[int]:
    """Sizes of ``output`` in the builders' (already verified) result statements."""
    sizes: set[int] = set()
    for env in evidence.bundle.get("builder_envelopes", ()):
        statement = parse_statement(envelope_payload(env))
        sizes.update(o.size for o in statement.predicate.outputs if o.name == output)
    return sizes


def _check_revocation(evidence: ArtifactEvidence, trust: TrustRoot, checkpoint: Checkpoint) -> None:
    """Raise RevokedError for a proven revocation, EvidenceError for a bad one or for
    an artifact the node does not prove unrevoked at the checkpoint."""
    revoked = evidence.artifact.revoked
    if revoked is None:
        _check_not_revoked(evidence, checkpoint)
        return
    what = "revocation"
    data = _entry_bytes(revoked.proof, what)
    try:
        tx = decode_tx(data)
    except FarmError as exc:
        raise EvidenceError(f"the node says it is revoked, but the entry is bad: {exc}") from None
    if not isinstance(tx, RevokeTx) or tx.artifact != evidence.artifact.sha256:
        raise EvidenceError("the node says it is revoked, but its entry revokes something else")
    reason = verify_operator_signature(tx, trust.operators, trust.origin)
    if reason is not None:
        raise EvidenceError(f"the node says it is revoked, but {reason}")
    _check_included(revoked.proof, data, checkpoint, what)
    raise RevokedError(
        f"revoked on the ledger at index {revoked.proof.index}: {tx.reason}; do not use it "
        "(look for a newer version)"
    )


_UNPROVEN = (
    "the node did not prove the artifact is not revoked ({}): it may be hiding a "
    "revocation; try another node (for a saved evidence file: farm verify --online)"
)


def _check_not_revoked(evidence: ArtifactEvidence, checkpoint: Checkpoint) -> None:
    """Check ``evidence.not_revoked`` against the revoked set ``checkpoint`` (trusted)
    commits to; fail closed when the proof or the commitment is missing."""
    if evidence.not_revoked is None:
        raise EvidenceError(_UNPROVEN.format("the evidence has no absence proof"))
    try:
        count, root = commitment_of(checkpoint)
    except CheckpointError as exc:
        raise EvidenceError(_UNPROVEN.format(exc)) from None
    try:
        proof = AbsenceProof.from_json(evidence.not_revoked.model_dump(mode="json"))
        verify_absent(evidence.artifact.sha256, count, root, proof)
    except ProofError as exc:
        raise EvidenceError(_UNPROVEN.format(f"absence proof: {exc}")) from None
