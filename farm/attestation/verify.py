"""Verify an attestation bundle completely (:func:`verify_bundle`).

Everything is re-derived from the builders' envelopes against enrolled keys only. The
reference checks (:func:`_verify_bundle_checked`, through securesystemslib) say
precisely why a bundle fails; the fast path (:mod:`farm.attestation._fast`) decides
the common valid bundle first and defers to them on anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from farm.attestation._checks import _agree, _check_result_matches, _decode, _short
from farm.attestation._fast import _verify_bundle_fast
from farm.attestation.models import (
    BUILDER_RESULT_BYPRODUCT,
    COORDINATOR_URI,
    AttestationBundle,
    ProvenanceStatement,
    VerifiedBundle,
    envelope_digest,
)
from farm.errors import SignatureError
from farm.result import (
    SignedResult,
    verify_result,
)

__all__ = ["verify_bundle"]


def _claimed_builder(env: Mapping[str, Any]) -> str:
    """The builder id an envelope's statement names (not yet verified)."""
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        builder = json.loads(payload)["predicate"]["builder_id"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SignatureError(f"malformed builder envelope: {exc}") from None
    if not isinstance(builder, str):
        raise SignatureError("malformed builder envelope: builder_id is not a string")
    return builder


def _parse_provenance(payload: bytes) -> ProvenanceStatement:
    try:
        return ProvenanceStatement.model_validate(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SignatureError(f"attestation payload is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SignatureError(
            f"attestation is not a farm SLSA provenance statement: {where}: {first['msg']}"
        ) from None


def _verify_coordinator(
    envelope: Envelope, statement: ProvenanceStatement, coordinator_keys: Mapping[str, SSlibKey]
) -> str:
    if not coordinator_keys:
        raise SignatureError("no coordinator keys: an attestation cannot verify against nobody")
    claimed = statement.predicate.runDetails.builder.id
    if not claimed.startswith(COORDINATOR_URI):
        raise SignatureError(f"attestation builder id {claimed!r} is not a farm coordinator")
    keyid = claimed[len(COORDINATOR_URI) :]
    key = coordinator_keys.get(keyid)
    if key is None or key.keyid != keyid:
        raise SignatureError(f"attestation is from coordinator {_short(keyid)}, which is unknown")
    try:
        envelope.verify([key], 1)
    except VerificationError:
        raise SignatureError(
            f"coordinator {_short(keyid)} signature does not verify over the attestation"
        ) from None
    return keyid


def verify_bundle(
    bundle: AttestationBundle,
    builder_keys: Mapping[str, SSlibKey],
    coordinator_keys: Mapping[str, SSlibKey],
    quorum: int,
) -> VerifiedBundle:
    """Check a bundle completely, against enrolled builder keys and known coordinators.

    A bundle that passes the fast path (:func:`_verify_bundle_fast`: the same checks,
    with Ed25519 verified directly on cached keys and each payload parsed once) is
    returned from it. Anything else goes through the reference path
    (:func:`_verify_bundle_checked`, securesystemslib), which accepts every bundle the
    fast path accepts, decides the rare ones it declines (non-Ed25519 keys, URL-safe
    base64) and says precisely why a bundle fails. An invalid bundle thus costs both.

    Raises:
        SignatureError: a bad or unknown coordinator or builder signature, a builder
            result for another build, recipe, architecture or image, a failed result,
            subjects or byproducts that do not match the builder results.
        QuorumError: fewer than ``quorum`` distinct builders, or differing digests.
    """
    fast = _verify_bundle_fast(bundle, builder_keys, coordinator_keys, quorum)
    if fast is not None:
        return fast
    return _verify_bundle_checked(bundle, builder_keys, coordinator_keys, quorum)


def _verify_bundle_checked(
    bundle: AttestationBundle,
    builder_keys: Mapping[str, SSlibKey],
    coordinator_keys: Mapping[str, SSlibKey],
    quorum: int,
) -> VerifiedBundle:
    """:func:`verify_bundle` through securesystemslib, raising the precise error.

    Raises:
        SignatureError: a bad or unknown coordinator or builder signature, a builder
            result for another build, recipe, architecture or image, a failed result,
            subjects or byproducts that do not match the builder results.
        QuorumError: fewer than ``quorum`` distinct builders, or differing digests.
    """
    envelope = _decode(bundle.envelope, "attestation envelope")
    statement = _parse_provenance(envelope.payload)
    coordinator_id = _verify_coordinator(envelope, statement, coordinator_keys)
    ext = statement.external
    results: list[SignedResult] = []
    for env in bundle.builder_envelopes:
        claimed = _claimed_builder(env)
        key = builder_keys.get(claimed)
        if key is None or key.keyid != claimed:
            raise SignatureError(f"builder {_short(claimed)} is not enrolled")
        result = verify_result(env, [key])
        _check_result_matches(result, statement.build_id, ext.recipeDigest, ext.arch)
        results.append(result)
    digests, builders = _agree(results, quorum)
    images = {r.predicate.image_digest.split(":", 1)[1] for r in results}
    deps = statement.predicate.buildDefinition.resolvedDependencies
    stated_images = {d.digest.get("sha256") for d in deps if d.name == "image"}
    if len(images) != 1 or stated_images != images:
        raise SignatureError("builder images do not match the attested image")
    stated = {(s.name, s.digest.get("sha256", "")) for s in statement.subject}
    if stated != set(digests) or len(statement.subject) != len(digests):
        raise SignatureError("attestation subjects are not the outputs the builders agreed on")
    byproducts = {
        (b.name, b.digest.get("sha256"))
        for b in statement.predicate.runDetails.byproducts
        if b.name is not None and b.name.startswith(BUILDER_RESULT_BYPRODUCT)
    }
    carried = {
        (BUILDER_RESULT_BYPRODUCT + r.predicate.builder_id, envelope_digest(r.envelope))
        for r in results
    }
    if byproducts != carried:
        raise SignatureError("attestation byproducts do not name the builder envelopes carried")
    return VerifiedBundle(
        statement=statement,
        coordinator_id=coordinator_id,
        builder_ids=builders,
        subjects=tuple(sorted(digests)),
    )
