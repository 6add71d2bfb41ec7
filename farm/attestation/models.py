"""The SLSA provenance v1 / in-toto Statement v1 models of an attestation bundle, and
how a bundle names its coordinator and the builder envelopes it rests on.

Every model is frozen and forbids extra fields: a statement that parses is exactly one
of the statements :mod:`farm.attestation.build` makes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from farm.canonical import sha256_bytes
from farm.errors import SignatureError

__all__ = [
    "BUILDER_RESULT_BYPRODUCT",
    "BUILD_TYPE",
    "COORDINATOR_URI",
    "SLSA_PROVENANCE_V1",
    "AttestationBundle",
    "BuildDefinition",
    "ExternalParameters",
    "ProvenancePredicate",
    "ProvenanceStatement",
    "ResourceDescriptor",
    "RunDetails",
    "VerifiedBundle",
    "coordinator_uri",
    "envelope_digest",
]

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
#: The buildType of a farm rebuild: what externalParameters mean is defined here.
BUILD_TYPE = "https://farm.dev/build-types/rebuild/v1"
#: Prefix of the SLSA builder id of a coordinator; the suffix is its key id.
COORDINATOR_URI = "https://farm.dev/coordinator/"
#: Name prefix of a byproduct naming a builder envelope; the suffix is the builder id.
BUILDER_RESULT_BYPRODUCT = "farm:builder-result:"


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
