"""The attestations ``farm bench api`` loads are real ones: every bundle verifies
against the builder and coordinator keys, every receipt's inclusion proof verifies
against a checkpoint co-signed by 3 of 4 validators, and the coordinator's own query
code finds them as the bench expects."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from farm.attestation import AttestationBundle, verify_bundle
from farm.bench.api_load import ARCHES, CHAIN_ID, VERSIONS, make_attestations, store_attestations
from farm.checkpoint import verify_checkpoint
from farm.coordinator.attestations import list_attestations
from farm.coordinator.db import create_tables, make_engine
from farm.merkle import hash_leaf, verify_inclusion
from farm.transactions import make_attest, tx_id

COUNT = 2 * VERSIONS * len(ARCHES) + 3  # two whole packages and part of a third


def test_loaded_attestations_verify_and_are_found_as_expected(tmp_path: Path) -> None:
    made, builders, coordinator = make_attestations(COUNT, workers=1)
    assert len({m.tx_id for m in made}) == COUNT
    engine = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    create_tables(engine)
    validators = [(f"v{i}", Ed25519PrivateKey.generate()) for i in range(4)]
    loaded = store_attestations(engine, made, builders, validators=validators)
    known = {name: key.public_key() for name, key in validators}
    builder_keys = {b.keyid: b.public for b in builders}
    with Session(engine) as session:
        page = list_attestations(session, limit=500)
        assert page.total == COUNT == loaded.count
        for att in page.items:
            bundle = AttestationBundle.model_validate(att.bundle)
            verified = verify_bundle(
                bundle, builder_keys, {coordinator.keyid: coordinator.public}, 3
            )
            assert verified.build_id == att.build_id
            tx = make_attest(bundle)
            assert tx_id(tx) == att.tx_id
            assert att.checkpoint is not None and att.ledger_index is not None
            cp = verify_checkpoint(att.checkpoint, known, 3, CHAIN_ID)
            assert cp.size == att.tree_size
            proof = [bytes.fromhex(h) for h in att.inclusion_proof]
            verify_inclusion(hash_leaf(tx), att.ledger_index, cp.size, proof, cp.root_hash)
        for name, total in loaded.by_name.items():
            assert list_attestations(session, name=name).total == total
        assert sorted(loaded.by_name.values()) == [
            3,
            VERSIONS * len(ARCHES),
            VERSIONS * len(ARCHES),
        ]
        # Pages: full (counted), the last (its length is the count), past the end.
        for offset, items, nxt in ((0, 7, 7), (COUNT - 2, 2, None), (COUNT + 5, 0, None)):
            part = list_attestations(session, limit=7, offset=offset)
            assert (part.total, len(part.items), part.next_offset) == (COUNT, items, nxt)
        assert list_attestations(session, name="no-such-package").total == 0
        sha = loaded.sha256s[0]
        (hit,) = list_attestations(session, sha256=sha).items
        assert sha in {a.sha256 for a in hit.artifacts}
    engine.dispose()
