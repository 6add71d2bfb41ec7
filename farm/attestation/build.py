"""Make and sign the attestation bundle of a verified build (:func:`build_bundle`).

Invariant: a bundle is never made that does not meet the quorum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from farm.attestation._checks import _agree, _check_result_matches, _decode
from farm.attestation.models import (
    BUILD_TYPE,
    BUILDER_RESULT_BYPRODUCT,
    SLSA_PROVENANCE_V1,
    AttestationBundle,
    BuildDefinition,
    ExternalParameters,
    ProvenancePredicate,
    ProvenanceStatement,
    ResourceDescriptor,
    RunDetails,
    _Builder,
    _Metadata,
    _Subject,
    coordinator_uri,
    envelope_digest,
)
from farm.canonical import canonical_json
from farm.errors import QuorumError
from farm.keys import KeyPair
from farm.quorum import require_quorum, tally
from farm.result import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    SignedResult,
    parse_statement,
    verify_result,
)

__all__ = ["build_bundle"]


def _provenance(
    recipe_digest: str,
    name: str,
    version: str,
    arch: str,
    build_id: str,
    image_digest: str,
    source: ResourceDescriptor | None,
    coordinator_id: str,
    quorum: int,
    digests: frozenset[tuple[str, str]],
    envelopes: Sequence[tuple[str, dict[str, Any]]],
    cross_arch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    deps = [ResourceDescriptor(name="image", digest={"sha256": image_digest.split(":", 1)[1]})]
    if source is not None:
        deps.insert(0, source)
    statement = ProvenanceStatement(
        type_=STATEMENT_TYPE,
        subject=tuple(_Subject(name=n, digest={"sha256": s}) for n, s in sorted(digests)),
        predicateType=SLSA_PROVENANCE_V1,
        predicate=ProvenancePredicate(
            buildDefinition=BuildDefinition(
                buildType=BUILD_TYPE,
                externalParameters=ExternalParameters(
                    recipe=name, version=version, recipeDigest=recipe_digest, arch=arch
                ),
                internalParameters={"quorum": quorum}
                | ({"crossArch": dict(cross_arch)} if cross_arch is not None else {}),
                resolvedDependencies=tuple(deps),
            ),
            runDetails=RunDetails(
                builder=_Builder(id=coordinator_uri(coordinator_id)),
                metadata=_Metadata(invocationId=build_id),
                byproducts=tuple(
                    ResourceDescriptor(
                        name=BUILDER_RESULT_BYPRODUCT + builder,
                        digest={"sha256": envelope_digest(env)},
                        mediaType="application/vnd.dsse.envelope.v1+json",
                    )
                    for builder, env in envelopes
                ),
            ),
        ),
    )
    value: dict[str, Any] = statement.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def build_bundle(
    recipe_digest: str,
    name: str,
    version: str,
    arch: str,
    build_id: str,
    builder_envelopes: Sequence[dict[str, Any]],
    coordinator_key: KeyPair,
    quorum: int,
    *,
    builder_keys: Mapping[str, SSlibKey] | None = None,
    source: ResourceDescriptor | None = None,
    cross_arch: Mapping[str, Any] | None = None,
) -> AttestationBundle:
    """Make and sign the bundle of a verified build.

    ``cross_arch`` is the coordinator's comparison of this build's pure wheels with the
    other architectures' builds of the recipe (the verdict's ``cross_arch``, ADR 36, 42),
    carried as ``internalParameters.crossArch``: what the coordinator signs it saw, which
    validators do not re-check (they see one architecture's build).

    Every builder envelope's signature is verified against ``builder_keys`` when given
    (the coordinator verified them on receipt otherwise; the ledger re-checks every one
    against enrolled keys), each must be a success for ``build_id``, ``recipe_digest``
    and ``arch``, and at least ``quorum`` distinct builders must agree on one digest
    set. Envelopes are carried exactly as given.

    Raises:
        SignatureError: an envelope that does not verify or is for another build.
        QuorumError: builders disagree or too few distinct builders succeeded.
    """
    results: list[SignedResult] = []
    for env in builder_envelopes:
        if builder_keys is None:
            stmt = parse_statement(_decode(env, "builder envelope").payload)
            result = SignedResult(envelope=env, statement=stmt)
        else:
            result = verify_result(env, list(builder_keys.values()))
        _check_result_matches(result, build_id, recipe_digest, arch)
        results.append(result)
    require_quorum(tally(results, quorum))
    digests, _ = _agree(results, quorum)
    images = {r.predicate.image_digest for r in results}
    if len(images) != 1:
        raise QuorumError(f"builders used {len(images)} different images")
    payload = canonical_json(
        _provenance(
            recipe_digest,
            name,
            version,
            arch,
            build_id,
            images.pop(),
            source,
            coordinator_key.keyid,
            quorum,
            digests,
            [(r.predicate.builder_id, r.envelope) for r in results],
            cross_arch,
        )
    )
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(coordinator_key.signer)
    return AttestationBundle(
        envelope=envelope.to_dict(), builder_envelopes=tuple(r.envelope for r in results)
    )
