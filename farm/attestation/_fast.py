"""The fast path of :func:`farm.attestation.verify_bundle`: the reference checks, with
Ed25519 verified directly on cached keys and each payload parsed once.

Everything here returns None as soon as anything is not exactly as the reference
path (securesystemslib's Envelope and SSlibKey, verify_result) would accept it; the
caller then runs the reference path, which raises the precise error. So the fast
path only ever has to agree with the reference path on *success*, and every step
mirrors one there:

- Envelope.from_dict: ``payload`` and every signature's ``sig`` are base64 text
  (standard alphabet here; the URL-safe fallback goes the reference way), each
  signature has a ``keyid`` and no key id appears twice; ``payloadType`` must be
  PAYLOAD_TYPE (checked by farm before any signature);
- Envelope.verify([key], 1): the signature whose keyid equals the key's keyid must
  verify over the DSSE PAE ``"DSSEv1" SP len(type) SP type SP len(body) SP body``
  (only ed25519/ed25519 keys here; checked with libsodium, farm.ed25519, which is
  stricter than the cryptography/OpenSSL check SSlibKey._verify makes);
- the statement is parsed from the payload bytes exactly as received, once.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError
from securesystemslib.signer import SSlibKey

from farm import ed25519
from farm.attestation._checks import _agree
from farm.attestation.models import (
    BUILDER_RESULT_BYPRODUCT,
    COORDINATOR_URI,
    AttestationBundle,
    ProvenanceStatement,
    VerifiedBundle,
)
from farm.canonical import sha256_bytes
from farm.errors import QuorumError
from farm.result import (
    LOG_SUBJECT,
    PAYLOAD_TYPE,
    ResultStatement,
    SignedResult,
)

__all__: list[str] = []

_M = TypeVar("_M", bound=BaseModel)


def _b64(value: object) -> bytes | None:
    """Standard base64 text decoded, or None; takes only what
    ``base64.b64decode(value.encode(), validate=True)`` takes, and decodes it alike.

    Strict mode accepts only alphabet characters with correct padding at the end,
    which the validate=True pattern (``[A-Za-z0-9+/]*={0,2}``) always matches; it
    skips that regular expression over the whole text (a third of the decoding time).
    """
    if not isinstance(value, str):
        return None
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=4096)
def _ed25519(public_hex: str) -> bytes | None:
    """The raw 32 bytes of an ed25519 public key in hex that cryptography (what the
    reference path uses) takes as a key (cached), or None."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).public_bytes_raw()
    except ValueError:
        return None


def _pae(payload: bytes) -> bytes:
    kind = PAYLOAD_TYPE.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _open_envelope(data: object) -> tuple[bytes, dict[str, bytes]] | None:
    """(payload, keyid → signature) of a well-formed in-toto DSSE envelope, or None."""
    if not isinstance(data, dict) or data.get("payloadType") != PAYLOAD_TYPE:
        return None
    payload = _b64(data.get("payload"))
    signatures = data.get("signatures")
    if payload is None or not isinstance(signatures, list):
        return None
    sigs: dict[str, bytes] = {}
    for entry in signatures:
        if not isinstance(entry, dict) or "keyid" not in entry:
            return None
        keyid, sig = entry["keyid"], _b64(entry.get("sig"))
        if sig is None or not isinstance(keyid, str) or keyid in sigs:
            return None
        sigs[keyid] = sig
    return payload, sigs


def _signed_by(payload: bytes, sigs: Mapping[str, bytes], key: SSlibKey) -> bool:
    """Whether ``key`` (ed25519 only) signed the DSSE PAE of ``payload``."""
    if key.keytype != "ed25519" or key.scheme != "ed25519":
        return False
    sig = sigs.get(key.keyid)
    public = key.keyval.get("public")
    raw = _ed25519(public) if isinstance(public, str) else None
    if sig is None or raw is None:
        return False
    # libsodium (farm.ed25519) is the stricter checker: what it accepts OpenSSL, which
    # the reference path uses, accepts too; what it refuses goes the reference way.
    return ed25519.verify(raw, sig, _pae(payload))


def _parse_fast(model: type[_M], payload: bytes) -> _M | None:
    """``model.model_validate(json.loads(payload))`` when that succeeds, parsed by
    pydantic's own JSON parser in one pass; None when this parser refuses.

    It never accepts what the reference refuses, nor reads it otherwise: both take the
    last of duplicate keys, refuse the same malformed JSON (this one also refuses what
    only the standard library takes: UTF-16/32, a byte order mark, lone surrogates),
    and JSON-mode validation takes from a JSON value exactly what Python-mode
    validation takes from its json.loads form (pydantic's conversion table;
    differential tests in tests/unit/farm/test_attestation_fast.py).
    """
    try:
        return model.model_validate_json(payload)
    except ValidationError:
        return None


def _fast_result(
    env: object, builder_keys: Mapping[str, SSlibKey]
) -> tuple[SignedResult, str] | None:
    """(verify_result(env, [enrolled key of its builder]), envelope_digest(env)) when
    both succeed, else None."""
    opened = _open_envelope(env)
    if opened is None:
        return None
    payload, sigs = opened
    statement = _parse_fast(ResultStatement, payload)
    if statement is None:
        return None
    # The reference path looks the key up by the raw builder_id of the payload; a
    # validated str field is that very string.
    claimed = statement.predicate.builder_id
    key = builder_keys.get(claimed)
    if key is None or key.keyid != claimed or not _signed_by(payload, sigs, key):
        return None
    p = statement.predicate
    declared = (
        [(o.name, o.sha256) for o in p.outputs] if p.outputs else [(LOG_SUBJECT, p.log_sha256)]
    )
    subjects = [(s.get("name"), s.get("digest", {}).get("sha256")) for s in statement.subject]
    if subjects != declared:
        return None
    assert isinstance(env, dict)
    # Validated, not model_construct: with pydantic 2.14 constructing is the slower
    # (4.2 vs 2.0 us; the statement instance is not validated again either way).
    return SignedResult(envelope=env, statement=statement), sha256_bytes(payload)


def _verify_bundle_fast(  # noqa: PLR0911 - one early None per check, in the reference order
    bundle: AttestationBundle,
    builder_keys: Mapping[str, SSlibKey],
    coordinator_keys: Mapping[str, SSlibKey],
    quorum: int,
) -> VerifiedBundle | None:
    """The checks of :func:`_verify_bundle_checked`, in its order; None on any failure."""
    opened = _open_envelope(bundle.envelope)
    if opened is None:
        return None
    payload, sigs = opened
    statement = _parse_fast(ProvenanceStatement, payload)
    if statement is None:
        return None
    claimed = statement.predicate.runDetails.builder.id
    if not coordinator_keys or not claimed.startswith(COORDINATOR_URI):
        return None
    coordinator_id = claimed[len(COORDINATOR_URI) :]
    ckey = coordinator_keys.get(coordinator_id)
    if ckey is None or ckey.keyid != coordinator_id or not _signed_by(payload, sigs, ckey):
        return None
    ext = statement.external
    results: list[SignedResult] = []
    payload_digests: list[str] = []
    for env in bundle.builder_envelopes:
        checked = _fast_result(env, builder_keys)
        if checked is None:
            return None
        result, payload_digest = checked
        p = result.predicate
        if (
            p.build_id != statement.build_id
            or p.recipe_digest != ext.recipeDigest
            or p.arch != ext.arch
            or p.status != "succeeded"
        ):
            return None
        results.append(result)
        payload_digests.append(payload_digest)
    try:
        digests, builders = _agree(results, quorum)
    except QuorumError:
        return None
    images = {r.predicate.image_digest.split(":", 1)[1] for r in results}
    deps = statement.predicate.buildDefinition.resolvedDependencies
    stated_images = {d.digest.get("sha256") for d in deps if d.name == "image"}
    if len(images) != 1 or stated_images != images:
        return None
    stated = {(s.name, s.digest.get("sha256", "")) for s in statement.subject}
    if stated != set(digests) or len(statement.subject) != len(digests):
        return None
    byproducts = {
        (b.name, b.digest.get("sha256"))
        for b in statement.predicate.runDetails.byproducts
        if b.name is not None and b.name.startswith(BUILDER_RESULT_BYPRODUCT)
    }
    carried = {
        (BUILDER_RESULT_BYPRODUCT + r.predicate.builder_id, d)
        for r, d in zip(results, payload_digests, strict=True)
    }
    if byproducts != carried:
        return None
    return VerifiedBundle(
        statement=statement,
        coordinator_id=coordinator_id,
        builder_ids=builders,
        subjects=tuple(sorted(digests)),
    )
