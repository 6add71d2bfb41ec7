"""Ledger transactions and their wire form (domain types shared by coordinator and ledger).

Four kinds, told apart by ``type``:

* ``attest``  — an :class:`~farm.attestation.AttestationBundle` (coordinator-signed
  SLSA provenance plus the builders' own envelopes; it carries its own signatures);
* ``revoke``  — an artifact sha256 and a reason, signed by a genesis operator;
* ``enroll``  — a builder public key, its architectures, host name and independence
  domain (the organisation or site that controls it), signed by an operator;
* ``retire``  — a builder key id and a reason, signed by an operator.

Wire form: the RFC 8785 canonical JSON bytes of the transaction; anything else (not
JSON, not canonical, unknown fields, wrong types) is refused by :func:`decode_tx`, so
one transaction has exactly one byte string and one id, ``tx_id`` = hex sha256 of
the bytes. An operator signs the canonical bytes of the transaction without its
``signature`` field; ``type`` is part of those bytes, so a signature for one kind can
never be replayed as another. ``chain`` names the ledger (its genesis ``chain_id``) the
operator meant, and is signed too: a validator refuses an operator transaction for
another chain, so one signed for a staging ledger cannot be replayed on production by
whoever saw it, even when both trust the same operator key (the replay EIP-155 closed
for Ethereum). ``issued_at`` makes two otherwise equal operator transactions (retire,
enroll again, retire again) distinct.

This module builds and parses transactions and checks an operator transaction's
signature against given operator keys (:func:`verify_operator_signature`: validators,
the coordinator that relays and the consumer run the same check); whether a
transaction fits the state is the ledger's job (:mod:`ledger.state`). This is the only definition of
the transaction types: everyone imports them from here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import Signature, SSlibKey

from farm.attestation import AttestationBundle
from farm.canonical import canonical_json, sha256_bytes
from farm.errors import SigningKeyError, TransactionError
from farm.keys import KeyPair, public_key_from_dict

__all__ = [
    "CHAIN_ID_PATTERN",
    "DOMAIN_PATTERN",
    "MAX_TX_BYTES",
    "AttestTx",
    "EnrollTx",
    "OperatorTx",
    "RetireTx",
    "RevokeTx",
    "Transaction",
    "decode_tx",
    "encode_tx",
    "make_attest",
    "make_enroll",
    "make_retire",
    "make_revoke",
    "signed_bytes",
    "tx_id",
    "verify_operator_signature",
]

#: Largest transaction accepted, in bytes (an attestation with many builders fits).
MAX_TX_BYTES = 1 << 20

_HEX64 = r"^[0-9a-f]{64}$"

#: What a chain id (a ledger genesis's ``chain_id``, the checkpoint origin) looks like.
CHAIN_ID_PATTERN = r"^[A-Za-z0-9._/-]{1,128}$"


#: What an independence domain looks like (``site-b1``, ``example.org/lab-2``).
DOMAIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttestTx(_Frozen):
    """Record a verified build."""

    type: Literal["attest"]
    bundle: AttestationBundle


class _Signed(_Frozen):
    chain: str = Field(
        pattern=CHAIN_ID_PATTERN, description="Chain id of the ledger this is meant for."
    )
    operator: str = Field(pattern=_HEX64, description="Key id of the signing operator.")
    issued_at: str = Field(min_length=1, max_length=64)
    signature: str = Field(pattern=r"^[0-9a-f]{2,512}$", description="Hex signature.")


class RevokeTx(_Signed):
    """Withdraw an attested artifact."""

    type: Literal["revoke"]
    artifact: str = Field(pattern=_HEX64, description="sha256 of the artifact, hex.")
    reason: str = Field(min_length=1, max_length=2000)


class EnrollTx(_Signed):
    """Enroll a builder key for some architectures, in one independence domain."""

    type: Literal["enroll"]
    key: dict[str, Any]
    arches: tuple[str, ...] = Field(min_length=1)
    hostname: str = Field(min_length=1, max_length=255)
    domain: str = Field(
        pattern=DOMAIN_PATTERN,
        description="Independence domain: the organisation or site that controls the "
        "builder. An attestation needs its agreeing builders in quorum distinct domains.",
    )


class RetireTx(_Signed):
    """Retire a builder key: its results no longer count."""

    type: Literal["retire"]
    builder: str = Field(pattern=_HEX64)
    reason: str = Field(min_length=1, max_length=2000)


OperatorTx = RevokeTx | EnrollTx | RetireTx
Transaction = Annotated[AttestTx | RevokeTx | EnrollTx | RetireTx, Field(discriminator="type")]
_ADAPTER: TypeAdapter[AttestTx | RevokeTx | EnrollTx | RetireTx] = TypeAdapter(Transaction)


@lru_cache(maxsize=4096)
def tx_id(data: bytes) -> str:
    """The id of a transaction: hex sha256 of its wire bytes.

    Cached: a validator asks for the id of one transaction at admission, proposal,
    validation, commit and storage; the cache looks bytes up by their (cached) hash
    and equality, never by identity.
    """
    return sha256_bytes(data)


def encode_tx(tx: AttestTx | OperatorTx) -> bytes:
    """The wire bytes of a transaction (canonical JSON)."""
    return canonical_json(tx.model_dump(mode="json"))


def decode_tx(data: bytes) -> AttestTx | RevokeTx | EnrollTx | RetireTx:
    """Parse wire bytes. Raises :class:`TransactionError` on anything malformed,
    including JSON that is not in RFC 8785 canonical form."""
    if not isinstance(data, bytes):
        raise TransactionError("transaction is not bytes")
    if len(data) > MAX_TX_BYTES:
        raise TransactionError(f"transaction is {len(data)} bytes, more than {MAX_TX_BYTES}")
    decoder, numbers = _decoder()
    numbers.plain = True
    try:
        # What json.loads(data, parse_float=…, parse_int=…) does, without building a
        # new decoder (and its scanner) for every transaction.
        value = decoder.decode(data.decode(json.detect_encoding(data), "surrogatepass"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransactionError(f"transaction is not JSON: {exc}") from None
    except RecursionError:  # a submitter's deep nesting must not end a validator
        raise TransactionError("transaction is not JSON: nested too deeply") from None
    try:
        canonical = data if _plainly_canonical(value, data, numbers) else canonical_json(value)
    except (ValueError, TypeError) as exc:
        raise TransactionError(f"transaction cannot be canonicalized: {exc}") from None
    except RecursionError:
        raise TransactionError("transaction cannot be canonicalized: nested too deeply") from None
    if canonical != data:
        raise TransactionError("transaction is not in canonical form (RFC 8785)")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise TransactionError("transaction has no type")
    try:
        return _ADAPTER.validate_python(value)
    except RecursionError:
        raise TransactionError(
            f"malformed {value['type']} transaction: nested too deeply"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TransactionError(
            f"malformed {value['type']} transaction: {where}: {first['msg']}"
        ) from None


_INT_LIMIT = 2**53 - 1  # RFC 8785 (rfc8785.dumps) refuses integers beyond this


class _Numbers:
    """json.loads hooks that note floats and integers RFC 8785 would write otherwise."""

    __slots__ = ("plain",)

    def __init__(self) -> None:
        self.plain = True

    def float(self, text: str) -> float:
        self.plain = False
        return float(text)

    def int(self, text: str) -> int:
        value = int(text)
        if not -_INT_LIMIT <= value <= _INT_LIMIT:
            self.plain = False
        return value


_LOCAL = threading.local()


def _decoder() -> tuple[json.JSONDecoder, _Numbers]:
    """This thread's JSON decoder with the :class:`_Numbers` hooks (made once per thread;
    decoding does not re-enter, so one per thread is enough)."""
    pair: tuple[json.JSONDecoder, _Numbers] | None = getattr(_LOCAL, "pair", None)
    if pair is None:
        numbers = _Numbers()
        pair = (json.JSONDecoder(parse_float=numbers.float, parse_int=numbers.int), numbers)
        _LOCAL.pair = pair
    return pair


def _plainly_canonical(value: object, data: bytes, numbers: _Numbers) -> bool:
    """A fast proof that ``data`` is the RFC 8785 form of ``value`` (False: unproven).

    When ``data`` is ASCII, holds no float and no integer beyond 2**53 - 1, the
    standard library's sorted, compact, non-ASCII-escaping encoding is byte for byte
    what RFC 8785 gives: the same string escapes (the two-character ones, ``\\u00xx``
    for other control characters, nothing else), integers in decimal, and keys sorted
    by code point, which for ASCII keys is their UTF-16 order. (A key or string that
    an escape in ASCII ``data`` made non-ASCII is written literally, so it does not
    compare equal.) When this says False the reference encoder decides.

    That encoding is made by orjson (``OPT_SORT_KEYS``), which for these values writes
    the same bytes as ``json.dumps(value, ensure_ascii=False, sort_keys=True,
    separators=(",", ":"))``: compact, keys sorted by code point (ASCII keys here; a
    non-ASCII one cannot compare equal to ASCII ``data``), ``true``/``false``/``null``,
    integers in decimal, and every string written as the standard library writes it
    (checked for every code point in tests/unit/farm/test_transactions_canonical.py).
    Anything orjson refuses (a lone surrogate, nesting beyond its limit) is unproven.
    """
    if not numbers.plain or not data.isascii():
        return False
    try:
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return False
    return fast == data


def signed_bytes(tx: OperatorTx) -> bytes:
    """What an operator signs: canonical JSON of the transaction minus ``signature``."""
    return canonical_json(tx.model_dump(mode="json", exclude={"signature"}))


def verify_operator_signature(
    tx: OperatorTx, operators: Mapping[str, SSlibKey], chain_id: str
) -> str | None:
    """None if ``tx`` is meant for the ledger ``chain_id`` and signed by one of
    ``operators``, else the reason it is not."""
    if tx.chain != chain_id:
        return (
            f"{tx.type} is signed for ledger {tx.chain!r}, this ledger is {chain_id!r} "
            "(an operator transaction counts only on the chain it names)"
        )
    key = operators.get(tx.operator)
    if key is None:
        return f"{tx.type} signed by unknown operator {tx.operator[:12]}…"
    try:
        key.verify_signature(Signature(tx.operator, tx.signature), signed_bytes(tx))
    except (UnverifiedSignatureError, VerificationError):
        return f"{tx.type} signature of operator {tx.operator[:12]}… does not verify"
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sign(unsigned: dict[str, Any], operator: KeyPair, chain: str) -> bytes:
    unsigned = {**unsigned, "chain": chain, "operator": operator.keyid}
    unsigned.setdefault("issued_at", _now())
    sig = operator.private.sign(canonical_json(unsigned)).hex()
    data = canonical_json({**unsigned, "signature": sig})
    decode_tx(data)  # never hand out bytes the ledger would call malformed
    return data


def make_attest(bundle: AttestationBundle) -> bytes:
    """Wire bytes of an attest transaction."""
    return encode_tx(AttestTx(type="attest", bundle=bundle))


def make_revoke(
    operator: KeyPair,
    artifact_sha256: str,
    reason: str,
    *,
    chain: str,
    issued_at: str | None = None,
) -> bytes:
    """Wire bytes of a revoke transaction signed by ``operator`` for the ledger ``chain``
    (``sha256:`` prefix ok)."""
    artifact = artifact_sha256.removeprefix("sha256:")
    tx: dict[str, Any] = {"type": "revoke", "artifact": artifact, "reason": reason}
    if issued_at is not None:
        tx["issued_at"] = issued_at
    return _sign(tx, operator, chain)


def make_enroll(
    operator: KeyPair,
    builder_key: Mapping[str, Any],
    arches: Sequence[str],
    hostname: str,
    *,
    domain: str,
    chain: str,
    issued_at: str | None = None,
) -> bytes:
    """Wire bytes of an enroll transaction for ``builder_key`` (a public key dict) in the
    independence ``domain``, on the ledger ``chain``."""
    try:
        public_key_from_dict(dict(builder_key))
    except SigningKeyError as exc:
        raise TransactionError(f"cannot enroll: {exc}") from None
    tx: dict[str, Any] = {
        "type": "enroll",
        "key": dict(builder_key),
        "arches": list(arches),
        "hostname": hostname,
        "domain": domain,
    }
    if issued_at is not None:
        tx["issued_at"] = issued_at
    return _sign(tx, operator, chain)


def make_retire(
    operator: KeyPair,
    builder_keyid: str,
    reason: str,
    *,
    chain: str,
    issued_at: str | None = None,
) -> bytes:
    """Wire bytes of a retire transaction for the builder whose key id is given, on the
    ledger ``chain``."""
    tx: dict[str, Any] = {"type": "retire", "builder": builder_keyid, "reason": reason}
    if issued_at is not None:
        tx["issued_at"] = issued_at
    return _sign(tx, operator, chain)
