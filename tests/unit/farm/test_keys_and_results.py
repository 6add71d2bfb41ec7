"""Keys on disk and signed build results."""

from __future__ import annotations

import base64
import copy
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope

from farm.canonical import canonical_json
from farm.errors import SignatureError, SigningKeyError
from farm.keys import KeyPair, generate_key, load_key, public_key_from_dict, save_key
from farm.result import (
    PAYLOAD_TYPE,
    BuildPredicate,
    BuildVariation,
    OutputDigest,
    sign_result,
    verify_result,
)

VARIATION = BuildVariation(
    hostname="b-0123456789ab",
    domainname="farm.invalid",
    umask="0077",
    cpus=1,
    lang=None,
    clock_offset_s=0,
    unvaried=("timezone: pinned by the recipe (TZ)",),
)


def predicate(key: KeyPair, **changes: Any) -> BuildPredicate:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "build_id": "build-0001",
        "recipe_digest": "sha256:" + "1" * 64,
        "recipe_name": "demo",
        "recipe_version": "1.0",
        "image_digest": "sha256:" + "2" * 64,
        "arch": "amd64",
        "builder_id": key.keyid,
        "started_at": now,
        "finished_at": now,
        "status": "succeeded",
        "exit_code": 0,
        "log_sha256": "3" * 64,
        "outputs": (OutputDigest(name="demo-1.0.whl", sha256="4" * 64, size=10),),
    }
    values.update(changes)
    return BuildPredicate(**values)


def test_key_saved_0600_and_loaded(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "k" / "key.pem"
    save_key(key, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(path).keyid == key.keyid


def test_key_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    save_key(generate_key(), path)
    with pytest.raises(SigningKeyError, match="already there"):
        save_key(generate_key(), path)


def test_key_readable_by_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    save_key(generate_key(), path)
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="readable by others"):
        load_key(path)


def test_garbage_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("not a key")
    os.chmod(path, 0o600)
    with pytest.raises(SigningKeyError, match="not a usable private key"):
        load_key(path)


def test_public_key_round_trip_and_mismatched_id() -> None:
    key = generate_key()
    data = key.public_dict()
    assert public_key_from_dict(data).keyid == key.keyid
    data["keyid"] = "0" * 64
    with pytest.raises(SigningKeyError, match="does not match"):
        public_key_from_dict(data)


def test_signed_result_verifies_and_is_an_in_toto_statement() -> None:
    key = generate_key()
    envelope = sign_result(predicate(key), key)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "demo-1.0.whl", "digest": {"sha256": "4" * 64}}]
    result = verify_result(envelope, [key.public])
    assert result.digest_set() == {"demo-1.0.whl": "4" * 64}
    assert result.envelope == envelope


def _sign_payload(statement: dict[str, Any], key: KeyPair) -> dict[str, Any]:
    """Sign ``statement`` as given, the way any builder version would have."""
    envelope = Envelope(payload=canonical_json(statement), payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(key.signer)
    out: dict[str, Any] = envelope.to_dict()
    return out


def test_a_result_without_variation_is_signed_as_before_variation_existed() -> None:
    key = generate_key()
    envelope = sign_result(predicate(key), key)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert "variation" not in statement["predicate"]
    # what a builder made before variation existed still verifies
    older = _sign_payload(statement, key)
    assert verify_result(older, [key.public]).predicate.variation is None


def test_a_result_carries_its_variation_signed() -> None:
    key = generate_key()
    envelope = sign_result(predicate(key, variation=VARIATION), key)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["variation"]["umask"] == "0077"
    assert verify_result(envelope, [key.public]).predicate.variation == VARIATION
    with pytest.raises(SignatureError, match="does not verify"):
        verify_result(
            _tamper(envelope, lambda s: s["predicate"]["variation"].update(cpus=2)),
            [key.public],
        )


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.update(faked="yes"),
        lambda v: v.update(umask="77"),
        lambda v: v.pop("hostname"),
    ],
)
def test_a_malformed_variation_is_not_a_build_result(change: Any) -> None:
    key = generate_key()
    statement = json.loads(
        base64.b64decode(sign_result(predicate(key, variation=VARIATION), key)["payload"])
    )
    change(statement["predicate"]["variation"])
    with pytest.raises(SignatureError, match=r"not a build result: predicate\.variation"):
        verify_result(_sign_payload(statement, key), [key.public])


def _tamper(envelope: dict[str, Any], change: Any) -> dict[str, Any]:
    env = copy.deepcopy(envelope)
    statement = json.loads(base64.b64decode(env["payload"]))
    change(statement)
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return env


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda s: s["predicate"].update(exit_code=1), "does not verify"),
        (lambda s: s["subject"][0]["digest"].update(sha256="5" * 64), "does not verify"),
        (lambda s: s["predicate"].update(builder_id="6" * 64), "not known"),
        (lambda s: s.update(predicateType="https://example.org/other"), "not a build result"),
    ],
)
def test_tampered_results_refused(change: Any, needle: str) -> None:
    key = generate_key()
    envelope = sign_result(predicate(key), key)
    with pytest.raises(SignatureError, match=needle):
        verify_result(_tamper(envelope, change), [key.public])


def test_result_from_unknown_key_refused() -> None:
    key, other = generate_key(), generate_key()
    envelope = sign_result(predicate(key), key)
    with pytest.raises(SignatureError, match="not known"):
        verify_result(envelope, [other.public])


@pytest.mark.parametrize("bad", [None, [], {"payload": "!!"}, {"payloadType": "x"}])
def test_malformed_envelopes_refused(bad: object) -> None:
    with pytest.raises(SignatureError):
        verify_result(bad, [generate_key().public])


def test_cannot_sign_for_another_builder() -> None:
    key, other = generate_key(), generate_key()
    with pytest.raises(SignatureError, match="names builder"):
        sign_result(predicate(other), key)


@pytest.mark.parametrize("digest", ["abc", 5, None, ["sha256"]])
def test_malformed_subject_digest_is_a_signature_error_not_a_crash(digest: object) -> None:
    from securesystemslib.dsse import Envelope

    from farm.canonical import canonical_json
    from farm.result import PAYLOAD_TYPE

    key = generate_key()
    envelope = sign_result(predicate(key), key)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"] = digest
    e = Envelope(payload=canonical_json(statement), payload_type=PAYLOAD_TYPE, signatures={})
    e.sign(key.signer)
    with pytest.raises(SignatureError, match="subjects do not match"):
        verify_result(e.to_dict(), [key.public])
