"""The farm's own certificate authority, and the TLS settings of its HTTP services.

Between hosts, the coordinator's API, the distribution node and the validators' HTTP
API are served over HTTPS (issue 14 item 3). Their certificates come from a CA the
operator makes once (:func:`make_ca`, ``farm tls init``) or the operator's own; the CA
certificate is public and every client is given it (``SSL_CERT_FILE``, which httpx and
Python's ``ssl`` honour; pip takes ``--cert``). The CA key stays with the operator: it
only issues certificates (:func:`issue_cert`, ``farm tls issue``), and a service holds
its own key alone.

Keys are ECDSA P-256 (what every TLS client, pip included, accepts); certificates name
the service by DNS names and IP addresses in subjectAltName, as RFC 6125 wants.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from farm.errors import ConfigError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "Issued",
    "TlsCertOption",
    "TlsKeyOption",
    "client_context",
    "issue_cert",
    "load_ca",
    "make_ca",
    "server_tls",
]

#: File names of a CA directory (``farm tls init DIR``).
CA_CERT = "ca.pem"
CA_KEY = "ca.key"

TlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        help="Serve HTTPS with this PEM certificate (chain), e.g. from `farm tls issue`.",
    ),
]
TlsKeyOption = Annotated[
    Path | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert.")
]

_SKEW = dt.timedelta(minutes=5)  # clocks of hosts disagree a little
_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_SERVER_USAGE = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(name: str, *, days: int = 3650, now: dt.datetime | None = None) -> Issued:
    """A new self-signed CA named ``name`` that may sign only end-entity certificates."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_cert(
    ca: Issued, names: Sequence[str], *, days: int = 397, now: dt.datetime | None = None
) -> Issued:
    """A new key and a server certificate for ``names`` (host names or IP addresses;
    the first is the subject's common name), signed by ``ca``."""
    if not names:
        raise ConfigError("a certificate needs at least one host name or address")
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the CA key is not an ECDSA key")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def load_ca(directory: Path) -> Issued:
    """The CA in ``directory`` (``ca.pem`` and ``ca.key``); ConfigError naming what is wrong."""
    try:
        ca = Issued((directory / CA_KEY).read_bytes(), (directory / CA_CERT).read_bytes())
        x509.load_pem_x509_certificate(ca.cert_pem)
        serialization.load_pem_private_key(ca.key_pem, None)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the CA in {directory}: {exc.strerror}: {exc.filename}"
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"the CA in {directory} is not a PEM key and certificate: {exc}"
        ) from None
    return ca


def server_tls(cert: Path | None, key: Path | None) -> dict[str, str]:
    """uvicorn's TLS arguments for ``--tls-cert``/``--tls-key`` ({} for plain HTTP);
    ConfigError if only one is given or either cannot be read."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    try:
        x509.load_pem_x509_certificate(cert.read_bytes())
        serialization.load_pem_private_key(key.read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--tls-cert/--tls-key: not a PEM certificate and key: {exc}") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def client_context(ca_cert: Path) -> ssl.SSLContext:
    """A client's TLS context that trusts ``ca_cert`` alone (host names checked);
    ConfigError if it cannot be read."""
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use {ca_cert} as a CA certificate: {exc}") from None
