"""The fast path of ``verify_bundle`` never accepts what the full check refuses."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from securesystemslib.dsse import Envelope

from farm.attestation import AttestationBundle, _verify_bundle_checked, _verify_bundle_fast
from farm.errors import FarmError
from farm.keys import KeyPair
from farm.result import PAYLOAD_TYPE
from tests.unit.farm._attest_fixtures import World

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
