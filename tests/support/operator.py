"""Approving builders as an operator does where they work (``farm operator approve``):
the enroll transaction signed with the operator's key, the coordinator relaying it."""

from __future__ import annotations

from typing import Any

from farm.coordinator.client import CoordinatorClient
from farm.operator import Operator

__all__ = ["approve"]


def approve(
    client: CoordinatorClient, builder_id: str, domain: str, operator: Operator | None = None
) -> dict[str, Any]:
    """Approve ``builder_id`` in ``domain``; with ``operator`` (a coordinator with a
    ledger), sign its enroll transaction from the pending enrollment the coordinator
    shows."""
    if operator is None:
        return client.approve(builder_id, domain)
    shown = client.builder(builder_id)
    return client.approve(builder_id, domain, operator.enroll(builder_id, shown, domain))
