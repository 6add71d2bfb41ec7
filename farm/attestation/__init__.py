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

The package, in the order a bundle is made and checked:

* :mod:`farm.attestation.models` — the SLSA provenance / in-toto models, and how a
  bundle names its coordinator and builder envelopes;
* :mod:`farm.attestation.build` — :func:`build_bundle`;
* :mod:`farm.attestation.verify` — :func:`verify_bundle` (the reference checks), which
  first tries the private fast path, ``farm.attestation._fast``.
"""

from __future__ import annotations

from farm.attestation.build import build_bundle
from farm.attestation.models import (
    BUILD_TYPE,
    BUILDER_RESULT_BYPRODUCT,
    COORDINATOR_URI,
    SLSA_PROVENANCE_V1,
    AttestationBundle,
    BuildDefinition,
    ExternalParameters,
    ProvenancePredicate,
    ProvenanceStatement,
    ResourceDescriptor,
    RunDetails,
    VerifiedBundle,
    coordinator_uri,
    envelope_digest,
)
from farm.attestation.verify import verify_bundle

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
    "build_bundle",
    "coordinator_uri",
    "envelope_digest",
    "verify_bundle",
]
