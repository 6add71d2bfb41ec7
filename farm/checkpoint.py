"""Co-signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint names one state of the ledger's Merkle log (see :mod:`farm.merkle`)::

    <origin>\\n
    <tree size, decimal, no leading zeroes>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

After each block, and again every few seconds while the log is idle, every validator
co-signs that text with its Ed25519 key and the current time, and the co-signatures
are merged into one signed note (https://c2sp.org/signed-note)::

    <checkpoint text>\\n
    — <key name> <base64(4-byte key ID || 8-byte time || 64-byte Ed25519 signature)>\\n
    ...

Each line is a C2SP tlog-cosignature ``cosignature/v1`` (signature type 0x04):

- key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4];
- the time is a big-endian unsigned 64-bit POSIX timestamp, at most 2**63 - 1;
- the Ed25519 signature is over ``"cosignature/v1\\ntime <decimal time>\\n"``
  followed by the checkpoint text (including its final newline).

Plain signed-note Ed25519 signatures (type 0x01, over the text alone, key ID with
0x01), which validators made before they timestamped their co-signatures, still count
towards trust in :func:`verify_checkpoint`; they carry no time, so only cosignature/v1
lines count in :func:`cosigned_time` and :func:`verify_fresh_checkpoint` (see
docs/adr/0010-timestamped-cosignatures.md). The two kinds have different key IDs and
domain-separated messages, so a line can only ever be read one way.

Invariants:

- Parsing is strict: anything the specifications do not allow is refused with a
  :class:`~farm.errors.CheckpointError` that says what is wrong; nothing is repaired.
- The signed bytes are the note text exactly as received (UTF-8), never re-serialised.
- :func:`verify_checkpoint` trusts a checkpoint only when at least ``threshold``
  distinct known validator keys signed it validly. Signatures from unknown keys are
  ignored, as the signed-note specification requires; a key that signs twice counts
  once; an invalid signature from a known key does not count (see its docstring).
- :func:`cosigned_time` is a time that at least ``threshold`` distinct known
  validators vouch for: with at most f faulty among them, at least one honest validator
  said the checkpoint was current at that time or later.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from farm import ed25519
from farm.errors import CheckpointError
from farm.merkle import HASH_SIZE

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "Checkpoint",
    "NoteSignature",
    "PublicKeyLike",
    "SignatureTally",
    "SignedNote",
    "cosign_checkpoint",
    "cosignature_key_id",
    "cosignature_message",
    "cosignature_time",
    "cosignatures",
    "cosigned_time",
    "encode_vkey",
    "key_id",
    "merge_signatures",
    "parse_note",
    "parse_vkey",
    "sign_checkpoint",
    "signature_threshold",
    "tally_signatures",
    "verify_checkpoint",
    "verify_fresh_checkpoint",
]

PublicKeyLike = Ed25519PublicKey | bytes
"""An Ed25519 public key, as a ``cryptography`` object or its 32 raw bytes."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the spec requires accepting at least 16)."""

MAX_NOTE_BYTES = 256 * 1024
"""Largest note accepted, in UTF-8 bytes; far above 100 Ed25519 co-signatures."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature time allowed by C2SP tlog-cosignature."""

MAX_CLOCK_SKEW = 60.0
"""Seconds a checkpoint's time may lie ahead of the verifier's clock in
:func:`verify_fresh_checkpoint` (and a peer's co-signature ahead of a validator's)."""

_ED25519_TYPE = b"\x01"
_COSIGNATURE_TYPE = b"\x04"  # C2SP tlog-cosignature, timestamped Ed25519
_COSIGNATURE_HEADER = "cosignature/v1\n"
_TIMESTAMP_SIZE = 8
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_KEY_ID_SIZE = 4
_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


def _has_control(text: str) -> str | None:
    """The first ASCII control character other than newline in ``text``, if any."""
    for ch in text:
        if ch < " " and ch != "\n":
            return ch
    return None


def _valid_key_name(name: str) -> bool:
    """Signed-note key names: non-empty, no Unicode space, no '+', no control chars."""
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or ch < " " for ch in name)
        and _utf8_ok(name)
    )


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode_strict(value: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded and canonical, or CheckpointError."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CheckpointError(f"{what} is not valid base64: {value!r}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise CheckpointError(f"{what} is not canonical base64: {value!r}")
    return raw


def _raw_public_key(public_key: PublicKeyLike) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes_raw()
    if len(public_key) != _ED25519_KEY_SIZE:
        raise CheckpointError(
            f"Ed25519 public key is {len(public_key)} bytes, want {_ED25519_KEY_SIZE}"
        )
    return bytes(public_key)


def _check_key_name(name: str) -> None:
    if not _valid_key_name(name):
        raise CheckpointError(
            f"key name {name!r} is not valid: it must be non-empty, with no spaces and no '+'"
        )


# --- keys -----------------------------------------------------------------------------


def _key_id(name: str, public_key: PublicKeyLike, sig_type: bytes) -> bytes:
    _check_key_name(name)
    raw = _raw_public_key(public_key)
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + sig_type + raw).digest()
    return digest[:_KEY_ID_SIZE]


def key_id(name: str, public_key: PublicKeyLike) -> bytes:
    """The 4-byte signed-note key ID of a plain Ed25519 key under ``name``:
    SHA-256(name || 0x0A || 0x01 || public key)[:4].

    Raises CheckpointError for an invalid name or a key that is not 32 bytes.
    """
    return _key_id(name, public_key, _ED25519_TYPE)


def cosignature_key_id(name: str, public_key: PublicKeyLike) -> bytes:
    """The 4-byte key ID of an Ed25519 cosigner (C2SP tlog-cosignature) under
    ``name``: SHA-256(name || 0x0A || 0x04 || public key)[:4].

    Raises CheckpointError for an invalid name or a key that is not 32 bytes.
    """
    return _key_id(name, public_key, _COSIGNATURE_TYPE)


def encode_vkey(name: str, public_key: PublicKeyLike) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>``,
    the form in which validator keys are distributed to consumers and pinned.
    """
    raw = _raw_public_key(public_key)
    encoded = base64.b64encode(_ED25519_TYPE + raw).decode("ascii")
    return f"{name}+{key_id(name, raw).hex()}+{encoded}"


def parse_vkey(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """Parse a verifier key string into ``(name, public key)``.

    ``dict(parse_vkey(v) for v in pinned)`` is the ``known`` argument of
    :func:`verify_checkpoint`. Raises CheckpointError unless the string is exactly
    what :func:`encode_vkey` makes: a valid name, eight lower-case hex digits that
    match the key ID, and canonical base64 of 0x01 followed by 32 key bytes.
    """
    name, sep, rest = vkey.partition("+")
    kid_hex, sep2, encoded = rest.partition("+")
    if not (sep and sep2):
        raise CheckpointError(f"malformed verifier key {vkey!r}: want <name>+<keyid>+<key>")
    _check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(kid_hex):
        raise CheckpointError(f"malformed verifier key {vkey!r}: key ID is not 8 hex digits")
    raw = _b64decode_strict(encoded, "verifier key material")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[:1] != _ED25519_TYPE:
        raise CheckpointError(
            f"malformed verifier key {vkey!r}: want 0x01 and a 32-byte Ed25519 key"
        )
    if key_id(name, raw[1:]).hex() != kid_hex:
        raise CheckpointError(f"malformed verifier key {vkey!r}: key ID does not match the key")
    try:
        return name, Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError as exc:
        raise CheckpointError(f"malformed verifier key {vkey!r}: {exc}") from None


def signature_threshold(validators: int) -> int:
    """The number of validator signatures that makes a checkpoint trusted: the
    smallest count above two thirds of ``validators``, i.e. 2f+1 when n = 3f+1.

    Raises CheckpointError if there are no validators (nothing can be trusted).
    """
    if validators < 1:
        raise CheckpointError(f"cannot trust checkpoints with {validators} validators")
    return 2 * validators // 3 + 1


# --- checkpoint body ------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One state of the log: its origin, its tree size and its root hash.

    Construction validates every field and raises CheckpointError otherwise.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _has_control(self.origin):
            raise CheckpointError(f"checkpoint origin {self.origin!r} is empty or not one line")
        if not _utf8_ok(self.origin):
            raise CheckpointError(f"checkpoint origin {self.origin!r} is not valid UTF-8")
        if isinstance(self.size, bool) or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint tree size {self.size!r} is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(
                f"checkpoint root hash is {len(self.root_hash)} bytes, want {HASH_SIZE}"
            )
        for line in self.extensions:
            if not line or "\n" in line or _has_control(line) or not _utf8_ok(line):
                raise CheckpointError(f"checkpoint extension line {line!r} is empty or invalid")

    def body(self) -> str:
        """The checkpoint note text, the bytes validators sign (UTF-8 encoded)."""
        root_b64 = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root_b64, *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (C2SP tlog-checkpoint).

        Raises CheckpointError for a missing final newline, fewer than three lines, an
        empty line, a size that is not plain decimal without leading zeroes, or a root
        that is not canonical base64 of 32 bytes.
        """
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint text has {len(lines)} lines, want at least 3")
        for number, line in enumerate(lines, start=1):
            if not line:
                raise CheckpointError(f"checkpoint line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError(f"checkpoint tree size {size_text!r} is not a decimal number")
        size = int(size_text)
        if size > _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint tree size {size_text} is out of range")
        root_hash = _b64decode_strict(root_text, "checkpoint root hash")
        return cls(origin, size, root_hash, tuple(extensions))


# --- signed notes ---------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_id) != _KEY_ID_SIZE or not self.signature:
            raise CheckpointError(
                f"signature by {self.name}: want a {_KEY_ID_SIZE}-byte key ID and a signature"
            )

    def line(self) -> str:
        """The signature line, ending in a newline."""
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note text (ending in a newline) and its signature lines, as received."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise CheckpointError("malformed note: the text does not end with a newline")
        if not self.signatures:
            raise CheckpointError("malformed note: no signatures")

    def render(self) -> str:
        """The note as it travels: text, a blank line, one line per signature."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def parse_note(note: str | bytes) -> SignedNote:
    """Parse a signed note strictly (C2SP signed-note); verify nothing.

    Raises CheckpointError for invalid UTF-8, a control character, a note larger than
    MAX_NOTE_BYTES, no blank line before the signatures, an empty signature block or
    one not ending in a newline, a line that is not ``— <name> <base64>``, an invalid
    key name, non-canonical base64, a signature shorter than 5 bytes, or more than
    MAX_SIGNATURES signatures.
    """
    text = _note_text(note)
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block:
        raise CheckpointError("malformed note: no signatures")
    if not block.endswith("\n"):
        raise CheckpointError("malformed note: the last signature line has no newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(
            f"malformed note: {len(lines)} signatures, at most {MAX_SIGNATURES} accepted"
        )
    signatures = tuple(_parse_signature_line(n, line) for n, line in enumerate(lines, 1))
    return SignedNote(body, signatures)


def _note_text(note: str | bytes) -> str:
    """The note as text: valid UTF-8, within MAX_NOTE_BYTES, no control characters."""
    if isinstance(note, bytes):
        try:
            text = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("malformed note: not valid UTF-8") from None
        size = len(note)
    else:
        if not _utf8_ok(note):
            raise CheckpointError("malformed note: not valid UTF-8")
        text, size = note, len(note.encode("utf-8"))
    if size > MAX_NOTE_BYTES:
        raise CheckpointError(f"malformed note: larger than {MAX_NOTE_BYTES} bytes")
    bad = _has_control(text)
    if bad is not None:
        raise CheckpointError(f"malformed note: control character U+{ord(bad):04X}")
    return text


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    """One ``— <name> <base64(key ID || signature)>`` line, without its newline."""
    if not line.startswith(_SIG_PREFIX):
        raise CheckpointError(
            f"malformed note: signature line {number} does not start with an em dash and a space"
        )
    name, sep, blob = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise CheckpointError(f"malformed note: signature line {number} has no signature")
    if not _valid_key_name(name):
        raise CheckpointError(f"malformed note: invalid key name {name!r}")
    raw = _b64decode_strict(blob, f"signature line {number}")
    if len(raw) <= _KEY_ID_SIZE:
        raise CheckpointError(f"malformed note: signature line {number} is too short")
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def _checkpoint_text(checkpoint: Checkpoint | str) -> tuple[str, tuple[NoteSignature, ...]]:
    """The checkpoint text to sign and the signatures a note already carries."""
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.body(), ()
    parsed = parse_note(checkpoint)
    Checkpoint.from_body(parsed.text)
    return parsed.text, parsed.signatures


def _add_signature(text: str, existing: tuple[NoteSignature, ...], signature: NoteSignature) -> str:
    kept = tuple(s for s in existing if (s.name, s.key_id) != (signature.name, signature.key_id))
    if len(kept) + 1 > MAX_SIGNATURES:
        raise CheckpointError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return SignedNote(text, (*kept, signature)).render()


def sign_checkpoint(checkpoint: Checkpoint | str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Add one plain signed-note Ed25519 signature (type 0x01, no time) to a checkpoint.

    Validators now co-sign with :func:`cosign_checkpoint`; this remains for notes in
    the older form and for interoperability tests. ``checkpoint`` is either a
    :class:`Checkpoint` (the result then has one signature) or a signed note over a
    checkpoint, whose signatures are kept, except an earlier one by this same key and
    type, which the new one replaces. Raises CheckpointError for an invalid name, a
    malformed note, or a note whose text is not a checkpoint.
    """
    text, existing = _checkpoint_text(checkpoint)
    kid = key_id(name, private_key.public_key())
    signature = NoteSignature(name, kid, private_key.sign(text.encode("utf-8")))
    return _add_signature(text, existing, signature)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: ``cosignature/v1``, ``time <timestamp>`` and
    the checkpoint text, each line ending in a newline (C2SP tlog-cosignature).

    Raises CheckpointError for a time outside 0..MAX_TIMESTAMP or a text that does not
    end in a newline.
    """
    _check_timestamp(timestamp)
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text does not end with a newline")
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def cosignature_time(signature: NoteSignature) -> int:
    """The time a cosignature/v1 line claims, read without verifying anything.

    Raises CheckpointError if the line is not 4 + 8 + 64 bytes or its time exceeds
    MAX_TIMESTAMP. Only a verified time means anything: see :func:`cosignatures`.
    """
    blob = signature.signature
    if len(blob) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
        raise CheckpointError(
            f"signature by {signature.name} is {len(blob) + _KEY_ID_SIZE} bytes, "
            f"not a cosignature/v1 ({_KEY_ID_SIZE + _TIMESTAMP_SIZE + _ED25519_SIG_SIZE})"
        )
    stamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
    _check_timestamp(stamp)
    return stamp


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise CheckpointError(f"cosignature time {timestamp!r} is not an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature time {timestamp} is outside 0..2^63-1")


def cosign_checkpoint(
    checkpoint: Checkpoint | str, name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> str:
    """Add one validator's timestamped cosignature (C2SP cosignature/v1) to a checkpoint.

    The validator states that, as of ``timestamp`` (POSIX seconds), this checkpoint is
    the largest tree of the log it has seen. ``checkpoint`` is a :class:`Checkpoint`
    (the result then has one signature) or a signed note over one, whose signatures
    are kept, except an earlier cosignature by this same key, which the new one
    replaces. Raises CheckpointError for an invalid name or time, a malformed note, or
    a note whose text is not a checkpoint.
    """
    text, existing = _checkpoint_text(checkpoint)
    message = cosignature_message(text, timestamp)
    kid = cosignature_key_id(name, private_key.public_key())
    stamp = timestamp.to_bytes(_TIMESTAMP_SIZE, "big")
    signature = NoteSignature(name, kid, stamp + private_key.sign(message))
    return _add_signature(text, existing, signature)


def merge_signatures(*notes: str | bytes) -> str:
    """Merge co-signatures of the same checkpoint into one signed note.

    Signatures are kept in first-seen order; an exact repeat of a line is dropped.
    Nothing is verified here: :func:`verify_checkpoint` does that. Raises
    CheckpointError if no note is given, any note is malformed, the notes sign
    different texts, or the result would exceed MAX_SIGNATURES.
    """
    if not notes:
        raise CheckpointError("nothing to merge: no notes given")
    parsed = [parse_note(n) for n in notes]
    text = parsed[0].text
    Checkpoint.from_body(text)
    merged: list[NoteSignature] = []
    seen: set[NoteSignature] = set()
    for index, note in enumerate(parsed):
        if note.text != text:
            raise CheckpointError(
                f"cannot merge: note {index + 1} signs a different checkpoint than note 1"
            )
        for sig in note.signatures:
            if sig not in seen:
                seen.add(sig)
                merged.append(sig)
    if len(merged) > MAX_SIGNATURES:
        raise CheckpointError(
            f"cannot merge: {len(merged)} signatures, at most {MAX_SIGNATURES} accepted"
        )
    return SignedNote(text, tuple(merged)).render()


# --- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureTally:
    """Who signed a note, judged against a set of known keys. Never an error by itself.

    ``valid`` names the distinct known keys with a valid signature (of either type);
    ``invalid`` the known keys whose every signature failed; ``unknown`` the signature
    lines ignored because no known key has that name and key ID; ``known`` is how many
    distinct known keys there are; ``times`` maps each known key (by the name in
    ``valid``) with a valid cosignature/v1 to the newest time it vouched for.
    """

    valid: tuple[str, ...]
    invalid: tuple[str, ...]
    unknown: tuple[str, ...]
    known: int
    times: Mapping[str, int] = field(default_factory=dict)

    def summary(self, threshold: int) -> str:
        """A one-line account, e.g. ``2/3 known validator signatures, need 3``."""
        text = f"{len(self.valid)}/{self.known} known validator signatures, need {threshold}"
        if self.invalid:
            text += f"; invalid signature from {', '.join(self.invalid)}"
        if self.unknown:
            text += f"; {len(self.unknown)} signature(s) from unknown keys ignored"
        return text


@dataclass(frozen=True)
class _Judged:
    """Every signature of a note judged: by raw key, the valid name, best cosignature."""

    valid: dict[bytes, str]
    failed: dict[bytes, str]
    unknown: list[str]
    cosigs: dict[bytes, tuple[int, NoteSignature]]
    known: int


@functools.lru_cache(maxsize=64)
def _key_table(
    keys: tuple[tuple[str, bytes], ...],
) -> Mapping[tuple[str, bytes], tuple[bytes, bool]]:
    """(name, key ID) → (raw key, is a cosignature key) for both signature types of
    every (name, raw key); cached, since a validator judges every co-signature its
    peers send against the same genesis keys (an invalid name raises, uncached)."""
    table: dict[tuple[str, bytes], tuple[bytes, bool]] = {}
    for name, raw in keys:
        table[(name, key_id(name, raw))] = (raw, False)
        table[(name, cosignature_key_id(name, raw))] = (raw, True)
    return MappingProxyType(table)


def _judge(note: SignedNote, known: Mapping[str, PublicKeyLike]) -> _Judged:
    """Verify every signature line of ``note`` made by a key in ``known``.

    Plain (0x01) lines: one valid line per key is enough. Cosignature (0x04) lines:
    the newest valid one per key is kept, so a line with a later time is verified even
    when the key already has a valid one.
    """
    by_name_and_id = _key_table(tuple((n, _raw_public_key(k)) for n, k in known.items()))
    body = note.text.encode("utf-8")
    valid: dict[bytes, str] = {}
    failed: dict[bytes, str] = {}
    cosigs: dict[bytes, tuple[int, NoteSignature]] = {}
    unknown: list[str] = []
    for sig in note.signatures:
        match = by_name_and_id.get((sig.name, sig.key_id))
        if match is None:
            unknown.append(sig.name)
            continue
        raw_key, timestamped = match
        if timestamped:
            ok, stamp = _cosignature_valid(raw_key, sig.signature, note.text, cosigs.get(raw_key))
            if ok:
                cosigs[raw_key] = (stamp, sig)
        elif raw_key in valid:
            continue
        else:
            ok = _ed25519_valid(raw_key, sig.signature, body)
        if ok:
            valid.setdefault(raw_key, sig.name)
            failed.pop(raw_key, None)
        elif raw_key not in valid:
            failed.setdefault(raw_key, sig.name)
    distinct = len({raw for raw, _ in by_name_and_id.values()})
    return _Judged(valid, failed, unknown, cosigs, distinct)


def _cosignature_valid(
    raw_key: bytes, blob: bytes, text: str, best: tuple[int, NoteSignature] | None
) -> tuple[bool, int]:
    """(valid, time) of a cosignature/v1 ``blob`` (time || signature) over ``text``.

    A line no newer than ``best`` is not verified and reported valid only if it is
    ``best`` itself being repeated; it adds nothing either way.
    """
    if len(blob) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
        return False, 0
    stamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
    if stamp > MAX_TIMESTAMP:
        return False, stamp
    if best is not None and stamp <= best[0]:
        return best[1].signature == blob, stamp
    message = cosignature_message(text, stamp)
    return _ed25519_valid(raw_key, blob[_TIMESTAMP_SIZE:], message), stamp


def tally_signatures(note: SignedNote, known: Mapping[str, PublicKeyLike]) -> SignatureTally:
    """Check every signature of ``note`` made by a key in ``known`` (name → key).

    A key is matched by name and key ID together, for either signature type (plain
    Ed25519 0x01 or cosignature/v1 0x04). Keys are counted by their public key bytes,
    so one key listed under two names, or signing twice, counts once.
    Raises CheckpointError only for an unusable ``known`` entry (bad name or key).
    """
    judged = _judge(note, known)
    return SignatureTally(
        valid=tuple(judged.valid.values()),
        invalid=tuple(judged.failed.values()),
        unknown=tuple(judged.unknown),
        known=judged.known,
        times={judged.valid[raw]: stamp for raw, (stamp, _) in judged.cosigs.items()},
    )


def cosignatures(
    note: SignedNote, known: Mapping[str, PublicKeyLike]
) -> dict[str, tuple[int, NoteSignature]]:
    """The valid cosignature/v1 lines of ``note`` by keys of ``known``: for each key,
    under the name it signed with, its newest (time, signature line).

    Raises CheckpointError only for an unusable ``known`` entry (bad name or key).
    """
    judged = _judge(note, known)
    return {sig.name: (stamp, sig) for stamp, sig in judged.cosigs.values()}


def _ed25519_valid(raw_key: bytes, signature: bytes, message: bytes) -> bool:
    return ed25519.verify(raw_key, signature, message)


def _verified(
    note_text: str | bytes,
    known: Mapping[str, PublicKeyLike],
    threshold: int,
    origin: str,
) -> tuple[Checkpoint, SignatureTally]:
    distinct = len({_raw_public_key(k) for k in known.values()})
    if threshold < 1:
        raise CheckpointError(f"threshold {threshold} trusts nothing signed; it must be >= 1")
    if threshold > distinct:
        raise CheckpointError(
            f"threshold {threshold} can never be met by {distinct} known validator keys"
        )
    note = parse_note(note_text)
    checkpoint = Checkpoint.from_body(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}"
        )
    tally = tally_signatures(note, known)
    if len(tally.valid) < threshold:
        raise CheckpointError(
            f"checkpoint {origin} at size {checkpoint.size}: {tally.summary(threshold)}"
        )
    return checkpoint, tally


def verify_checkpoint(
    note_text: str | bytes,
    known: Mapping[str, PublicKeyLike],
    threshold: int,
    origin: str,
) -> Checkpoint:
    """Return the checkpoint of ``note_text`` if it is trusted; raise otherwise.

    Trusted means: the note parses strictly, its text is a checkpoint for ``origin``,
    and at least ``threshold`` distinct keys of ``known`` (name → Ed25519 public key)
    signed that text validly, with a cosignature/v1 or a plain signed-note signature.
    Unknown signers are ignored. An invalid signature from a known key is not counted
    but does not by itself reject the note (the signed-note spec says clients SHOULD
    reject it): a single faulty validator, or whoever relays the note, must not be able
    to veto a checkpoint that 2f+1 validators signed. The time of the cosignatures is
    not judged here: use :func:`verify_fresh_checkpoint` for that.

    Raises CheckpointError: for a threshold below 1 or above the number of known keys,
    a malformed note or checkpoint, another origin, or too few signatures, with a
    message such as ``2/3 known validator signatures, need 3``.
    """
    return _verified(note_text, known, threshold, origin)[0]


def cosigned_time(
    note: str | bytes,
    known: Mapping[str, PublicKeyLike],
    threshold: int,
    origin: str,
) -> int:
    """The time (POSIX seconds) at which at least ``threshold`` distinct known
    validators vouch that the checkpoint of ``note`` was the latest state of the log.

    The note is first verified as by :func:`verify_checkpoint`. Then the newest valid
    cosignature/v1 time of each distinct known key is taken, sorted newest first, and
    the ``threshold``-th is returned: with threshold 2f+1, f faulty validators signing
    far-future times cannot make a stale checkpoint look fresh.

    Raises CheckpointError: everything :func:`verify_checkpoint` raises, and when fewer
    than ``threshold`` known keys made a valid timestamped cosignature.
    """
    checkpoint, tally = _verified(note, known, threshold, origin)
    return _threshold_time(checkpoint, tally, threshold)


def _threshold_time(checkpoint: Checkpoint, tally: SignatureTally, threshold: int) -> int:
    times = sorted(tally.times.values(), reverse=True)
    if len(times) < threshold:
        raise CheckpointError(
            f"checkpoint {checkpoint.origin} at size {checkpoint.size}: {len(times)}/"
            f"{tally.known} known validators gave it a time (cosignature/v1), need {threshold}"
        )
    return times[threshold - 1]


def verify_fresh_checkpoint(
    note: str | bytes,
    known: Mapping[str, PublicKeyLike],
    threshold: int,
    origin: str,
    *,
    now: float,
    max_age: float,
) -> Checkpoint:
    """Return the checkpoint of ``note`` if it is trusted and recent; raise otherwise.

    Recent means: its :func:`cosigned_time` is at most ``max_age`` seconds before
    ``now`` (POSIX seconds, the caller's clock) and at most :data:`MAX_CLOCK_SKEW`
    seconds after it. This is the defence against a freeze attack (TUF): a node, or
    a ledger whose validators are halted, serving an old checkpoint forever.

    Raises CheckpointError: everything :func:`cosigned_time` raises; ``now`` or
    ``max_age`` not finite or ``max_age`` negative; a checkpoint too old (message
    ``checkpoint is 3600 s old, older than the 600 s allowed: ...``) or in the future.
    """
    if not (math.isfinite(now) and math.isfinite(max_age)) or max_age < 0:
        raise CheckpointError(
            f"freshness check needs a finite now and max_age >= 0, got now={now!r}, "
            f"max_age={max_age!r}"
        )
    checkpoint, tally = _verified(note, known, threshold, origin)
    stamp = _threshold_time(checkpoint, tally, threshold)
    age = now - stamp
    if age > max_age:
        raise CheckpointError(
            f"checkpoint is {age:.0f} s old, older than the {max_age:g} s allowed: "
            "the node or the ledger may be frozen; try another node"
        )
    if -age > MAX_CLOCK_SKEW:
        raise CheckpointError(
            f"checkpoint is dated {-age:.0f} s in the future, more than the "
            f"{MAX_CLOCK_SKEW:g} s of clock skew allowed: check this machine's clock"
        )
    return checkpoint
