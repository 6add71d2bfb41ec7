"""farm.queue over TLS: a ``rediss://`` URL always verifies the broker's certificate."""

from __future__ import annotations

import ssl

import pytest
import redis

from farm.errors import ConfigError
from farm.queue import make_celery, redis_tls

CA = "/etc/farm/ca.pem"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://redis:6379/0", None),
        ("rediss://redis:6379/0", {"ssl_cert_reqs": ssl.CERT_REQUIRED}),
        (
            f"rediss://redis:6379/0?ssl_ca_certs={CA}",
            {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": CA},
        ),
        (
            f"rediss://u:p@redis:6379/0?ssl_cert_reqs=required&ssl_ca_certs={CA}",
            {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": CA},
        ),
    ],
)
def test_a_rediss_url_requires_the_certificate(url: str, expected: object) -> None:
    assert redis_tls(url) == expected


@pytest.mark.parametrize("reqs", ["none", "optional", "CERT_NONE"])
def test_a_url_that_would_verify_less_is_refused(reqs: str) -> None:
    with pytest.raises(ConfigError, match=f"ssl_cert_reqs={reqs}"):
        redis_tls(f"rediss://redis:6379/0?ssl_cert_reqs={reqs}")


def test_celery_broker_and_backend_verify_against_the_farm_ca() -> None:
    # kombu alone would take a bare rediss:// URL as CERT_NONE.
    app = make_celery(f"rediss://redis:6379/0?ssl_ca_certs={CA}")
    want = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": CA}
    assert app.conf.broker_use_ssl == want
    assert app.conf.redis_backend_use_ssl == want
    with app.connection_for_write() as conn:
        assert conn.ssl == want
    params = app.backend.connparams
    assert params["ssl_cert_reqs"] == ssl.CERT_REQUIRED and params["ssl_ca_certs"] == CA
    assert issubclass(params["connection_class"], redis.SSLConnection)
