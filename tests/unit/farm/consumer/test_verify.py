"""The consumer's verdict on evidence built like the ledger builds it (real keys, DSSE
envelopes, Merkle log, cosigned checkpoints): what passes, and every attack refused."""

from __future__ import annotations

import base64
import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.consumer.errors import (
    DigestError,
    EvidenceError,
    RefusedError,
    RevokedError,
    RollbackError,
    StaleError,
)
from farm.consumer.trust import TrustMemory, TrustRoot
from farm.consumer.verify import VerifiedArtifact, consistency_needed, describe_age, verify_artifact
from farm.evidence import ArtifactEvidence, NotRevokedProof
from farm.keys import generate_key
from farm.transactions import make_enroll, make_revoke
from ledger.revoked_set import RevokedSet
from tests.support.attest_world import ARCH, WHEEL
from tests.support.evidence import BLOB, NOW, SHA, MiniLedger
from tests.support.ledger_fixtures import CHAIN

DAY = 86400.0


@pytest.fixture
def ledger() -> MiniLedger:
    return MiniLedger()


def check(
    ledger: MiniLedger,
    evidence: ArtifactEvidence,
    memory: TrustMemory | None = None,
    **kw: Any,
) -> VerifiedArtifact:
    values: dict[str, Any] = {
        "digest": SHA,
        "size": evidence.artifact.size,
        "now": NOW + 30.0,
        "max_age": DAY,
    }
    values.update(kw)
    return verify_artifact(evidence, TrustRoot.from_genesis(ledger.genesis), memory, **values)


def test_evidence_as_the_ledger_makes_it_verifies(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    got = check(ledger, ledger.evidence(index, bundle), package=("demo", "1.0"), arch=ARCH)
    assert (got.name, got.version, got.arch, got.filename) == ("demo", "1.0", ARCH, WHEEL)
    assert got.sha256 == SHA
    assert set(got.builders) == {k.keyid for k in ledger.world.builders[:3]}
    assert got.coordinator == ledger.world.coordinator.keyid
    assert got.attestation_index == index == 5
    assert got.tree_size == 6
    assert got.checkpoint_age == 30.0
    assert got.memory.tree_size == 6
    assert got.memory.root == ledger.log.root()


def test_genesis_builders_need_no_enrollment(ledger: MiniLedger) -> None:
    from ledger.genesis import Genesis, GenesisBuilder

    ledger.genesis = Genesis.model_validate(
        {
            **ledger.genesis.model_dump(),
            "builders": [
                GenesisBuilder(key=k.public_dict(), arches=(ARCH,)).model_dump()
                for k in ledger.world.builders[:3]
            ],
        }
    )
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, enrollments={}, genesis_hash=ledger.genesis.hash)
    assert check(ledger, evidence).attestation_index == index


def test_tampered_blob_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    with pytest.raises(DigestError, match=r"refused demo-1.0.*bytes hash to sha256:0000"):
        check(ledger, ledger.evidence(index, bundle), digest="0" * 64)


def test_node_declaring_the_tampered_digest_is_refused_as_mix_and_match(
    ledger: MiniLedger,
) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, sha="e" * 64)
    with pytest.raises(DigestError, match="mix-and-match"):
        check(ledger, evidence, digest="e" * 64)


def test_attestation_of_another_artifact_is_refused(ledger: MiniLedger) -> None:
    ledger.attest()
    other_index, other = ledger.attest(sha="7" * 64, build_id="build-other")
    evidence = ledger.evidence(other_index, other)  # declares SHA, attests 777…
    with pytest.raises(DigestError, match=r"attestation is for demo-1.0.*sha256:777777777777"):
        check(ledger, evidence)


def test_other_package_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    with pytest.raises(DigestError, match=r"you asked for numpy==2.0"):
        check(ledger, ledger.evidence(index, bundle), package=("numpy", "2.0"))
    with pytest.raises(DigestError, match=r"you asked for arm64"):
        check(ledger, ledger.evidence(index, bundle), arch="arm64")


def test_entry_of_another_bundle_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    other_index, _ = ledger.attest(sha="7" * 64, build_id="build-other")
    evidence = ledger.evidence(index, bundle, attestation=ledger.proof(other_index))
    evidence = evidence.model_copy(
        update={"artifact": evidence.artifact.model_copy(update={"attestation_index": other_index})}
    )
    with pytest.raises(EvidenceError, match="not the attest transaction of the bundle"):
        check(ledger, evidence)


def test_bundle_not_committed_is_refused(ledger: MiniLedger) -> None:
    index, _ = ledger.attest()
    forged = ledger.world.bundle(build_id="never-committed")
    with pytest.raises(EvidenceError, match="not the attest transaction"):
        check(ledger, ledger.evidence(index, forged))


def test_wrong_inclusion_proof_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    bad = evidence.attestation.model_copy(
        update={"inclusion_proof": ["00" * 32, *evidence.attestation.inclusion_proof[1:]]}
    )
    with pytest.raises(EvidenceError, match=r"index 5 is not in the co-signed log.*root mismatch"):
        check(ledger, evidence.model_copy(update={"attestation": bad}))


def test_too_few_checkpoint_signatures_are_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, note=ledger.note(signers=2))
    with pytest.raises(EvidenceError, match=r"2/4 known validator signatures, need 3"):
        check(ledger, evidence)


def test_checkpoint_signed_by_strangers_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    impostor = MiniLedger()
    impostor.entries, impostor.log = ledger.entries, ledger.log
    evidence = ledger.evidence(index, bundle, note=impostor.note())
    with pytest.raises(EvidenceError, match=r"0/4 known validator signatures"):
        check(ledger, evidence)


def test_old_checkpoint_is_refused_unless_allowed(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, note=ledger.note(at=NOW - 3 * 86400))
    with pytest.raises(StaleError, match=r"checkpoint is 3.0 days old, more than .* 24.0 h"):
        check(ledger, evidence)
    got = check(ledger, evidence, allow_stale=True)
    assert got.checkpoint_age == pytest.approx(3 * DAY + 30)


def test_future_checkpoint_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, note=ledger.note(at=NOW + 3600))
    with pytest.raises(StaleError, match="in the future"):
        check(ledger, evidence)


def test_smaller_tree_than_remembered_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    old = ledger.evidence(index, bundle)
    ledger.attest(sha="8" * 64, build_id="b2")
    memory = TrustMemory(
        genesis_hash=ledger.genesis.hash,
        tree_size=ledger.log.size,
        root_hash=ledger.log.root().hex(),
    )
    with pytest.raises(RollbackError, match=r"6 entries but this machine already verified 7"):
        check(ledger, old, memory)


def test_larger_tree_needs_a_valid_consistency_proof(ledger: MiniLedger) -> None:
    first, _ = ledger.attest(sha="8" * 64, build_id="b0")
    memory = TrustMemory(
        genesis_hash=ledger.genesis.hash, tree_size=first + 1, root_hash=ledger.log.root().hex()
    )
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    assert consistency_needed(evidence.checkpoint, memory) == (6, 7)
    with pytest.raises(RollbackError, match="no consistency proof"):
        check(ledger, evidence, memory)
    proof = ledger.consistency(6)
    got = check(ledger, evidence, memory, consistency=proof)
    assert got.memory.tree_size == 7
    with pytest.raises(RollbackError, match="does not extend"):
        check(ledger, evidence, memory, consistency=[b"\x01" * 32 for _ in proof])


def test_forked_tree_of_same_size_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    memory = TrustMemory(
        genesis_hash=ledger.genesis.hash, tree_size=ledger.log.size, root_hash="ab" * 32
    )
    with pytest.raises(RollbackError, match="forked"):
        check(ledger, ledger.evidence(index, bundle), memory)


def test_revoked_artifact_is_refused_with_the_reason(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    at = ledger.revoke(reason="CVE-2026-1234: backdoor")
    with pytest.raises(RevokedError, match=r"revoked on the ledger at index 6: CVE-2026-1234"):
        check(ledger, ledger.evidence(index, bundle, revoked_at=at))


def test_revocation_by_a_stranger_is_not_believed_but_still_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    forged = make_revoke(generate_key(), SHA, "lies", chain=CHAIN)
    at = ledger.append(forged)
    with pytest.raises(EvidenceError, match="unknown operator"):
        check(ledger, ledger.evidence(index, bundle, revoked_at=at))


def test_enrollment_signed_by_an_unknown_operator_is_refused(ledger: MiniLedger) -> None:
    rogue = generate_key()
    ledger.world.operator, genuine = rogue, ledger.world.operator
    ledger.enrolled = {}
    for i, k in enumerate(ledger.world.builders):
        ledger.enrolled[k.keyid] = ledger.append(
            make_enroll(rogue, k.public_dict(), (ARCH,), f"h{i}", domain=f"h{i}", chain=CHAIN)
        )
    ledger.world.operator = genuine
    index, bundle = ledger.attest()
    with pytest.raises(EvidenceError, match=r"enrollment of builder .*unknown operator"):
        check(ledger, ledger.evidence(index, bundle))


def test_missing_enrollment_fails_closed(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    kept = dict(list(evidence.enrollments.items())[:2])
    with pytest.raises(EvidenceError, match="is not enrolled"):
        check(ledger, evidence.model_copy(update={"enrollments": kept}))


def test_enrollment_of_another_key_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    a, b = list(evidence.enrollments)[:2]
    swapped = {**evidence.enrollments, a: evidence.enrollments[b]}
    with pytest.raises(EvidenceError, match="enrolls another key"):
        check(ledger, evidence.model_copy(update={"enrollments": swapped}))


def test_evidence_of_another_ledger_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, genesis_hash="f" * 64)
    with pytest.raises(EvidenceError, match="not the pinned genesis"):
        check(ledger, evidence)


def test_entry_that_is_not_base64_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    bad = evidence.attestation.model_copy(update={"entry": "not base64!"})
    with pytest.raises(EvidenceError, match="not base64"):
        check(ledger, evidence.model_copy(update={"attestation": bad}))
    assert base64.b64decode(evidence.attestation.entry)


def test_wrong_size_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    with pytest.raises(DigestError, match="the node declared"):
        check(ledger, ledger.evidence(index, bundle), size=3)


def test_every_refusal_is_one_line(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, note=ledger.note(signers=1))
    with pytest.raises(RefusedError) as info:
        check(ledger, evidence)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5 s"), (600, "10 min"), (5400, "90 min"), (7200, "2.0 h"), (3 * 86400, "3.0 days")],
)
def test_describe_age(seconds: float, text: str) -> None:
    assert describe_age(seconds) == text


def test_size_the_builders_did_not_sign_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle, size=len(BLOB) + 1)
    with pytest.raises(
        DigestError, match=rf"declares {len(BLOB) + 1} bytes but the builders signed {len(BLOB)}"
    ):
        check(ledger, evidence, size=len(BLOB) + 1)


def test_file_name_the_builders_did_not_give_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    renamed = evidence.artifact.model_copy(update={"filename": "demo-9.9-py3-none-any.whl"})
    with pytest.raises(DigestError, match=r"names the file 'demo-9.9-py3-none-any.whl' but"):
        check(ledger, evidence.model_copy(update={"artifact": renamed}))


@functools.cache
def _shared() -> tuple[MiniLedger, int, Any]:
    ledger = MiniLedger()
    index, bundle = ledger.attest()
    return ledger, index, bundle


@settings(max_examples=40, deadline=None)
@given(signers=st.integers(1, 4), age=st.integers(-300, 3 * 86400))
def test_accepted_exactly_when_2f_plus_1_sign_recently(signers: int, age: int) -> None:
    ledger, index, bundle = _shared()
    evidence = ledger.evidence(index, bundle, note=ledger.note(at=NOW - age, signers=signers))
    fresh = -60 <= age <= DAY
    try:
        got = check(ledger, evidence, now=float(NOW))
    except EvidenceError:
        assert signers < 3
    except StaleError:
        assert signers >= 3 and not fresh
    else:
        assert signers >= 3 and fresh
        assert got.checkpoint_age == age


# --------------------------------------------------------------------------- hidden revocations


def _absence(evidence: ArtifactEvidence) -> dict[str, Any]:
    assert evidence.not_revoked is not None
    return evidence.not_revoked.model_dump(mode="json")


def _with_absence(evidence: ArtifactEvidence, proof: dict[str, Any] | None) -> ArtifactEvidence:
    value = None if proof is None else NotRevokedProof.model_validate(proof)
    return evidence.model_copy(update={"not_revoked": value})


def _revoke_others(ledger: MiniLedger, *digits: str) -> None:
    """Revoke artifacts ``digit * 64`` (attested first), around SHA in sort order."""
    for d in digits:
        ledger.attest(sha=d * 64, build_id=f"build-{d}")
        ledger.revoke(sha=d * 64, reason=f"CVE-{d}")


def test_unrevoked_artifact_is_proven_absent_between_its_neighbours(ledger: MiniLedger) -> None:
    _revoke_others(ledger, "0", "f")  # one member below SHA, one above
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    proof = _absence(evidence)
    assert proof["count"] == 2
    assert (proof["left"]["index"], proof["right"]["index"]) == (0, 1)
    assert proof["left"]["sha256"] < SHA < proof["right"]["sha256"]
    assert check(ledger, evidence).attestation_index == index


@pytest.mark.parametrize("digits", [(), ("0",), ("f",), ("0", "1", "f")])
def test_absence_is_proven_at_every_position(ledger: MiniLedger, digits: tuple[str, ...]) -> None:
    _revoke_others(ledger, *digits)
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    assert _absence(evidence)["count"] == len(digits)
    assert check(ledger, evidence).tree_size == ledger.log.size


def test_a_node_hiding_a_revocation_is_refused(ledger: MiniLedger) -> None:
    _revoke_others(ledger, "0", "f")
    index, bundle = ledger.attest()
    ledger.revoke(reason="CVE-2026-1234: backdoor")
    hidden = ledger.evidence(index, bundle)  # no `revoked`, and no proof to give
    assert hidden.artifact.revoked is None and hidden.not_revoked is None
    with pytest.raises(EvidenceError, match="did not prove the artifact is not revoked") as info:
        check(ledger, hidden)
    assert "no absence proof" in str(info.value) and "try another node" in str(info.value)


def test_a_forged_absence_proof_for_a_revoked_artifact_is_refused(ledger: MiniLedger) -> None:
    _revoke_others(ledger, "0", "f")
    index, bundle = ledger.attest()
    ledger.revoke(reason="CVE-2026-1234: backdoor")
    hidden = ledger.evidence(index, bundle)
    # The proof of the set as it was before the revocation (one size too early).
    before = ledger.not_revoked(SHA, ledger.log.size - 1).model_dump(mode="json")
    with pytest.raises(EvidenceError, match=r"for 2 revocations, not 3"):
        check(ledger, _with_absence(hidden, before))
    # The true neighbours 0… and f… with adjacent indexes (f… is really at 2).
    real = ledger.revoked_set()
    fake = RevokedSet(["0" * 64, "f" * 64, "e" * 64]).absence_proof(SHA).to_json()
    assert fake["count"] == len(real) == 3
    with pytest.raises(EvidenceError, match="not in the revoked set"):
        check(ledger, _with_absence(hidden, fake))
    # Proofs of true members with the revoked artifact's own entry skipped.
    skipping = real.absence_proof("0" * 63 + "1").to_json()  # left 0…0, right = SHA itself
    skipping["right"] = real.absence_proof("e" * 64).to_json()["right"]  # f…f at index 2
    with pytest.raises(EvidenceError, match="not adjacent"):
        check(ledger, _with_absence(hidden, skipping))
    # SHA itself as a neighbour.
    with pytest.raises(EvidenceError, match="neighbour is not above"):
        check(ledger, _with_absence(hidden, real.absence_proof("0" * 63 + "1").to_json()))


def test_a_missing_absence_proof_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    with pytest.raises(EvidenceError, match=r"not revoked \(the evidence has no absence proof\)"):
        check(ledger, _with_absence(evidence, None))


def test_an_absence_proof_of_another_size_is_refused(ledger: MiniLedger) -> None:
    _revoke_others(ledger, "0")
    index, bundle = ledger.attest()
    stale = _absence(ledger.evidence(index, bundle))  # count 1
    _revoke_others(ledger, "f")
    evidence = ledger.evidence(index, bundle)
    assert check(ledger, evidence)
    with pytest.raises(EvidenceError, match=r"absence proof: .*for 1 revocations, not 2"):
        check(ledger, _with_absence(evidence, stale))
    # The count edited to match, the path still for a set of one: refused.
    with pytest.raises(EvidenceError, match="left neighbour is not in the revoked set"):
        check(ledger, _with_absence(evidence, {**stale, "count": 2}))


@pytest.mark.parametrize(
    "tamper",
    ["neighbour digest", "neighbour index", "path bit", "drop right", "drop left", "swap"],
)
def test_a_tampered_absence_proof_is_refused(ledger: MiniLedger, tamper: str) -> None:
    _revoke_others(ledger, "0", "1", "f")
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    proof = _absence(evidence)
    left, right = proof["left"], proof["right"]
    if tamper == "neighbour digest":
        right["sha256"] = "e" * 64
    elif tamper == "neighbour index":
        left["index"] = 0
    elif tamper == "path bit":
        path = bytearray.fromhex(right["path"][0])
        path[0] ^= 1
        right["path"][0] = path.hex()
    elif tamper == "drop right":
        proof["right"] = None
    elif tamper == "drop left":
        proof["left"] = None
    else:
        proof["left"], proof["right"] = right, left
    with pytest.raises(EvidenceError, match="did not prove the artifact is not revoked"):
        check(ledger, _with_absence(evidence, proof))


def test_a_checkpoint_without_the_revoked_set_is_refused(ledger: MiniLedger) -> None:
    index, bundle = ledger.attest()
    bare = ledger.evidence(index, bundle, note=ledger.note(extensions=()))
    with pytest.raises(EvidenceError, match="has no farm-revoked/v1 lines") as info:
        check(ledger, bare)
    assert "did not prove the artifact is not revoked" in str(info.value)
    doubled = ledger.revoked_set().extension()
    twice = ledger.evidence(index, bundle, note=ledger.note(extensions=(doubled, doubled)))
    with pytest.raises(EvidenceError, match="has 2 farm-revoked/v1 lines"):
        check(ledger, twice)
    lying = RevokedSet(["0" * 64]).extension()  # co-signed, but not this absence proof's set
    with pytest.raises(EvidenceError, match="for 0 revocations, not 1"):
        check(ledger, ledger.evidence(index, bundle, note=ledger.note(extensions=(lying,))))


def _reenroll(ledger: MiniLedger, arches: tuple[str, ...]) -> None:
    """Enroll every builder again, for ``arches``, with the genuine operator; the
    evidence then rests on these newer entries."""
    for i, k in enumerate(ledger.world.builders):
        ledger.enrolled[k.keyid] = ledger.append(
            make_enroll(
                ledger.world.operator, k.public_dict(), arches, f"h{i}", domain=f"h{i}", chain=CHAIN
            )
        )


def test_an_enrollment_recorded_after_the_attestation_is_refused(ledger: MiniLedger) -> None:
    # A builder enrolled only after the attestation could not have been trusted when
    # it was committed: a node pairing the attestation with a later enrollment is refused
    # even though that enrollment is genuine and proven included.
    index, bundle = ledger.attest()
    _reenroll(ledger, (ARCH,))
    evidence = ledger.evidence(index, bundle)
    assert all(p.index > index for p in evidence.enrollments.values())
    with pytest.raises(EvidenceError, match="comes after the attestation it should support"):
        check(ledger, evidence)


def test_an_arch_other_than_the_node_declared_is_refused(ledger: MiniLedger) -> None:
    # The builders attested amd64; the node serves the file as arm64 (a consumer who
    # asks for no arch in particular would install it on the wrong machine).
    index, bundle = ledger.attest()
    evidence = ledger.evidence(index, bundle)
    wrong = evidence.model_copy(
        update={"artifact": evidence.artifact.model_copy(update={"arch": "arm64"})}
    )
    with pytest.raises(DigestError, match=f"attestation is for arch {ARCH}, the node said arm64"):
        check(ledger, wrong)


def test_a_builder_not_enrolled_for_the_arch_is_refused(ledger: MiniLedger) -> None:
    # The operator enrolled these builders for arm64 only; their amd64 attestation has
    # signatures from keys the ledger never trusted for amd64.
    ledger.enrolled = {}
    _reenroll(ledger, ("arm64",))
    index, bundle = ledger.attest()
    with pytest.raises(EvidenceError, match=f"is not enrolled for arch {ARCH}"):
        check(ledger, ledger.evidence(index, bundle))


@pytest.mark.parametrize(
    ("domains", "refused"),
    [(["org-a", "org-b", "org-c"], False), (["org-a", "org-a", "org-b"], True)],
)
def test_the_agreeing_builders_must_span_quorum_domains(
    ledger: MiniLedger, domains: list[str], refused: bool
) -> None:
    # A node serving enrollments that put two agreeing builders in one domain cannot make
    # the consumer count them twice (ADR 35): the domains come from signed enroll entries.
    ledger.enrolled = {}
    for i, (k, d) in enumerate(zip(ledger.world.builders, domains, strict=False)):
        ledger.enrolled[k.keyid] = ledger.append(
            make_enroll(
                ledger.world.operator, k.public_dict(), (ARCH,), f"h{i}", domain=d, chain=CHAIN
            )
        )
    index, bundle = ledger.attest()
    if refused:
        with pytest.raises(EvidenceError, match=r"domain_shortfall.* span 2 independence"):
            check(ledger, ledger.evidence(index, bundle))
    else:
        assert check(ledger, ledger.evidence(index, bundle)).builders
