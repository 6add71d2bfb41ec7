"""Timestamped co-signatures (C2SP tlog-cosignature, cosignature/v1) and checkpoint
freshness: spec encoding and known answers, tampering, threshold-th time selection,
and the freshness check's verdicts."""

from __future__ import annotations

import base64
import hashlib
import math
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.checkpoint import (
    MAX_CLOCK_SKEW,
    MAX_TIMESTAMP,
    Checkpoint,
    NoteSignature,
    PublicKeyLike,
    cosign_checkpoint,
    cosignature_key_id,
    cosignature_message,
    cosignature_time,
    cosignatures,
    cosigned_time,
    key_id,
    merge_signatures,
    parse_note,
    sign_checkpoint,
    tally_signatures,
    verify_checkpoint,
    verify_fresh_checkpoint,
)
from farm.merkle import MerkleLog, hash_leaf
from ledger import verify
from ledger.block import verify_commit_certificate
from ledger.errors import CheckpointError

ORIGIN = "farm.example/ledger"
T = 1_767_225_600  # 2026-01-01T00:00:00Z

VALIDATORS = [
    (f"validator-{i}.farm.example", Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32))
    for i in range(7)
]
CHECKPOINT = Checkpoint(ORIGIN, 5, MerkleLog(hash_leaf(bytes([i])) for i in range(5)).root())


def _known(n: int) -> dict[str, PublicKeyLike]:
    return {name: key.public_key() for name, key in VALIDATORS[:n]}


def _cosigned(times: list[int]) -> str:
    """A note co-signed by validator i at times[i]."""
    return merge_signatures(
        *(cosign_checkpoint(CHECKPOINT, *VALIDATORS[i], stamp) for i, stamp in enumerate(times))
    )


def _line(note: str) -> NoteSignature:
    return parse_note(note).signatures[0]


# --- known answers ------------------------------------------------------------------------


def test_key_id_uses_the_cosignature_type_byte_0x04() -> None:
    # A native cosignature/v1 verifier key from transparency-dev/formats' tests:
    # <name>+<key ID computed with 0x04>+<base64(0x04 || public key)>.
    vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    name, kid, material = vkey.split("+")
    raw = base64.b64decode(material)
    assert raw[0] == 0x04
    assert cosignature_key_id(name, raw[1:]).hex() == kid
    assert key_id(name, raw[1:]).hex() != kid  # the plain signed-note type 0x01
    want = hashlib.sha256(name.encode() + b"\n\x04" + raw[1:]).digest()[:4]
    assert cosignature_key_id(name, Ed25519PublicKey.from_public_bytes(raw[1:])) == want


def test_time_is_read_big_endian_after_the_key_id() -> None:
    # transparency-dev/formats TestCoSigV1Timestamp: this line's time is 1727964367.
    blob = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gx"
        "EHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert cosignature_time(NoteSignature("w", blob[:4], blob[4:])) == 1727964367
    plain = base64.b64decode(
        "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXp"
        "Ws1hPb/W/4xkNQY="
    )
    with pytest.raises(CheckpointError, match="not a cosignature/v1"):
        cosignature_time(NoteSignature("w", plain[:4], plain[4:]))


def test_signed_message_is_the_spec_example() -> None:
    # C2SP tlog-cosignature, "Ed25519 signed message".
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosignature_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert cosignature_message(body, 0).startswith(b"cosignature/v1\ntime 0\n")


def test_cosignature_line_layout_round_trips() -> None:
    name, key = VALIDATORS[0]
    note = cosign_checkpoint(CHECKPOINT, name, key, T)
    parsed = parse_note(note)
    assert parsed.text == CHECKPOINT.body()
    (sig,) = parsed.signatures
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == sig.key_id == cosignature_key_id(name, key.public_key())
    assert blob[4:12] == T.to_bytes(8, "big")
    # Checked with the raw Ed25519 API, independently of our verifier:
    message = f"cosignature/v1\ntime {T}\n{CHECKPOINT.body()}".encode()
    key.public_key().verify(blob[12:], message)
    assert cosignature_time(sig) == T
    assert cosignatures(parsed, _known(4)) == {name: (T, sig)}
    assert verify_checkpoint(note, _known(1), 1, ORIGIN) == CHECKPOINT
    assert cosigned_time(note, _known(1), 1, ORIGIN) == T
    assert cosigned_time(note.encode(), _known(1), 1, ORIGIN) == T


def test_cosigning_a_note_keeps_others_and_replaces_its_own_line() -> None:
    note = _cosigned([T, T, T])
    again = cosign_checkpoint(note, *VALIDATORS[0], T + 60)
    names = [s.name for s in parse_note(again).signatures]
    assert names == [VALIDATORS[1][0], VALIDATORS[2][0], VALIDATORS[0][0]]
    assert tally_signatures(parse_note(again), _known(3)).times == {
        VALIDATORS[0][0]: T + 60,
        VALIDATORS[1][0]: T,
        VALIDATORS[2][0]: T,
    }


@pytest.mark.parametrize("stamp", [-1, MAX_TIMESTAMP + 1, 2**64])
def test_times_outside_the_spec_range_cannot_be_signed(stamp: int) -> None:
    with pytest.raises(CheckpointError, match=re.escape("outside 0..2^63-1")):
        cosign_checkpoint(CHECKPOINT, *VALIDATORS[0], stamp)


# --- tampering ----------------------------------------------------------------------------


def _retimed(note: str, stamp: int) -> str:
    """``note`` (one cosignature) with the time bytes replaced, signature unchanged."""
    sig = _line(note)
    blob = stamp.to_bytes(8, "big") + sig.signature[8:]
    return CHECKPOINT.body() + "\n" + NoteSignature(sig.name, sig.key_id, blob).line()


@pytest.mark.parametrize("stamp", [T + 1, T - 1, T + 3600, 0])
def test_a_tampered_time_fails(stamp: int) -> None:
    note = cosign_checkpoint(CHECKPOINT, *VALIDATORS[0], T)
    tampered = _retimed(note, stamp)
    with pytest.raises(CheckpointError, match="invalid signature from validator-0"):
        verify_checkpoint(tampered, _known(1), 1, ORIGIN)
    with pytest.raises(CheckpointError, match="invalid signature"):
        cosigned_time(tampered, _known(1), 1, ORIGIN)


def test_a_signature_over_another_time_fails() -> None:
    name, key = VALIDATORS[0]
    kid = cosignature_key_id(name, key.public_key())
    signed_later = key.sign(cosignature_message(CHECKPOINT.body(), T + 5))
    line = NoteSignature(name, kid, T.to_bytes(8, "big") + signed_later).line()
    with pytest.raises(CheckpointError, match="0/1 known validator signatures"):
        cosigned_time(CHECKPOINT.body() + "\n" + line, _known(1), 1, ORIGIN)


def test_a_time_above_2_63_minus_1_is_refused_even_when_signed() -> None:
    name, key = VALIDATORS[0]
    stamp = 2**63
    message = f"cosignature/v1\ntime {stamp}\n{CHECKPOINT.body()}".encode()
    blob = stamp.to_bytes(8, "big") + key.sign(message)
    line = NoteSignature(name, cosignature_key_id(name, key.public_key()), blob).line()
    with pytest.raises(CheckpointError, match="invalid signature from validator-0"):
        verify_checkpoint(CHECKPOINT.body() + "\n" + line, _known(1), 1, ORIGIN)


def test_a_cosignature_under_the_plain_key_id_is_not_a_signature() -> None:
    note = cosign_checkpoint(CHECKPOINT, *VALIDATORS[0], T)
    sig = _line(note)
    plain_kid = key_id(sig.name, VALIDATORS[0][1].public_key())
    swapped = CHECKPOINT.body() + "\n" + NoteSignature(sig.name, plain_kid, sig.signature).line()
    with pytest.raises(CheckpointError, match="invalid signature from validator-0"):
        verify_checkpoint(swapped, _known(1), 1, ORIGIN)


def test_a_cosignature_of_another_checkpoint_fails() -> None:
    other = Checkpoint(ORIGIN, 6, b"\x07" * 32)
    moved = cosign_checkpoint(other, *VALIDATORS[0], T).replace(other.body(), CHECKPOINT.body())
    with pytest.raises(CheckpointError, match="invalid signature"):
        verify_checkpoint(moved, _known(1), 1, ORIGIN)


def test_plain_signatures_still_verify_but_carry_no_time() -> None:
    note = merge_signatures(*(sign_checkpoint(CHECKPOINT, n, k) for n, k in VALIDATORS[:3]))
    assert verify_checkpoint(note, _known(4), 3, ORIGIN) == CHECKPOINT
    with pytest.raises(
        CheckpointError, match=re.escape("0/4 known validators gave it a time (cosignature/v1)")
    ):
        cosigned_time(note, _known(4), 3, ORIGIN)
    mixed = merge_signatures(note, cosign_checkpoint(CHECKPOINT, *VALIDATORS[3], T))
    assert tally_signatures(parse_note(mixed), _known(4)).times == {VALIDATORS[3][0]: T}
    with pytest.raises(CheckpointError, match="1/4 known validators gave it a time"):
        cosigned_time(mixed, _known(4), 3, ORIGIN)


# --- which time 2f+1 validators vouch for -------------------------------------------------

# validator i's time (None: no cosignature), threshold → the cosigned time (or None).
TIME_CASES = [
    ([T, T, T, T], 3, T),
    ([T + 100, T + 400, T + 300, T + 200], 3, T + 200),
    ([T + 100, T + 400, T + 300, T + 200], 1, T + 400),
    ([T + 100, T + 400, T + 300, T + 200], 4, T + 100),
    # one Byzantine validator dating far into the future does not make it fresh:
    ([T, T + 10**9, T + 5, None], 3, T),
    # two of four cannot vouch alone:
    ([T + 50, T + 60, None, None], 3, None),
    ([T + 1, T + 2, T + 3, T + 4, T + 5, T + 6, T + 7], 5, T + 3),
]


@pytest.mark.parametrize(("times", "threshold", "expected"), TIME_CASES)
def test_the_threshold_th_newest_time_is_taken(
    times: list[int | None], threshold: int, expected: int | None
) -> None:
    note = merge_signatures(
        *(
            cosign_checkpoint(CHECKPOINT, *VALIDATORS[i], t)
            for i, t in enumerate(times)
            if t is not None
        )
    )
    known = _known(len(times))
    if expected is None:
        with pytest.raises(CheckpointError, match="known validator signatures, need"):
            cosigned_time(note, known, threshold, ORIGIN)
    else:
        assert cosigned_time(note, known, threshold, ORIGIN) == expected


def test_a_validator_counts_once_with_its_newest_valid_time() -> None:
    old = cosign_checkpoint(CHECKPOINT, *VALIDATORS[0], T)
    new = cosign_checkpoint(CHECKPOINT, *VALIDATORS[0], T + 500)
    forged = _retimed(new, T + 10**6)  # a relayer cannot add a later time
    note = CHECKPOINT.body() + "\n" + "".join(_line(n).line() for n in (old, forged, new, old))
    tally = tally_signatures(parse_note(note), _known(2))
    assert tally.valid == (VALIDATORS[0][0],)
    assert tally.times == {VALIDATORS[0][0]: T + 500}
    assert cosigned_time(note, _known(2), 1, ORIGIN) == T + 500
    with pytest.raises(CheckpointError, match="1/2 known validator signatures, need 2"):
        cosigned_time(note, _known(2), 2, ORIGIN)


@given(
    st.lists(st.integers(0, 10**10), min_size=1, max_size=7),
    st.integers(1, 7),
)
@settings(max_examples=40, deadline=None)
def test_cosigned_time_is_the_threshold_th_of_the_sorted_times(
    times: list[int], threshold: int
) -> None:
    note = _cosigned(times)
    known = _known(7)
    if threshold > len(times):
        with pytest.raises(CheckpointError):
            cosigned_time(note, known, threshold, ORIGIN)
    else:
        want = sorted(times, reverse=True)[threshold - 1]
        assert cosigned_time(note, known, threshold, ORIGIN) == want


# --- freshness ----------------------------------------------------------------------------


def test_a_fresh_checkpoint_is_accepted() -> None:
    note = _cosigned([T, T + 2, T + 1, T - 400])
    assert verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T + 30, max_age=600) == (
        CHECKPOINT
    )
    assert verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T + 600, max_age=600)
    # a little clock skew the other way is tolerated
    assert verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T - 30, max_age=600)


def test_an_old_checkpoint_is_refused_with_an_actionable_message() -> None:
    note = _cosigned([T, T, T, T])
    with pytest.raises(CheckpointError) as info:
        verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T + 3600, max_age=600)
    assert str(info.value) == (
        "checkpoint is 3600 s old, older than the 600 s allowed: "
        "the node or the ledger may be frozen; try another node"
    )
    with pytest.raises(CheckpointError, match="601 s old"):
        verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T + 601, max_age=600)


def test_only_one_fresh_validator_does_not_make_it_fresh() -> None:
    note = _cosigned([T, T, T, T + 3590])
    with pytest.raises(CheckpointError, match="3600 s old"):
        verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T + 3600, max_age=600)


def test_a_checkpoint_from_the_future_is_refused() -> None:
    note = _cosigned([T, T, T, T])
    ahead = MAX_CLOCK_SKEW + 60
    with pytest.raises(CheckpointError, match=f"{ahead:.0f} s in the future"):
        verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T - ahead, max_age=600)


@pytest.mark.parametrize(
    ("now", "max_age"), [(T, math.nan), (math.nan, 600.0), (T, -1.0), (math.inf, 600.0)]
)
def test_freshness_fails_closed_on_unusable_arguments(now: float, max_age: float) -> None:
    with pytest.raises(CheckpointError, match="finite"):
        verify_fresh_checkpoint(_cosigned([T] * 4), _known(4), 3, ORIGIN, now=now, max_age=max_age)


def test_freshness_also_checks_trust_and_origin() -> None:
    note = _cosigned([T, T])
    with pytest.raises(CheckpointError, match="2/4 known validator signatures, need 3"):
        verify_fresh_checkpoint(note, _known(4), 3, ORIGIN, now=T, max_age=600)
    with pytest.raises(CheckpointError, match="expected 'other'"):
        verify_fresh_checkpoint(_cosigned([T] * 4), _known(4), 3, "other", now=T, max_age=600)


def test_the_verify_facade_exports_the_consumer_api() -> None:
    assert verify.cosigned_time is cosigned_time
    assert verify.verify_fresh_checkpoint is verify_fresh_checkpoint
    assert verify.verify_commit_certificate is verify_commit_certificate
    assert verify.MAX_CLOCK_SKEW == MAX_CLOCK_SKEW
    pinned = [verify.encode_vkey(n, k.public_key()) for n, k in VALIDATORS[:4]]
    known = dict(verify.parse_vkey(v) for v in pinned)
    note = _cosigned([T, T + 1, T + 2, T + 3])
    threshold = verify.signature_threshold(len(known))
    assert verify.cosigned_time(note, known, threshold, ORIGIN) == T + 1
    assert verify.verify_fresh_checkpoint(
        note, known, threshold, ORIGIN, now=T + 60, max_age=120
    ) == (CHECKPOINT)
