"""Signed builder requests, token hashing and the replay cache."""

from __future__ import annotations

import pytest

from farm.coordinator.auth import (
    HEADER_SIGNATURE,
    SignedRequest,
    hash_secret,
    new_secret,
    secret_matches,
    sign_request,
    verify_request,
)
from farm.coordinator.errors import AuthenticationError
from farm.keys import generate_key

KEY = generate_key()
PATH = "/v1/staging/sha256/" + "a" * 64
NOW = 1_800_000_000.0


def signed(body: bytes = b"data", method: str = "PUT", path: str = PATH) -> SignedRequest:
    return SignedRequest.from_headers(sign_request(KEY, method, path, body, NOW))


def test_secret_is_stored_as_its_hash() -> None:
    secret = new_secret()
    assert len(secret) >= 40
    assert secret_matches(secret, hash_secret(secret))
    assert not secret_matches(secret + "x", hash_secret(secret))


def test_valid_request_verifies() -> None:
    verify_request(signed(), KEY.public_dict(), "PUT", PATH, b"data", NOW + 10, 300)


@pytest.mark.parametrize(
    ("method", "path", "body", "now", "key", "message"),
    [
        ("PUT", PATH, b"other", NOW, KEY, "does not verify"),
        ("POST", PATH, b"data", NOW, KEY, "does not verify"),
        ("PUT", PATH + "?x=1", b"data", NOW, KEY, "does not verify"),
        ("PUT", PATH, b"data", NOW + 301, KEY, "window"),
        ("PUT", PATH, b"data", NOW - 301, KEY, "window"),
        ("PUT", PATH, b"data", NOW, generate_key(), "does not verify"),
    ],
)
def test_anything_changed_fails(
    method: str, path: str, body: bytes, now: float, key: object, message: str
) -> None:
    with pytest.raises(AuthenticationError, match=message):
        verify_request(signed(), key.public_dict(), method, path, body, now, 300)  # type: ignore[attr-defined]


def test_missing_or_garbled_headers() -> None:
    with pytest.raises(AuthenticationError, match="not signed"):
        SignedRequest.from_headers({})
    headers = sign_request(KEY, "PUT", PATH, b"", NOW)
    headers[HEADER_SIGNATURE] = "!!!"
    req = SignedRequest.from_headers(headers)
    with pytest.raises(AuthenticationError, match="base64"):
        verify_request(req, KEY.public_dict(), "PUT", PATH, b"", NOW, 300)


def test_identical_requests_have_distinct_signatures_and_nonces() -> None:
    # The replay check itself is the database's (tests/unit/farm/coordinator/test_replay.py).
    a, b = signed(), signed()
    assert a.signature != b.signature and a.nonce != b.nonce
