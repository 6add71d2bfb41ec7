"""``farm bench dist``: the distribution node against nginx, and verify against sha256sum."""

from __future__ import annotations


def bench_dist() -> None:
    """Serve 50 KB and 1 GB files with the node and nginx; compare throughput."""
    raise NotImplementedError
