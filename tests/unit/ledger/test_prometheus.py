"""ledger.prometheus: a validator's /metrics, read from the node at scrape time."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ledger.metrics import COMMIT_BUCKETS, NodeMetrics
from ledger.prometheus import validator_registry


class FakeNode:
    """What the collector reads: status, metrics, the checkpoint's co-signed time."""

    def __init__(self) -> None:
        self.metrics = NodeMetrics()
        self.checkpoint_time = 0
        self.fields: dict[str, Any] = {
            "height": 7,
            "round": 1,
            "size": 12,
            "peers": ["v1", "v2"],
            "mempool": 5,
            "syncing": False,
            "checkpoint_size": 12,
        }

    def status(self) -> dict[str, Any]:
        return dict(self.fields)


def scrape(node: FakeNode) -> dict[str, float]:
    text = generate_latest(validator_registry(node)).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            samples[key] = s.value
    return samples


def test_gauges_are_the_node_status_at_scrape_time() -> None:
    node = FakeNode()
    got = scrape(node)
    assert got["farm_ledger_height"] == 7
    assert got["farm_ledger_round"] == 1
    assert got["farm_ledger_peers_connected"] == 2
    assert got["farm_ledger_mempool_transactions"] == 5
    assert got["farm_ledger_syncing"] == 0
    assert math.isnan(got["farm_ledger_checkpoint_age_seconds"])  # no checkpoint yet
    node.fields["height"] = 8
    node.checkpoint_time = 1
    got = scrape(node)
    assert got["farm_ledger_height"] == 8
    assert got["farm_ledger_checkpoint_age_seconds"] > 1e9  # seconds since 1970


def test_commit_latency_histogram_counts_started_to_stored() -> None:
    node = FakeNode()
    m = node.metrics
    m.mark(1, "start")
    m._heights[1][2] -= 0.3  # started 0.3 s before now
    m.mark(1, "stored")
    m.mark(1, "stored")  # a second mark of one phase counts nothing
    m.mark(2, "stored")  # committed by catch-up: never started here, not a latency
    got = scrape(node)
    assert got["farm_ledger_commit_latency_seconds_count"] == 1
    assert 0.3 <= got["farm_ledger_commit_latency_seconds_sum"] < 1.0
    assert got["farm_ledger_commit_latency_seconds_bucket{le=0.25}"] == 0
    assert got["farm_ledger_commit_latency_seconds_bucket{le=0.5}"] == 1
    assert got["farm_ledger_commit_latency_seconds_bucket{le=+Inf}"] == 1
    assert len([k for k in got if "_bucket" in k]) == len(COMMIT_BUCKETS) + 1


def test_frames_are_the_node_counters_not_counted_again() -> None:
    node = FakeNode()
    node.metrics.frame_in("c", 100)
    node.metrics.frame_in("c", 100)
    node.metrics.frame_in("tx", 10)
    got = scrape(node)
    assert got["farm_ledger_frames_received_total{kind=c}"] == 2
    assert got["farm_ledger_frames_received_total{kind=tx}"] == 1
