"""Catch-up: fetch the blocks a validator missed, check them, commit them.

A validator that is behind (a peer's status says a higher height and we are not
getting there through consensus, or consensus messages arrive for a height beyond the
next) asks that peer's HTTP API for the blocks after its own height, with their commit
certificates. Nothing the peer says is trusted: each block must

1. carry a certificate with 2f+1 valid precommit signatures of the *genesis*
   validators for exactly that height and block hash,
2. extend our chain (``prev_hash`` is our last block's hash), and
3. re-check: every transaction is valid on our own state, and applying them gives the
   block's log root and size,

before :meth:`ledger.node.Node.commit` stores and applies it. Then the latest
co-signed checkpoint is fetched and kept if 2f+1 known validators signed it and its
root matches our log at that size. Finally the node joins consensus at the next height.
"""

from __future__ import annotations

import logging

import httpx

from ledger.block import Block, CommitCertificate, verify_commit_certificate
from ledger.errors import ConsensusError, LedgerError
from ledger.ports import CatchUpTarget
from ledger.storage import certificate_from_json

__all__ = ["BATCH", "catch_up", "verify_fetched"]

log = logging.getLogger(__name__)

BATCH = 64
"""Blocks asked for per request."""


def verify_fetched(node: CatchUpTarget, block: Block, cert: CommitCertificate) -> None:
    """Check a fetched block against the node's validators, chain and state.

    Raises:
        ConsensusError: a bad certificate, a block that does not extend our chain, or
            one whose transactions or log root do not check out.
    """
    if block.height != node.height + 1:
        raise ConsensusError(f"fetched block {block.height}, wanted {node.height + 1}")
    verify_commit_certificate(cert, block.hash(), node.validators.keys, height=block.height)
    reason = node.check_block(block, node.state, node.last_hash)
    if reason is not None:
        raise ConsensusError(f"fetched block {block.height} is invalid: {reason}")


async def _fetch_from(node: CatchUpTarget, client: httpx.AsyncClient, peer: str) -> None:
    base = f"http://{node.http_addr[peer]}"
    while node.height < node.peer_heights.get(peer, 0):
        r = await client.get(f"{base}/v1/blocks", params={"start": node.height + 1, "limit": BATCH})
        r.raise_for_status()
        items = r.json()["blocks"]
        if not items:
            break
        for item in items:
            block = Block.from_json(item["block"])
            cert = certificate_from_json(item["certificate"])
            if block.height <= node.height:
                continue  # consensus got there first
            verify_fetched(node, block, cert)
            node.commit(block, cert)
    r = await client.get(f"{base}/v1/checkpoint")
    if r.status_code == 200:
        note = r.json().get("note")
        if isinstance(note, str):
            try:
                node.store_checkpoint(note)
            except LedgerError as exc:
                log.info("checkpoint from %s not kept: %s", peer, exc)


async def catch_up(node: CatchUpTarget) -> None:
    """Fetch, verify and commit missed blocks from the peers that are ahead, best
    first; a peer that fails or lies is skipped. Always hands back to consensus."""
    start = node.height
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            peers = sorted(node.peer_heights, key=lambda p: -node.peer_heights[p])
            for peer in peers:
                if node.peer_heights[peer] <= node.height:
                    break
                try:
                    await _fetch_from(node, client, peer)
                except (httpx.HTTPError, LedgerError, ValueError, KeyError, TypeError) as exc:
                    log.warning("catch-up from %s failed: %s", peer, exc)
    finally:
        if node.height > start:
            log.info("caught up from height %d to %d", start, node.height)
        node.after_sync()
