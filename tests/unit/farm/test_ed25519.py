"""farm.ed25519: libsodium's checks agree with cryptography's on what honest keys sign."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.ed25519 import raw_key, verify

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
#: A small-order point (the identity's encoding): libsodium refuses it as a key.
SMALL_ORDER = bytes([1] + [0] * 31)


def _openssl(key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def test_a_signature_verifies_and_any_change_does_not() -> None:
    message = b"farm attestation"
    sig = KEY.sign(message)
    pub = KEY.public_key()
    assert verify(pub, sig, message) and verify(raw_key(pub), sig, message)
    assert not verify(pub, sig, message + b"!")
    assert not verify(pub, bytes([sig[0] ^ 1]) + sig[1:], message)
    assert not verify(OTHER.public_key(), sig, message)
    assert not verify(pub, sig[:63], message)
    assert not verify(raw_key(pub)[:31], sig, message)
    assert not verify(SMALL_ORDER, sig, message)
    assert not verify(pub, b"", message)


@settings(max_examples=200, deadline=None)
@given(
    message=st.binary(max_size=512),
    flip=st.one_of(st.none(), st.integers(min_value=0, max_value=64 * 8 - 1)),
    signer=st.sampled_from([KEY, OTHER]),
)
def test_libsodium_and_openssl_agree(
    message: bytes, flip: int | None, signer: Ed25519PrivateKey
) -> None:
    sig = bytearray(signer.sign(message))
    if flip is not None:
        sig[flip // 8] ^= 1 << (flip % 8)
    key = raw_key(KEY.public_key())
    assert verify(key, bytes(sig), message) == _openssl(key, bytes(sig), message)
