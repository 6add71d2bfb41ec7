"""The fast path of ``verify_bundle`` never accepts what the full check refuses."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from securesystemslib.dsse import Envelope

from farm.attestation import AttestationBundle, ProvenanceStatement
from farm.attestation._fast import _M, _b64, _parse_fast, _verify_bundle_fast
from farm.attestation.verify import _verify_bundle_checked
from farm.errors import FarmError
from farm.keys import KeyPair
from farm.result import PAYLOAD_TYPE, ResultStatement
from tests.support.attest_world import World

W = World()
BASE: dict[str, Any] = W.bundle().model_dump()
BASE["builder_envelopes"] = list(BASE["builder_envelopes"])


def _resign(
    env: dict[str, Any], key: KeyPair, payload: bytes | None = None, ptype: str = PAYLOAD_TYPE
) -> dict[str, Any]:
    body = payload if payload is not None else base64.b64decode(env["payload"])
    e = Envelope(payload=body, payload_type=ptype, signatures={})
    e.sign(key.signer)
    out: dict[str, Any] = e.to_dict()
    return out


def _flip_coordinator_sig(d: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(d["envelope"]["signatures"][0]["sig"]))
    sig[0] ^= 1
    d["envelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _sig_by_other_builder(d: dict[str, Any]) -> None:
    env = d["builder_envelopes"][0]
    pae = Envelope(base64.b64decode(env["payload"]), PAYLOAD_TYPE, {}).pae()
    sig = W.builders[3].private.sign(pae)
    env["signatures"] = [{"keyid": W.builders[0].keyid, "sig": base64.b64encode(sig).decode()}]


def _coordinator_payload_changed(d: dict[str, Any]) -> None:
    stmt = json.loads(base64.b64decode(d["envelope"]["payload"]))
    stmt["predicate"]["buildDefinition"]["externalParameters"]["arch"] = "arm64"
    d["envelope"] = _resign(d["envelope"], W.coordinator, json.dumps(stmt).encode())


CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "valid": lambda d: None,
    "flip_coordinator_sig": _flip_coordinator_sig,
    "dup_builder_sig": lambda d: d["builder_envelopes"][0]["signatures"].append(
        dict(d["builder_envelopes"][0]["signatures"][0])
    ),
    "urlsafe_payload": lambda d: d["builder_envelopes"][0].update(
        payload=d["builder_envelopes"][0]["payload"].replace("+", "-").replace("/", "_")
    ),
    "other_payload_type": lambda d: d["builder_envelopes"].__setitem__(
        1, _resign(d["builder_envelopes"][1], W.builders[1], ptype="application/json")
    ),
    "sig_by_other_builder": _sig_by_other_builder,
    "coordinator_payload_changed": _coordinator_payload_changed,
    "coordinator_no_sigs": lambda d: d["envelope"].update(signatures=[]),
    "extra_coordinator_sig": lambda d: d["envelope"]["signatures"].append(
        {"keyid": "zz", "sig": "AAAA"}
    ),
    "drop_builder": lambda d: d.update(builder_envelopes=d["builder_envelopes"][:2]),
    "repeat_builder": lambda d: d.update(builder_envelopes=[d["builder_envelopes"][0]] * 3),
}


@pytest.mark.parametrize("name", [*CASES, "unenrolled"])
def test_fast_path_is_never_more_lenient(name: str) -> None:
    data = copy.deepcopy(BASE)
    CASES.get(name, lambda d: None)(data)
    bundle = AttestationBundle.model_validate(data)
    builder_keys = W.builder_keys(2) if name == "unenrolled" else W.builder_keys(3)
    fast = _verify_bundle_fast(bundle, builder_keys, W.coordinator_keys(), 3)
    try:
        ref = _verify_bundle_checked(bundle, builder_keys, W.coordinator_keys(), 3)
    except FarmError:
        ref = None
    if name == "valid":
        assert fast is not None and fast == ref
    assert fast is None or fast == ref


# ------------------------------------------- payload parsing: pydantic JSON vs json.loads

_BUILDER_PAYLOAD = base64.b64decode(BASE["builder_envelopes"][0]["payload"])
_COORDINATOR_PAYLOAD = base64.b64decode(BASE["envelope"]["payload"])


def _reference_parse(model: type[_M], payload: bytes) -> _M | None:
    try:
        return model.model_validate(json.loads(payload))
    except (ValueError, ValidationError):
        return None


def _assert_never_more_lenient(model: type[BaseModel], payload: bytes) -> None:
    fast = _parse_fast(model, payload)
    assert fast is None or fast == _reference_parse(model, payload), payload


_ODD_PAYLOADS = [
    b"\xef\xbb\xbf" + _BUILDER_PAYLOAD,
    _BUILDER_PAYLOAD.decode().encode("utf-16"),
    _BUILDER_PAYLOAD.replace(b'"status":"succeeded"', b'"status":"succeeded","status":"failed"'),
    _BUILDER_PAYLOAD.replace(b'"status":"succeeded"', b'"status":"failed","status":"succeeded"'),
    _BUILDER_PAYLOAD.replace(b'"name":"', b'"name":"\\ud800'),
    _BUILDER_PAYLOAD.replace(b'"name":"', b'"name":"\xed\xa0\x80'),
    _BUILDER_PAYLOAD.replace(b'"size":10', b'"size":10.0'),
    _BUILDER_PAYLOAD.replace(b'"size":10', b'"size":"10"'),
    _BUILDER_PAYLOAD.replace(b'"size":10', b'"size":1e999'),
    _BUILDER_PAYLOAD.replace(b'"exit_code":0', b'"exit_code":NaN'),
    _BUILDER_PAYLOAD.replace(b'"timed_out":false', b'"timed_out":0'),
    _BUILDER_PAYLOAD.replace(b'"timed_out":false', b'"timed_out":"no"'),
    _BUILDER_PAYLOAD.replace(b'"_type"', b'"type_"'),
    _BUILDER_PAYLOAD.replace(b'"demo"', b'"de\x7fmo"'),
    _BUILDER_PAYLOAD.replace(b'"demo"', b'"de\nmo"'),
    _BUILDER_PAYLOAD + b" \n",
    _BUILDER_PAYLOAD + b"x",
    _COORDINATOR_PAYLOAD.replace(b'"arch":"amd64"', b'"arch":"amd64","arch":""'),
    _COORDINATOR_PAYLOAD.replace(b'"quorum":3', b'"quorum":3.5'),
]


def test_payload_parsing_agrees_on_the_valid_payloads() -> None:
    for model, payload in (
        (ResultStatement, _BUILDER_PAYLOAD),
        (ProvenanceStatement, _COORDINATOR_PAYLOAD),
    ):
        fast = _parse_fast(model, payload)
        assert fast is not None and fast == _reference_parse(model, payload)


@pytest.mark.parametrize("payload", _ODD_PAYLOADS)
def test_payload_parsing_odd_inputs(payload: bytes) -> None:
    _assert_never_more_lenient(ResultStatement, payload)
    _assert_never_more_lenient(ProvenanceStatement, payload)


_SNIPPETS = [
    b" ",
    b"\\u0041",
    b"\\ud83d\\ude00",
    b"\\ud800",
    b"\xc3\xa9",
    b"\xff",
    b"0",
    b"-",
    b".5",
    b"e9",
    b'"',
    b"\\",
    b",",
    b":",
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"NaN",
    b"\x7f",
    b"\t",
]


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.data())
def test_payload_parsing_never_more_lenient(coordinator: bool, draw: st.DataObject) -> None:
    model: type[BaseModel] = ProvenanceStatement if coordinator else ResultStatement
    data = bytearray(_COORDINATOR_PAYLOAD if coordinator else _BUILDER_PAYLOAD)
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(data)))
        what = draw.draw(st.sampled_from(_SNIPPETS))
        if draw.draw(st.booleans()) and at < len(data):
            data[at : at + 1] = what
        else:
            data[at:at] = what
    _assert_never_more_lenient(model, bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["build_id", "recipe_name", "arch", "status", "error"]), st.text(max_size=6))
def test_payload_parsing_agrees_on_any_string(field: str, text: str) -> None:
    value = json.loads(_BUILDER_PAYLOAD)
    value["predicate"][field] = text
    for payload in (
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ):
        _assert_never_more_lenient(ResultStatement, payload)
        ref = _reference_parse(ResultStatement, payload)
        if ref is not None and payload.isascii() and "\\ud8" not in payload.decode().lower():
            assert _parse_fast(ResultStatement, payload) == ref


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\xe9"


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=40), st.text(alphabet=_B64_CHARS, max_size=12), st.integers(0, 60))
def test_b64_never_more_lenient(raw: bytes, noise: str, at: int) -> None:
    good = base64.b64encode(raw).decode()
    for text in (good, good[:at] + noise + good[at:], noise, good.rstrip("=")):
        fast = _b64(text)
        try:
            ref: bytes | None = base64.b64decode(text.encode("utf-8"), validate=True)
        except (ValueError, UnicodeEncodeError):
            ref = None
        assert fast is None or fast == ref, text
    assert _b64(good) == raw


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.integers(0, 64 * 8 - 1))
def test_flipped_signature_bits_never_pass_the_fast_path(which: int, bit: int) -> None:
    """Signatures are checked by libsodium on the fast path: a changed bit anywhere in
    any of the four signatures fails it, and the reference refuses it too."""
    data = copy.deepcopy(BASE)
    env = data["envelope"] if which == 3 else data["builder_envelopes"][which]
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[bit // 8] ^= 1 << (bit % 8)
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    bundle = AttestationBundle.model_validate(data)
    assert _verify_bundle_fast(bundle, W.builder_keys(3), W.coordinator_keys(), 3) is None
    with pytest.raises(FarmError):
        _verify_bundle_checked(bundle, W.builder_keys(3), W.coordinator_keys(), 3)
