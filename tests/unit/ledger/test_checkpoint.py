"""Co-signed checkpoints: known answers from Go's sumdb/note and the C2SP spec, the
threshold rule table-driven, and strict refusal of malformed notes."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    PublicKeyLike,
    SignedNote,
    encode_vkey,
    key_id,
    merge_signatures,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    signature_threshold,
    tally_signatures,
    verify_checkpoint,
)
from farm.merkle import MerkleLog, hash_leaf
from ledger.errors import CheckpointError

# --- golang.org/x/mod/sumdb/note note_test.go ---------------------------------------------

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)

# --- C2SP tlog-checkpoint.md example (the log's key is not published with it) -------------

SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

ORIGIN = "farm.example/ledger"


def _peter_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def _validator_keys(n: int) -> list[tuple[str, Ed25519PrivateKey]]:
    return [
        (f"validator-{i}.farm.example", Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32))
        for i in range(n)
    ]


VALIDATORS = _validator_keys(7)
OUTSIDER = ("outsider.example", Ed25519PrivateKey.from_private_bytes(b"\xee" * 32))


def _known(n: int) -> dict[str, PublicKeyLike]:
    return {name: key.public_key() for name, key in VALIDATORS[:n]}


def _checkpoint(size: int = 5) -> Checkpoint:
    log = MerkleLog(hash_leaf(bytes([i])) for i in range(size))
    return Checkpoint(ORIGIN, size, log.root())


CHECKPOINT = _checkpoint()
# One single-signature note per validator; co-signed notes are merges of these.
SIGNED = [sign_checkpoint(CHECKPOINT, name, key) for name, key in VALIDATORS]
OUTSIDER_SIGNED = sign_checkpoint(CHECKPOINT, *OUTSIDER)


def _garbage_signature_line(index: int) -> str:
    """A line with validator ``index``'s name and key ID but a wrong signature."""
    name, key = VALIDATORS[index]
    return NoteSignature(name, key_id(name, key.public_key()), b"\x00" * 64).line()


# --- known answers ------------------------------------------------------------------------


def test_go_vkey_round_trips() -> None:
    name, public = parse_vkey(PETER_VKEY)
    assert name == "PeterNeumann"
    assert encode_vkey(name, public) == PETER_VKEY
    assert key_id(name, public).hex() == "c74f20a3"
    assert encode_vkey("PeterNeumann", _peter_private_key().public_key()) == PETER_VKEY


def test_go_signature_is_reproduced_byte_for_byte() -> None:
    # Ed25519 is deterministic, so signing must give Go's published note exactly.
    key = _peter_private_key()
    kid = key_id("PeterNeumann", key.public_key())
    signed = SignedNote(GO_TEXT, (NoteSignature("PeterNeumann", kid, key.sign(GO_TEXT.encode())),))
    assert signed.render() == GO_TEXT + "\n" + PETER_SIG
    assert parse_note(GO_TEXT + "\n" + PETER_SIG) == signed


def test_go_note_tally() -> None:
    note = parse_note(GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    both = dict([parse_vkey(PETER_VKEY), parse_vkey(ENOCH_VKEY)])
    assert tally_signatures(note, both).valid == ("PeterNeumann", "EnochRoot")
    only_peter = dict([parse_vkey(PETER_VKEY)])
    tally = tally_signatures(note, only_peter)
    assert (tally.valid, tally.unknown, tally.known) == (("PeterNeumann",), ("EnochRoot",), 1)
    tampered = parse_note(GO_TEXT.replace("cryptography", "cryptographY") + "\n" + PETER_SIG)
    assert tally_signatures(tampered, both).invalid == ("PeterNeumann",)


def test_spec_checkpoint_parses() -> None:
    note = parse_note(SPEC_CHECKPOINT)
    checkpoint = Checkpoint.from_body(note.text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.body() == note.text
    assert note.render() == SPEC_CHECKPOINT
    assert [s.name for s in note.signatures] == ["example.com/behind-the-sofa"]
    # We do not hold that log's key: its signature is unknown, so it proves nothing.
    with pytest.raises(CheckpointError, match="0/1 known validator signatures, need 1"):
        verify_checkpoint(SPEC_CHECKPOINT, _known(1), 1, "example.com/behind-the-sofa")


# --- checkpoint bodies --------------------------------------------------------------------


def test_checkpoint_body_round_trip() -> None:
    body = CHECKPOINT.body()
    lines = body.split("\n")
    assert lines[:2] == [ORIGIN, "5"]
    assert base64.b64decode(lines[2]) == CHECKPOINT.root_hash
    assert Checkpoint.from_body(body) == CHECKPOINT
    with_ext = Checkpoint(ORIGIN, 0, b"\x00" * 32, ("height 12", "x"))
    assert with_ext.body().endswith("height 12\nx\n")
    assert Checkpoint.from_body(with_ext.body()) == with_ext


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"origin": "a\tb"}, "origin"),
        ({"size": -1}, "tree size"),
        ({"size": 2**64}, "tree size"),
        ({"root_hash": b"\x00" * 31}, "31 bytes"),
        ({"extensions": ("",)}, "extension"),
        ({"extensions": ("a\nb",)}, "extension"),
    ],
)
def test_checkpoint_fields_are_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 1, "root_hash": b"\x00" * 32}
    fields.update(kwargs)
    with pytest.raises(CheckpointError, match=message):
        Checkpoint(**fields)  # type: ignore[arg-type]


_ROOT = base64.b64encode(b"\x01" * 32).decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"o\n5\n{_ROOT}", "does not end with a newline"),
        ("o\n5\n", "has 2 lines"),
        (f"o\n5\n{_ROOT}\n\n", "line 4 is empty"),
        (f"\n5\n{_ROOT}\n", "line 1 is empty"),
        (f"o\n05\n{_ROOT}\n", "not a decimal"),
        (f"o\n-5\n{_ROOT}\n", "not a decimal"),
        (f"o\n+5\n{_ROOT}\n", "not a decimal"),
        (f"o\n 5\n{_ROOT}\n", "not a decimal"),
        (f"o\n5_0\n{_ROOT}\n", "not a decimal"),
        (f"o\n\u0665\n{_ROOT}\n", "not a decimal"),  # Arabic-Indic five
        (f"o\n{2**64}\n{_ROOT}\n", "out of range"),
        (f"o\n5\n{base64.b64encode(b'x' * 31).decode()}\n", "31 bytes"),
        (f"o\n5\n{_ROOT.rstrip('=')}\n", "base64"),
        (f"o\n5\n{_ROOT[:-2]}B=\n", "canonical base64"),
        ("o\n5\n!!!!\n", "base64"),
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.from_body(body)


# --- signing, merging, verifying ----------------------------------------------------------


def test_sign_merge_verify_round_trip() -> None:
    note = merge_signatures(*SIGNED[:4])
    assert verify_checkpoint(note, _known(4), 3, ORIGIN) == CHECKPOINT
    parsed = parse_note(note)
    assert parsed.text == CHECKPOINT.body()
    assert [s.name for s in parsed.signatures] == [name for name, _ in VALIDATORS[:4]]
    assert parse_note(note.encode()) == parsed


def test_cosigning_adds_to_an_existing_note_and_replaces_its_own_line() -> None:
    note = SIGNED[0]
    for name, key in VALIDATORS[1:3]:
        note = sign_checkpoint(note, name, key)
    assert note == merge_signatures(*SIGNED[:3])
    again = sign_checkpoint(note, *VALIDATORS[0])
    assert [s.name for s in parse_note(again).signatures] == [
        VALIDATORS[1][0],
        VALIDATORS[2][0],
        VALIDATORS[0][0],
    ]


def test_signing_refuses_a_note_that_is_not_a_checkpoint() -> None:
    with pytest.raises(CheckpointError, match="line"):
        sign_checkpoint(GO_TEXT + "\n" + PETER_SIG, *VALIDATORS[0])
    with pytest.raises(CheckpointError, match="key name"):
        sign_checkpoint(CHECKPOINT, "bad name", VALIDATORS[0][1])


def test_merge_drops_exact_repeats_and_refuses_different_checkpoints() -> None:
    assert merge_signatures(SIGNED[0], SIGNED[0], SIGNED[1]) == merge_signatures(*SIGNED[:2])
    other = sign_checkpoint(_checkpoint(6), *VALIDATORS[1])
    with pytest.raises(CheckpointError, match="different checkpoint"):
        merge_signatures(SIGNED[0], other)
    with pytest.raises(CheckpointError, match="no notes"):
        merge_signatures()


# keys known, threshold, who signed → outcome (None: trusted; else the error's text).
# Signers: validator indices; "x" an outsider; "d0" a repeat of validator 0's line;
# "g3" a line with validator 3's name and key ID but a wrong signature.
THRESHOLD_CASES = [
    (4, 3, "0 1 2", None),
    (4, 3, "0 1 2 3", None),
    (4, 3, "3 2 1", None),
    (4, 3, "0 1", "2/4 known validator signatures, need 3"),
    (3, 3, "0 1", "2/3 known validator signatures, need 3"),
    (4, 3, "0 d0 d0 1", "2/4 known validator signatures, need 3"),
    (4, 3, "0 1 x", "2/4 known validator signatures, need 3; 1 signature(s) from unknown"),
    (4, 3, "0 1 x 2", None),
    (4, 3, "0 1 4 5 6", "2/4 known validator signatures, need 3; 3 signature(s) from unknown"),
    (4, 3, "0 1 2 g3", None),
    (4, 3, "0 1 g3", "2/4 known validator signatures, need 3; invalid signature from validator-3"),
    (4, 3, "g3 3 0 1", None),
    (4, 1, "2", None),
    (4, 4, "0 1 2", "3/4 known validator signatures, need 4"),
    (7, 5, "0 1 2 3 4", None),
    (7, 5, "0 1 2 3", "4/7 known validator signatures, need 5"),
    (7, 5, "6 5 4 3 2 1 0", None),
    (1, 1, "0", None),
    (1, 1, "x", "0/1 known validator signatures, need 1"),
]


def _note_for(signers: str) -> str:
    lines = []
    for token in signers.split():
        if token == "x":
            lines.append(parse_note(OUTSIDER_SIGNED).signatures[0].line())
        elif token.startswith("g"):
            lines.append(_garbage_signature_line(int(token[1:])))
        else:
            lines.append(parse_note(SIGNED[int(token.lstrip("d"))]).signatures[0].line())
    return CHECKPOINT.body() + "\n" + "".join(lines)


@pytest.mark.parametrize(("known", "threshold", "signers", "outcome"), THRESHOLD_CASES)
def test_threshold(known: int, threshold: int, signers: str, outcome: str | None) -> None:
    note = _note_for(signers)
    if outcome is None:
        assert verify_checkpoint(note, _known(known), threshold, ORIGIN) == CHECKPOINT
    else:
        with pytest.raises(CheckpointError, match=re.escape(outcome)):
            verify_checkpoint(note, _known(known), threshold, ORIGIN)


def test_one_key_under_two_names_counts_once() -> None:
    name0, key0 = VALIDATORS[0]
    alias = sign_checkpoint(CHECKPOINT, "alias.example", key0)
    known: Mapping[str, PublicKeyLike] = {
        name0: key0.public_key(),
        "alias.example": key0.public_key().public_bytes_raw(),
        VALIDATORS[1][0]: VALIDATORS[1][1].public_key(),
    }
    with pytest.raises(CheckpointError, match="threshold 3 can never be met by 2"):
        verify_checkpoint(merge_signatures(SIGNED[0], alias, SIGNED[1]), known, 3, ORIGIN)
    tally = tally_signatures(parse_note(merge_signatures(SIGNED[0], alias)), known)
    assert (len(tally.valid), tally.known) == (1, 2)


def test_a_signature_under_a_known_name_but_another_key_is_ignored() -> None:
    impostor = sign_checkpoint(CHECKPOINT, VALIDATORS[2][0], OUTSIDER[1])
    note = merge_signatures(SIGNED[0], SIGNED[1], impostor)
    tally = tally_signatures(parse_note(note), _known(4))
    assert tally.unknown == (VALIDATORS[2][0],)
    with pytest.raises(CheckpointError, match="2/4 known"):
        verify_checkpoint(note, _known(4), 3, ORIGIN)


def test_tampered_body_fails() -> None:
    note = merge_signatures(*SIGNED[:4])
    tampered = note.replace(f"\n{CHECKPOINT.size}\n", f"\n{CHECKPOINT.size + 1}\n", 1)
    assert tampered != note
    with pytest.raises(CheckpointError, match="0/4 known validator signatures, need 3"):
        verify_checkpoint(tampered, _known(4), 3, ORIGIN)
    other_root = Checkpoint(ORIGIN, CHECKPOINT.size, b"\x07" * 32).body()
    swapped = note.replace(CHECKPOINT.body(), other_root, 1)
    with pytest.raises(CheckpointError, match="invalid signature from"):
        verify_checkpoint(swapped, _known(4), 3, ORIGIN)


def test_origin_must_match() -> None:
    note = merge_signatures(*SIGNED[:4])
    with pytest.raises(
        CheckpointError, match=re.escape("origin 'farm.example/ledger', expected 'other'")
    ):
        verify_checkpoint(note, _known(4), 3, "other")


@pytest.mark.parametrize(
    ("threshold", "message"), [(0, "must be >= 1"), (-1, ">= 1"), (5, "never")]
)
def test_unusable_thresholds_fail_closed(threshold: int, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint(merge_signatures(*SIGNED[:4]), _known(4), threshold, ORIGIN)


def test_no_known_keys_trusts_nothing() -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(SIGNED[0], {}, 1, ORIGIN)


@pytest.mark.parametrize(
    ("validators", "threshold"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (7, 5), (10, 7), (31, 21)]
)
def test_signature_threshold_is_more_than_two_thirds(validators: int, threshold: int) -> None:
    assert signature_threshold(validators) == threshold


def test_signature_threshold_refuses_no_validators() -> None:
    with pytest.raises(CheckpointError):
        signature_threshold(0)


@given(st.lists(st.sampled_from(range(-1, 7)), min_size=1, max_size=12), st.integers(1, 7))
@settings(max_examples=80, deadline=None)
def test_verdict_depends_only_on_the_set_of_valid_known_signers(
    order: list[int], threshold: int
) -> None:
    # -1 stands for the outsider; any order, any repeats.
    lines = [
        parse_note(OUTSIDER_SIGNED if i < 0 else SIGNED[i]).signatures[0].line() for i in order
    ]
    note = CHECKPOINT.body() + "\n" + "".join(lines)
    distinct = len({i for i in order if i >= 0})
    if distinct >= threshold:
        assert verify_checkpoint(note, _known(7), threshold, ORIGIN) == CHECKPOINT
    else:
        with pytest.raises(CheckpointError, match=f"{distinct}/7 known"):
            verify_checkpoint(note, _known(7), threshold, ORIGIN)


# --- malformed notes ----------------------------------------------------------------------

_P = PETER_SIG
MALFORMED_NOTES: list[tuple[str, str | bytes, str]] = [
    # Go's badMsgs:
    ("no signatures", GO_TEXT, "no blank line"),
    ("blank line only", GO_TEXT + "\n", "no signatures"),
    ("no final newline", GO_TEXT + "\n" + _P[:-1], "no newline"),
    ("control character", "\x01" + GO_TEXT + "\n" + _P, "control character U+0001"),
    ("invalid UTF-8", b"\xff" + (GO_TEXT + "\n" + _P).encode(), "UTF-8"),
    (
        "space in key name",
        GO_TEXT + "\n" + _P.replace("PeterNeumann", "Peter Neumann")[:-1],
        "newline",
    ),
    (
        "space in key name, newline",
        GO_TEXT + "\n" + _P.replace("PeterNeumann", "Bad Name"),
        "base64",
    ),
    ("line after signatures", GO_TEXT + "\n" + _P + "Unexpected line.\n", "em dash"),
    # more:
    ("tab", GO_TEXT.replace(" ", "\t", 1) + "\n" + _P, "control character U+0009"),
    ("carriage return", GO_TEXT + "\n" + _P[:-1] + "\r\n", "control character U+000D"),
    ("hyphen for em dash", GO_TEXT + "\n" + _P.replace("—", "-"), "em dash"),
    ("en dash for em dash", GO_TEXT + "\n" + _P.replace("—", "\u2013"), "em dash"),
    ("no space after dash", GO_TEXT + "\n" + _P.replace("— ", "—"), "em dash"),
    ("plus in key name", GO_TEXT + "\n" + _P.replace("PeterNeumann", "Peter+Neumann"), "key name"),
    (
        "no-break space in name",
        GO_TEXT + "\n" + _P.replace("PeterNeumann", "Peter\u00a0N"),
        "key name",
    ),
    ("empty key name", GO_TEXT + "\n" + _P.replace("PeterNeumann", ""), "key name"),
    ("no signature after name", GO_TEXT + "\n— PeterNeumann\n", "no signature"),
    ("empty signature", GO_TEXT + "\n— PeterNeumann \n", "too short"),
    ("4-byte signature", GO_TEXT + "\n— PeterNeumann AAAAAA==\n", "too short"),
    ("unpadded base64", GO_TEXT + "\n" + _P.replace("AM=", "AM"), "base64"),
    ("non-canonical base64", GO_TEXT + "\n" + _P.replace("AM=", "AN="), "canonical"),
    ("URL-safe base64", GO_TEXT + "\n" + _P.replace("/", "_"), "base64"),
    ("two spaces", GO_TEXT + "\n" + _P.replace("Neumann ", "Neumann  "), "base64"),
    ("too many signatures", GO_TEXT + "\n" + _P * (MAX_SIGNATURES + 1), "at most 100"),
    ("huge", GO_TEXT * 10_000 + "\n" + _P, "larger than"),
    ("lone surrogate", GO_TEXT + "\ud800\n\n" + _P, "UTF-8"),
]


@pytest.mark.parametrize(
    ("note", "message"), [c[1:] for c in MALFORMED_NOTES], ids=[c[0] for c in MALFORMED_NOTES]
)
def test_malformed_notes_are_refused(note: str | bytes, message: str) -> None:
    with pytest.raises(CheckpointError, match=re.escape(message)):
        parse_note(note)
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, dict([parse_vkey(PETER_VKEY)]), 1, ORIGIN)


def test_a_hundred_signatures_are_accepted() -> None:
    note = parse_note(GO_TEXT + "\n" + _P * MAX_SIGNATURES)
    assert len(note.signatures) == MAX_SIGNATURES


def test_blank_lines_in_the_text_split_at_the_last_one() -> None:
    text = "a\n\nb\n"
    note = parse_note(text + "\n" + _P)
    assert note.text == text


def test_mangled_verifier_keys_are_refused() -> None:
    # After Go's TestNewVerifier: every proper substring and every one-byte change fails.
    b = PETER_VKEY.encode()
    mangled = {b[i:j] for i, j in itertools.combinations(range(len(b) + 1), 2)} - {b}
    mangled |= {b[:i] + bytes([b[i] + 1]) + b[i + 1 :] for i in range(len(b))}
    mangled |= {
        b"PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        b"PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        b"PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    }
    accepted = []
    for candidate in mangled:
        try:
            parse_vkey(candidate.decode())
        except CheckpointError:
            continue
        accepted.append(candidate)
    assert accepted == []


def test_note_values_refuse_what_cannot_be_rendered() -> None:
    with pytest.raises(CheckpointError, match="no signatures"):
        SignedNote(GO_TEXT, ())
    with pytest.raises(CheckpointError, match="newline"):
        SignedNote("no newline", parse_note(GO_TEXT + "\n" + _P).signatures)
    with pytest.raises(CheckpointError, match="4-byte key ID"):
        NoteSignature("PeterNeumann", b"\x00" * 3, b"sig")
    with pytest.raises(CheckpointError, match="key name"):
        NoteSignature("Peter Neumann", b"\x00" * 4, b"sig")


def test_consumer_flow_through_the_verify_facade() -> None:
    """What a consumer does with no server: pin vkeys, trust a checkpoint, check proofs."""
    from ledger import verify

    pinned = [verify.encode_vkey(name, key.public_key()) for name, key in VALIDATORS[:4]]
    known = dict(verify.parse_vkey(v) for v in pinned)
    threshold = verify.signature_threshold(len(known))

    log = MerkleLog(hash_leaf(f"tx {i}".encode()) for i in range(10))
    old = Checkpoint(ORIGIN, 10, log.root())
    log.extend(hash_leaf(f"tx {i}".encode()) for i in range(10, 23))
    new = Checkpoint(ORIGIN, 23, log.root())
    notes = {
        cp.size: merge_signatures(*(sign_checkpoint(cp, n, k) for n, k in VALIDATORS[:3]))
        for cp in (old, new)
    }

    trusted_old = verify.verify_checkpoint(notes[10], known, threshold, ORIGIN)
    trusted_new = verify.verify_checkpoint(notes[23], known, threshold, ORIGIN)
    leaf = verify.hash_leaf(b"tx 17")
    verify.verify_inclusion(
        leaf, 17, trusted_new.size, log.inclusion_proof(17), trusted_new.root_hash
    )
    verify.verify_consistency(
        trusted_old.size,
        trusted_new.size,
        trusted_old.root_hash,
        trusted_new.root_hash,
        log.consistency_proof(10, 23),
    )
