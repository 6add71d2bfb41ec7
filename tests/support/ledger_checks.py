"""Checks of a running ledger that every fault test ends with, whatever runs it.

The validators may be processes on loopback (:class:`tests.support.ledger_testnet.
LedgerTestnet`) or containers of a farm of hosts (:mod:`tests.support.cluster_ledger`):
both answer the small :class:`Validators` protocol. The checks are what a consumer can
do with nothing but the genesis: trust a checkpoint co-signed by 2f+1 genesis
validators, prove an entry's inclusion in it, prove an early checkpoint is a prefix of a
late one, and that every validator serves the same log.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from farm.keys import KeyPair, generate_key
from farm.transactions import make_enroll, tx_id
from ledger.block import Block, CommitCertificate
from ledger.genesis import Genesis
from ledger.storage import certificate_from_json
from ledger.verify import (
    Checkpoint,
    hash_leaf,
    signature_threshold,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "HOLD_S",
    "Receipt",
    "Validators",
    "all_identical",
    "blocks",
    "client_check",
    "commit_for_a_while",
    "enrolls",
    "healthy",
    "height",
    "known",
    "load",
    "submit",
    "submit_many",
    "trusted",
]


class Validators(Protocol):
    """What the checks need of a set of running validators."""

    n: int

    @property
    def operator(self) -> KeyPair: ...

    @property
    def chain_id(self) -> str: ...

    def url(self, i: int) -> str: ...

    def running(self, i: int) -> bool: ...

    def start(self, i: int, *, wait: bool = True) -> None: ...

    def get(self, i: int, path: str, **params: Any) -> httpx.Response: ...

    def status(self, i: int) -> dict[str, Any] | None: ...

    def checkpoint(self, i: int) -> dict[str, Any] | None: ...

    def wait_same_checkpoint(
        self, validators: list[int] | None = None, size: int | None = None, timeout: float = 20.0
    ) -> str: ...


HOLD_S = 3.0
"""How long a fault lasts at least: more than round 0's propose + prevote + precommit
timeouts of the testnet (0.6 + 0.3 + 0.3 s) and a round-1 timeout on top."""


@dataclass(frozen=True)
class Receipt:
    """A transaction a validator answered as committed."""

    tx: bytes
    index: int
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str | None

    @classmethod
    def from_answer(cls, tx: bytes, body: dict[str, Any]) -> Receipt:
        """From the body of a 200 answer to POST /v1/tx."""
        assert body["tx_id"] == tx_id(tx)
        proof = tuple(bytes.fromhex(h) for h in body["inclusion_proof"])
        return cls(tx, body["index"], body["tree_size"], proof, body["checkpoint"])

    def verify(self, g: Genesis) -> Checkpoint:
        """What the submitter can check alone: the receipt's checkpoint is trusted
        (2f+1) and its inclusion proof puts the transaction in it."""
        assert self.checkpoint is not None, f"entry {self.index}: no co-signed checkpoint"
        cp = verify_checkpoint(self.checkpoint, known(g), signature_threshold(g.n), g.chain_id)
        assert cp.size == self.tree_size
        verify_inclusion(hash_leaf(self.tx), self.index, cp.size, self.proof, cp.root_hash)
        return cp


def enrolls(net: Validators, tag: str, count: int) -> list[bytes]:
    operator = net.operator
    return [
        make_enroll(
            operator,
            generate_key().public_dict(),
            ["x86_64"],
            f"{tag}-{k}",
            domain=f"{tag}-{k}",
            chain=net.chain_id,
        )
        for k in range(count)
    ]


def submit(net: Validators, i: int, tx: bytes) -> Receipt:
    with httpx.Client(timeout=30.0) as c:
        r = c.post(
            net.url(i) + "/v1/tx",
            content=tx,
            headers={"content-type": "application/octet-stream"},
        )
    assert r.status_code == 200, f"v{i}: {r.status_code} {r.text}"
    return Receipt.from_answer(tx, r.json())


def submit_many(net: Validators, targets: list[int], txs: list[bytes]) -> list[Receipt]:
    """Submit concurrently, round-robin over ``targets``; every one must commit."""
    with ThreadPoolExecutor(max_workers=2 * len(targets)) as pool:
        return list(
            pool.map(lambda k: submit(net, targets[k % len(targets)], txs[k]), range(len(txs)))
        )


def known(g: Genesis) -> dict[str, bytes]:
    """The genesis validators' keys, as a consumer pins them."""
    return {v.name: bytes.fromhex(v.public_key) for v in g.validators}


def trusted(net: Validators, g: Genesis, i: int) -> tuple[Checkpoint, str]:
    """Validator ``i``'s latest checkpoint, trusted as a consumer would trust it."""
    cp = net.checkpoint(i)
    assert cp is not None, f"v{i} serves no checkpoint"
    note = str(cp["note"])
    return verify_checkpoint(note, known(g), signature_threshold(g.n), g.chain_id), note


def healthy(net: Validators, g: Genesis) -> Checkpoint:
    """Every validator runs, answers and agrees; return their trusted checkpoint."""
    for i in range(net.n):
        if not net.running(i):
            net.start(i)
    if net.checkpoint(0) is None:
        submit(net, 0, enrolls(net, "warm-up", 1)[0])
    net.wait_same_checkpoint(timeout=30)
    return trusted(net, g, 0)[0]


def all_identical(net: Validators, g: Genesis, size: int) -> Checkpoint:
    """Every validator serves the checkpoint of ``size``; each note verifies at 2f+1."""
    net.wait_same_checkpoint(size=size, timeout=40)
    cps = [trusted(net, g, i)[0] for i in range(net.n)]
    assert {(c.size, c.root_hash) for c in cps} == {(size, cps[0].root_hash)}
    for i in range(net.n):
        st = net.status(i)
        assert st is not None and st["size"] == size and st["root"] == cps[0].root_hash.hex()
    return cps[0]


def client_check(net: Validators, g: Genesis, i: int, receipt: Receipt, early: Checkpoint) -> None:
    """What a consumer does with validator ``i``: trust its checkpoint (2f+1), prove
    the entry is in it, and prove the early checkpoint is a prefix of it."""
    late, _ = trusted(net, g, i)
    assert early.size < late.size and receipt.index < late.size
    entry = net.get(i, f"/v1/entries/{receipt.index}").json()
    assert base64.b64decode(entry["tx"]) == receipt.tx
    r = net.get(i, "/v1/proofs/inclusion", index=receipt.index, size=late.size)
    assert r.status_code == 200, r.text
    proof = [bytes.fromhex(h) for h in r.json()["proof"]]
    verify_inclusion(hash_leaf(receipt.tx), receipt.index, late.size, proof, late.root_hash)
    r = net.get(i, "/v1/proofs/consistency", old=early.size, new=late.size)
    assert r.status_code == 200, r.text
    proof = [bytes.fromhex(h) for h in r.json()["proof"]]
    verify_consistency(early.size, late.size, early.root_hash, late.root_hash, proof)


def blocks(net: Validators, i: int, start: int, end: int) -> list[tuple[Block, CommitCertificate]]:
    """Blocks ``start..end`` from validator ``i``, each with its certificate."""
    out: list[tuple[Block, CommitCertificate]] = []
    while start + len(out) <= end:
        page = net.get(i, "/v1/blocks", start=start + len(out), limit=64).json()["blocks"]
        assert page, f"v{i} has no block {start + len(out)}"
        out += [
            (Block.from_json(b["block"]), certificate_from_json(b["certificate"])) for b in page
        ]
    return out[: end - start + 1]


def height(net: Validators, i: int) -> int:
    st = net.status(i)
    assert st is not None, f"v{i} does not answer"
    return int(st["height"])


def commit_for_a_while(
    net: Validators, targets: list[int], tag: str, min_heights: int
) -> list[Receipt]:
    """Commit through ``targets`` for at least HOLD_S seconds and ``min_heights``
    heights (so every proposer's turn comes up); return the receipts."""
    start = time.monotonic()
    h0 = height(net, targets[0])
    receipts: list[Receipt] = []
    batch = 0
    while time.monotonic() - start < HOLD_S or height(net, targets[0]) < h0 + min_heights:
        assert time.monotonic() - start < 60, "the live validators stopped committing"
        receipts += submit_many(net, targets, enrolls(net, f"{tag}{batch}", len(targets)))
        batch += 1
    return receipts


@contextmanager
def load(net: Validators, txs: list[bytes], workers: int = 8) -> Iterator[list[Receipt]]:
    """Submit ``txs`` round-robin over every validator from ``workers`` threads while the
    block runs; yields the list of receipts so far (a 200 answer each), which keeps
    growing until the block exits and the threads stop. Failed submits are skipped."""
    urls = [net.url(i) for i in range(net.n)]
    receipts: list[Receipt] = []
    lock = threading.Lock()
    stop = threading.Event()

    def submit_some(worker: int) -> None:
        with httpx.Client(timeout=10.0) as c:
            for k in range(worker, len(txs), workers):
                if stop.is_set():
                    return
                try:
                    r = c.post(urls[k % net.n] + "/v1/tx", content=txs[k])
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    receipt = Receipt.from_answer(txs[k], r.json())
                    with lock:
                        receipts.append(receipt)

    threads = [threading.Thread(target=submit_some, args=(w,)) for w in range(workers)]
    for th in threads:
        th.start()
    try:
        yield receipts
    finally:
        stop.set()
        for th in threads:
            th.join(30)
