"""Genesis: the one file every validator of a chain starts from.

It names the chain, the validators (name, Ed25519 public key, peer and HTTP
addresses), the operator keys that may revoke artifacts and enroll or retire
builders, the coordinator keys whose attestations are accepted, the builders
enrolled from the start, and the attestation quorum.

Invariants: the genesis hash is the sha256 of the canonical JSON (RFC 8785) of the
whole file, so two validators agree on a chain only if they agree on every byte of
its genesis. Any n >= 1 validators is accepted; f is (n - 1) // 3.

The model lives in ``farm/`` so that the coordinator, which never imports the ledger
package, can read the validators it checks receipts against (ADR 0030);
:mod:`ledger.genesis` adds what consensus needs (the validator set).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from securesystemslib.signer import SSlibKey

from farm.canonical import canonical_json, sha256_bytes
from farm.errors import ConfigError, SigningKeyError
from farm.keys import public_key_from_dict
from farm.transactions import CHAIN_ID_PATTERN, DOMAIN_PATTERN

__all__ = [
    "Genesis",
    "GenesisBuilder",
    "ValidatorInfo",
    "genesis_hash",
    "load_genesis",
    "save_genesis",
]

_ADDRESS = r"^[^\s:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidatorInfo(_Frozen):
    """One validator: its name (its id in votes and checkpoints), key and addresses."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="Raw Ed25519 key, hex.")
    p2p: str = Field(pattern=_ADDRESS, description="host:port of the peer socket.")
    http: str = Field(pattern=_ADDRESS, description="host:port of the HTTP API.")

    def ed25519_key(self) -> Ed25519PublicKey:
        """The public key as ``cryptography`` models it."""
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))


class GenesisBuilder(_Frozen):
    """A builder enrolled from the start (the same record an enroll transaction makes)."""

    key: dict[str, Any]
    arches: tuple[str, ...] = ()
    hostname: str = ""
    domain: str = Field(
        default="",
        pattern=r"^$|" + DOMAIN_PATTERN,
        description="Independence domain (the organisation or site that controls it); "
        "empty: a domain of its own (ADR 35).",
    )


def _check_keys(values: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    seen: set[str] = set()
    for value in values:
        try:
            key = public_key_from_dict(value)
        except SigningKeyError as exc:
            raise ValueError(str(exc)) from None
        if key.keyid in seen:
            raise ValueError(f"key {key.keyid[:12]}… is listed twice")
        seen.add(key.keyid)
    return values


class Genesis(_Frozen):
    """The genesis of one chain."""

    chain_id: str = Field(min_length=1, max_length=128, pattern=CHAIN_ID_PATTERN)
    genesis_time: str = Field(min_length=1, description="RFC 3339 time; informational.")
    validators: tuple[ValidatorInfo, ...] = Field(min_length=1)
    operators: tuple[dict[str, Any], ...] = Field(
        default=(), description="farm.keys public key dicts of operators."
    )
    coordinators: tuple[dict[str, Any], ...] = Field(
        default=(), description="Public key dicts of coordinators whose attestations count."
    )
    builders: tuple[GenesisBuilder, ...] = Field(
        default=(),
        description="Builders enrolled at genesis: key/arches/hostname, or a bare key dict.",
    )
    quorum: int = Field(default=3, ge=1, description="Distinct builders an attestation needs.")

    @field_validator("validators")
    @classmethod
    def _distinct_validators(cls, v: tuple[ValidatorInfo, ...]) -> tuple[ValidatorInfo, ...]:
        names = [x.name for x in v]
        if len(set(names)) != len(names):
            raise ValueError("validator names must be distinct")
        keys = [x.public_key for x in v]
        if len(set(keys)) != len(keys):
            raise ValueError("validator keys must be distinct")
        for x in v:
            try:
                x.ed25519_key()
            except ValueError as exc:
                raise ValueError(f"validator {x.name}: {exc}") from None
        return v

    @field_validator("operators", "coordinators")
    @classmethod
    def _valid_keys(cls, v: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        return _check_keys(v)

    @field_validator("builders", mode="before")
    @classmethod
    def _wrap_bare_keys(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return tuple({"key": b} if isinstance(b, dict) and "keyval" in b else b for b in v)
        return v

    @field_validator("builders")
    @classmethod
    def _valid_builders(cls, v: tuple[GenesisBuilder, ...]) -> tuple[GenesisBuilder, ...]:
        _check_keys(tuple(b.key for b in v))
        return v

    # ------------------------------------------------------------------ derived

    @property
    def n(self) -> int:
        """Number of validators."""
        return len(self.validators)

    @property
    def f(self) -> int:
        """Faults tolerated: (n - 1) // 3."""
        return (self.n - 1) // 3

    def validator(self, name: str) -> ValidatorInfo | None:
        """The validator called ``name``, if any."""
        return next((v for v in self.validators if v.name == name), None)

    def operator_keys(self) -> dict[str, SSlibKey]:
        """keyid → key of the operators."""
        return {k.keyid: k for k in map(public_key_from_dict, self.operators)}

    def coordinator_keys(self) -> dict[str, SSlibKey]:
        """keyid → key of the coordinators."""
        return {k.keyid: k for k in map(public_key_from_dict, self.coordinators)}

    def genesis_builders(self) -> tuple[GenesisBuilder, ...]:
        """The genesis builders, each as key/arches/hostname (empty arches = any)."""
        return self.builders

    def to_json(self) -> dict[str, Any]:
        """The JSON value of the file."""
        value: dict[str, Any] = self.model_dump(mode="json")
        for b in value.get("builders", ()):
            if not b.get("domain"):  # a genesis made before domains keeps its hash
                b.pop("domain", None)
        return value

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`to_json`."""
        return canonical_json(self.to_json())

    @property
    def hash(self) -> str:
        """Hex sha256 of the canonical bytes."""
        return sha256_bytes(self.canonical_bytes())


def genesis_hash(g: Genesis) -> str:
    """Hex sha256 of the canonical JSON of ``g``."""
    return g.hash


G = TypeVar("G", bound="Genesis")


def load_genesis(path: Path, model: type[G]) -> G:
    """Read and validate a genesis file as ``model`` (:class:`Genesis` or a subclass).

    Raises :class:`ConfigError` saying what is wrong."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no genesis file there") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read genesis: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: genesis is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: invalid genesis: {where}: {first['msg']}") from None


def save_genesis(g: Genesis, path: Path) -> None:
    """Write ``g`` to ``path`` (pretty JSON, atomically replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(g.to_json(), indent=2, sort_keys=True) + "\n")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
