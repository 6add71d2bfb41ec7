"""Attestation bundles: what the coordinator submits to the ledger for one verified build.

A bundle is two things:

* the coordinator's DSSE envelope over an in-toto Statement v1 with the SLSA
  provenance v1 predicate (https://slsa.dev/provenance/v1): ``buildDefinition``
  names the farm build type, the recipe (name, version, digest) and the architecture
  as ``externalParameters`` and the builder image (and source, when known) as
  ``resolvedDependencies``; ``runDetails`` names the coordinator as the builder and
  the build id as ``invocationId``, and lists as ``byproducts`` the sha256 of every
  builder envelope the statement rests on; the subjects are the agreed outputs;
* the builders' own DSSE envelopes (:mod:`farm.result`), exactly as received.

Invariants: :func:`build_bundle` never makes a bundle that does not meet the quorum,
and :func:`verify_bundle` re-derives everything from the builders' envelopes, so a
coordinator cannot attest what at least ``quorum`` distinct enrolled builders did not
sign: every builder signature is checked against enrolled keys only, a builder counts
once however many envelopes it has, every result must be a success for the same build
id, recipe digest, architecture and image as the statement, all results must carry the
identical digest set, and the statement's subjects must be exactly that set.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from farm import ed25519
from farm.canonical import canonical_json, sha256_bytes
from farm.errors import QuorumError, SignatureError
from farm.keys import KeyPair
from farm.quorum import require_quorum, tally
from farm.result import (
    LOG_SUBJECT,
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    ResultStatement,
    SignedResult,
    parse_statement,
    verify_result,
)

__all__ = [
    "BUILD_TYPE",
    "SLSA_PROVENANCE_V1",
    "AttestationBundle",
    "BuildDefinition",
    "ExternalParameters",
    "ProvenancePredicate",
    "ProvenanceStatement",
    "ResourceDescriptor",
    "RunDetails",
    "VerifiedBundle",
    "build_bundle",
    "coordinator_uri",
    "envelope_digest",
    "verify_bundle",
]

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
#: The buildType of a farm rebuild: what externalParameters mean is defined here.
BUILD_TYPE = "https://farm.dev/build-types/rebuild/v1"
#: Prefix of the SLSA builder id of a coordinator; the suffix is its key id.
COORDINATOR_URI = "https://farm.dev/coordinator/"
#: Name prefix of a byproduct naming a builder envelope; the suffix is the builder id.
BUILDER_RESULT_BYPRODUCT = "farm:builder-result:"
_HEX64 = r"^[0-9a-f]{64}$"
_M = TypeVar("_M", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceDescriptor(_Frozen):
    """An in-toto ResourceDescriptor, as far as farm uses it."""

    name: str | None = None
    uri: str | None = None
    digest: dict[str, str] = Field(default_factory=dict)
    mediaType: str | None = None


class ExternalParameters(_Frozen):
    """What was asked for: the recipe and the architecture."""

    recipe: str = Field(min_length=1, description="Recipe (package) name.")
    version: str = Field(min_length=1)
    recipeDigest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    arch: str = Field(min_length=1)


class BuildDefinition(_Frozen):
    """SLSA buildDefinition."""

    buildType: Literal["https://farm.dev/build-types/rebuild/v1"]
    externalParameters: ExternalParameters
    internalParameters: dict[str, Any] = Field(default_factory=dict)
    resolvedDependencies: tuple[ResourceDescriptor, ...] = ()


class _Builder(_Frozen):
    id: str


class _Metadata(_Frozen):
    invocationId: str = Field(min_length=1)


class RunDetails(_Frozen):
    """SLSA runDetails: the coordinator, the build id, the builder envelopes."""

    builder: _Builder
    metadata: _Metadata
    byproducts: tuple[ResourceDescriptor, ...] = ()


class ProvenancePredicate(_Frozen):
    """The SLSA provenance v1 predicate."""

    buildDefinition: BuildDefinition
    runDetails: RunDetails


class _Subject(_Frozen):
    name: str = Field(min_length=1)
    digest: dict[str, str]


class ProvenanceStatement(_Frozen):
    """The in-toto Statement v1 the coordinator signs."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: tuple[_Subject, ...] = Field(min_length=1)
    predicateType: Literal["https://slsa.dev/provenance/v1"]
    predicate: ProvenancePredicate

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def external(self) -> ExternalParameters:
        """Shortcut to the external parameters."""
        return self.predicate.buildDefinition.externalParameters

    @property
    def build_id(self) -> str:
        """The build id (SLSA invocationId)."""
        return self.predicate.runDetails.metadata.invocationId


class AttestationBundle(_Frozen):
    """The coordinator's envelope plus the builder envelopes it rests on (as received)."""

    envelope: dict[str, Any]
    builder_envelopes: tuple[dict[str, Any], ...] = Field(min_length=1)


class VerifiedBundle(_Frozen):
    """The outcome of :func:`verify_bundle`: only ever made from a bundle that verified."""

    statement: ProvenanceStatement
    coordinator_id: str
    builder_ids: tuple[str, ...]
    subjects: tuple[tuple[str, str], ...]
    """Agreed outputs (name, sha256 hex), sorted by name."""

    @property
    def build_id(self) -> str:
        """The build id."""
        return self.statement.build_id

    @property
    def recipe_digest(self) -> str:
        """The recipe digest (``sha256:…``)."""
        return self.statement.external.recipeDigest

    @property
    def arch(self) -> str:
        """The architecture."""
        return self.statement.external.arch

    def artifact_digests(self) -> tuple[str, ...]:
        """The sha256 (hex) of every attested output."""
        return tuple(sha for _, sha in self.subjects)


def coordinator_uri(keyid: str) -> str:
    """The SLSA builder id of the coordinator whose key id is ``keyid``."""
    return COORDINATOR_URI + keyid


def envelope_digest(envelope: Mapping[str, Any]) -> str:
    """Hex sha256 of the statement an envelope carries (its payload bytes), which is how
    byproducts name a builder envelope; the envelope's signature is checked apart."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SignatureError(f"malformed DSSE envelope: {exc}") from None
    return sha256_bytes(payload)


def _short(keyid: str) -> str:
    return keyid[:12] + "…"


def _check_result_matches(
    result: SignedResult,
    build_id: str,
    recipe_digest: str,
    arch: str,
) -> None:
    p = result.predicate
    who = f"builder {_short(p.builder_id)}"
    if p.build_id != build_id:
        raise SignatureError(f"{who} result is for build {p.build_id!r}, not {build_id!r}")
    if p.recipe_digest != recipe_digest:
        raise SignatureError(f"{who} result is for recipe {p.recipe_digest}, not {recipe_digest}")
    if p.arch != arch:
        raise SignatureError(f"{who} result is for arch {p.arch}, not {arch}")
    if p.status != "succeeded":
        raise SignatureError(f"{who} result did not succeed ({p.status})")


def _agree(
    results: Sequence[SignedResult], quorum: int
) -> tuple[frozenset[tuple[str, str]], tuple[str, ...]]:
    """The agreed digest set and the distinct builders that signed it, or QuorumError."""
    if quorum < 1:
        raise QuorumError(f"quorum {quorum} is below one; nothing can be attested")
    t = tally(results, quorum)
    if len(t.groups) > 1:
        top, other = t.groups[0], t.groups[1]
        raise QuorumError(
            f"builder results differ: {len(top.builders)} signed {top.describe()}, "
            f"builder {', '.join(_short(b) for b in other.builders)} signed {other.describe()}"
        )
    group = t.majority
    count = 0 if group is None else len(group.builders)
    if group is None or count < quorum:
        what = "identical outputs" if group is None else group.describe()
        raise QuorumError(f"{count}/{quorum} distinct enrolled builders signed {what}")
    return group.digests, group.builders


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
                internalParameters={"quorum": quorum},
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
) -> AttestationBundle:
    """Make and sign the bundle of a verified build.

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
        )
    )
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(coordinator_key.signer)
    return AttestationBundle(
        envelope=envelope.to_dict(), builder_envelopes=tuple(r.envelope for r in results)
    )


def _decode(data: object, what: str) -> Envelope:
    if not isinstance(data, dict):
        raise SignatureError(f"{what} is not a JSON object")
    try:
        # from_dict consumes what it reads; keep the caller's envelope as received.
        signatures = data.get("signatures")
        if not isinstance(signatures, list) or not all(isinstance(x, dict) for x in signatures):
            raise ValueError("signatures is not a list of objects")
        envelope = Envelope.from_dict({**data, "signatures": [dict(x) for x in signatures]})
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise SignatureError(f"malformed {what}: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{what}: unexpected payload type {envelope.payload_type!r}")
    return envelope


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


# ------------------------------------------------------------------ the fast path
#
# Everything below returns None as soon as anything is not exactly as the reference
# path (securesystemslib's Envelope and SSlibKey, verify_result) would accept it; the
# caller then runs the reference path, which raises the precise error. So the fast
# path only ever has to agree with the reference path on *success*, and every step
# mirrors one there:
#
# - Envelope.from_dict: ``payload`` and every signature's ``sig`` are base64 text
#   (standard alphabet here; the URL-safe fallback goes the reference way), each
#   signature has a ``keyid`` and no key id appears twice; ``payloadType`` must be
#   PAYLOAD_TYPE (checked by farm before any signature);
# - Envelope.verify([key], 1): the signature whose keyid equals the key's keyid must
#   verify over the DSSE PAE ``"DSSEv1" SP len(type) SP type SP len(body) SP body``
#   (only ed25519/ed25519 keys here; checked with libsodium, farm.ed25519, which is
#   stricter than the cryptography/OpenSSL check SSlibKey._verify makes);
# - the statement is parsed from the payload bytes exactly as received, once.


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
