"""The farm CA: certificates a TLS client accepts for the names given, and nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from farm.errors import ConfigError
from farm.tls import issue_cert, load_ca, make_ca, server_tls


def _verify(ca_pem: bytes, cert_pem: bytes, name: x509.DNSName | x509.IPAddress) -> None:
    store = Store([x509.load_pem_x509_certificate(ca_pem)])
    builder = PolicyBuilder().store(store)
    builder.build_server_verifier(name).verify(x509.load_pem_x509_certificate(cert_pem), [])


def test_an_issued_certificate_verifies_for_its_names_only() -> None:
    import ipaddress

    ca = make_ca("test farm CA")
    cert = issue_cert(ca, ["coordinator", "127.0.0.1"])
    _verify(ca.cert_pem, cert.cert_pem, x509.DNSName("coordinator"))
    _verify(ca.cert_pem, cert.cert_pem, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    with pytest.raises(VerificationError):
        _verify(ca.cert_pem, cert.cert_pem, x509.DNSName("dist"))
    with pytest.raises(VerificationError):  # another CA's certificate for the same name
        _verify(make_ca("other").cert_pem, cert.cert_pem, x509.DNSName("coordinator"))


def test_an_expired_certificate_does_not_verify() -> None:
    ca = make_ca("ca")
    old = issue_cert(ca, ["coordinator"], days=1, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(VerificationError):
        _verify(ca.cert_pem, old.cert_pem, x509.DNSName("coordinator"))


def test_the_ca_signs_only_end_entities() -> None:
    ca = x509.load_pem_x509_certificate(make_ca("ca").cert_pem)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    leaf = x509.load_pem_x509_certificate(issue_cert(make_ca("ca"), ["x"]).cert_pem)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one host name"):
        issue_cert(make_ca("ca"), [])
    with pytest.raises(ConfigError, match="cannot read the CA"):
        load_ca(tmp_path)
    (tmp_path / "ca.pem").write_text("junk")
    (tmp_path / "ca.key").write_text("junk")
    with pytest.raises(ConfigError, match="not a PEM key and certificate"):
        load_ca(tmp_path)
    assert server_tls(None, None) == {}
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        server_tls(tmp_path / "ca.pem", None)
    with pytest.raises(ConfigError, match="no such file"):
        server_tls(tmp_path / "nope.pem", tmp_path / "ca.key")
    with pytest.raises(ConfigError, match="not a PEM certificate and key"):
        server_tls(tmp_path / "ca.pem", tmp_path / "ca.key")
