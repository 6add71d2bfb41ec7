"""api.distribution.metrics: a bounded route label, and requests and bytes counted."""

from __future__ import annotations

import pytest

from api.distribution.metrics import ROUTES, Served, route_of


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/artifacts/sha256/ab", "artifacts"),
        ("/simple/", "simple"),
        ("/simple/demo/", "simple"),
        ("/v1/packages/demo/1.0", "packages"),
        ("/v1/evidence/sha256/ab", "evidence"),
        ("/v1/status", "status"),
        ("/v1/other", "other"),
        ("/v1", "other"),
        ("/healthz", "healthz"),
        ("/readyz", "readyz"),
        ("/metrics", "metrics"),
        ("/", "other"),
        ("/../etc/passwd", "other"),
        ("/wp-admin/x", "other"),
    ],
)
def test_route_of(path: str, route: str) -> None:
    assert route_of(path) == route
    assert route in ROUTES


def test_served_counts_by_route_and_status() -> None:
    served = Served()
    served.record("artifacts", 200, 1000)
    served.record("artifacts", 200, 24)
    served.record("artifacts", 404, 60)
    assert served.requests[("artifacts", 200)] == 2
    assert served.requests[("artifacts", 404)] == 1
    assert served.bytes["artifacts"] == 1084
