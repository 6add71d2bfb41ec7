"""BuildResult: a builder's signed account of one build.

A result is an in-toto Statement v1 whose subjects are the outputs (file name and
sha256; a failed build with no outputs names its log instead) and whose predicate
(:class:`BuildPredicate`) says which recipe, image, architecture and builder, when,
how it ended and the digest of its log, and — from builders that vary what the recipe
leaves open — the variation it ran under (:class:`BuildVariation`, ADR 38). It travels
as a DSSE envelope signed with the builder's key.

Invariants: the payload is signed as canonical JSON bytes and verified as received —
never re-serialized; a result verifies only against the key whose id is its builder id.
A result without a variation is signed without the ``variation`` key, byte for byte
what builders signed before variation existed, so either kind verifies everywhere.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from google.protobuf import json_format
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from farm.canonical import canonical_json
from farm.errors import SignatureError
from farm.keys import KeyPair

__all__ = [
    "BUILD_RESULT_PREDICATE",
    "FAILURE_KINDS",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "BuildPredicate",
    "BuildVariation",
    "FailureKind",
    "OutputDigest",
    "ResultStatement",
    "SignedResult",
    "sign_result",
    "verify_result",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
BUILD_RESULT_PREDICATE = "https://farm.dev/attestations/build-result/v1"


#: Why a failed build failed, for machines: ``build`` (the build itself: its command
#: exited non-zero, timed out, ran out of memory, its sources did not match their pins,
#: its outputs were refused) or ``infrastructure`` (this builder host's own machinery:
#: its Docker Engine could not be reached or failed under the build). The coordinator
#: counts a ``build`` failure against the build and sends the task of an
#: ``infrastructure`` failure again (ADR 37).
FAILURE_KINDS = ("build", "infrastructure")
FailureKind = Literal["build", "infrastructure"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputDigest(_Frozen):
    """One output file: its name relative to the output directory and its sha256."""

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class BuildVariation(_Frozen):
    """What a builder set, for one build, among what the recipe leaves open (ADR 38).

    Values are what the build actually ran under, not what was drawn: a variation the
    recipe pins or the host cannot apply is left out and named in :attr:`unvaried`.
    """

    hostname: str = Field(min_length=1, description="The container's hostname.")
    domainname: str = Field(description="The container's NIS domain name; empty: none.")
    umask: str = Field(
        pattern=r"^0[0-7]{3}$",
        description="The umask the build command started with (its own ``umask`` wins).",
    )
    cpus: int = Field(ge=1, description="CPUs the build could see and use (nproc).")
    lang: str | None = Field(
        description="LANG the builder set; None when the recipe pins the locale."
    )
    clock_offset_s: int = Field(description="Seconds the build's wall clock ran ahead; 0: real.")
    unvaried: tuple[str, ...] = Field(
        default=(), description="What was not varied for this build, and why, one line each."
    )


class BuildPredicate(_Frozen):
    """What a builder states about one build."""

    build_id: str = Field(min_length=1)
    recipe_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    recipe_name: str
    recipe_version: str
    image_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    arch: str
    builder_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    started_at: datetime
    finished_at: datetime
    status: Literal["succeeded", "failed"]
    exit_code: int | None
    timed_out: bool = False
    error: str | None = Field(default=None, description="Why the build failed, for people.")
    failure_kind: FailureKind | None = Field(
        default=None,
        description="Why the build failed, for machines (see FAILURE_KINDS); absent when it "
        "succeeded, and read as ``build`` on a failed result that does not say.",
    )
    log_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    log_truncated: bool = False
    outputs: tuple[OutputDigest, ...] = ()
    variation: BuildVariation | None = Field(
        default=None,
        description="What the builder varied (ADR 38); absent from builders that do not vary.",
    )

    @model_validator(mode="after")
    def _kind_only_on_failures(self) -> BuildPredicate:
        if self.status == "succeeded" and self.failure_kind is not None:
            raise ValueError("a succeeded build has no failure_kind")
        return self

    @property
    def infrastructure_failure(self) -> bool:
        """Whether the builder host's machinery, not the build, failed (not its verdict)."""
        return self.status == "failed" and self.failure_kind == "infrastructure"

    def signed_json(self) -> dict[str, Any]:
        """The predicate as it is signed: ``failure_kind`` and ``variation`` only when
        they are set, so a result that has neither has the bytes it had before those
        fields existed."""
        value = self.model_dump(mode="json")
        for optional in ("failure_kind", "variation"):
            if value.get(optional) is None:
                value.pop(optional, None)
        return value


class ResultStatement(_Frozen):
    """The in-toto Statement v1 of a build result, as it is signed."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: tuple[dict[str, Any], ...]
    predicateType: Literal["https://farm.dev/attestations/build-result/v1"]
    predicate: BuildPredicate

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SignedResult(_Frozen):
    """A verified result: the envelope as received plus the statement it carries."""

    envelope: dict[str, Any]
    statement: ResultStatement

    @property
    def predicate(self) -> BuildPredicate:
        """Shortcut to the statement's predicate."""
        return self.statement.predicate

    def digest_set(self) -> dict[str, str]:
        """Output name → sha256, the thing builders must agree on."""
        return {o.name: o.sha256 for o in self.predicate.outputs}


#: Subject name of a result without outputs: in-toto wants a subject, so it is the log.
LOG_SUBJECT = "farm:build-log"


def _subjects(predicate: BuildPredicate) -> list[tuple[str, str]]:
    if predicate.outputs:
        return [(o.name, o.sha256) for o in predicate.outputs]
    return [(LOG_SUBJECT, predicate.log_sha256)]


def _statement_json(predicate: BuildPredicate) -> dict[str, Any]:
    subjects = [
        ResourceDescriptor(name=name, digest={"sha256": sha}).pb
        for name, sha in _subjects(predicate)
    ]
    stmt = Statement(
        subjects=subjects,
        predicate_type=BUILD_RESULT_PREDICATE,
        predicate=predicate.signed_json(),
    )
    stmt.validate()
    value: dict[str, Any] = json_format.MessageToDict(stmt.pb)
    # protobuf's Struct has only doubles; give integers back their type before signing.
    value["predicate"] = predicate.signed_json()
    value.setdefault("subject", [])
    return value


def sign_result(predicate: BuildPredicate, key: KeyPair) -> dict[str, Any]:
    """Return the DSSE envelope (JSON form) of ``predicate``, signed with ``key``."""
    if predicate.builder_id != key.keyid:
        raise SignatureError(
            f"predicate names builder {predicate.builder_id[:12]} but key is {key.keyid[:12]}"
        )
    payload = canonical_json(_statement_json(predicate))
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(key.signer)
    out: dict[str, Any] = envelope.to_dict()
    return out


def _decode_envelope(data: object) -> tuple[Envelope, bytes]:
    if not isinstance(data, dict):
        raise SignatureError("envelope is not a JSON object")
    try:
        # from_dict consumes what it reads; keep the caller's envelope as received.
        envelope = Envelope.from_dict(copy.deepcopy(data))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SignatureError(f"malformed DSSE envelope: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"unexpected payload type {envelope.payload_type!r}")
    return envelope, envelope.pae()


def parse_statement(payload: bytes) -> ResultStatement:
    """Validate the statement bytes of an envelope (no signature check)."""
    try:
        value = json.loads(payload)
        return ResultStatement.model_validate(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SignatureError(f"payload is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SignatureError(f"payload is not a build result: {where}: {first['msg']}") from None


def verify_result(envelope_json: object, keys: Sequence[SSlibKey]) -> SignedResult:
    """Verify a result envelope against known builder keys.

    The envelope must carry a valid signature by the key whose id is the predicate's
    ``builder_id``, and that key must be among ``keys``. Raises :class:`SignatureError`
    saying what does not hold; never returns an unverified result.
    """
    envelope, _ = _decode_envelope(envelope_json)
    statement = parse_statement(envelope.payload)
    builder = statement.predicate.builder_id
    key = next((k for k in keys if k.keyid == builder), None)
    if key is None:
        raise SignatureError(f"result is from builder {builder[:12]}, whose key is not known")
    try:
        envelope.verify([key], 1)
    except VerificationError:
        raise SignatureError(
            f"signature of builder {builder[:12]} does not verify over the result"
        ) from None
    names: list[object] = []
    digests: list[object] = []
    for subject in statement.subject:
        digest = subject.get("digest")
        names.append(subject.get("name"))
        digests.append(digest.get("sha256") if isinstance(digest, dict) else None)
    declared = _subjects(statement.predicate)
    if len(names) != len(declared) or list(zip(names, digests, strict=True)) != declared:
        raise SignatureError("statement subjects do not match the outputs in its predicate")
    assert isinstance(envelope_json, dict)
    return SignedResult(envelope=envelope_json, statement=statement)


def envelope_payload(envelope_json: dict[str, Any]) -> bytes:
    """The raw payload bytes of an envelope in JSON form."""
    return base64.b64decode(envelope_json["payload"])
