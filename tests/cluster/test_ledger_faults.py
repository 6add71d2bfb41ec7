"""Four real ``farm ledger run`` processes on loopback under faults.

Each scenario ends with all four validators serving the same checkpoint (same size,
same root), every one of their co-signed notes trusted by :mod:`ledger.verify` at
threshold 3 against the genesis keys, and a client-side check of what a consumer
would do: an entry's inclusion proof, fetched from a validator's HTTP API, verifies
against a 2f+1 co-signed checkpoint, and a consistency proof links an early trusted
checkpoint to the late one.

- SIGSTOP one validator for longer than the consensus timeouts: the other three keep
  committing (a height whose round-0 proposer is the stopped one needs a later round);
  after SIGCONT it catches up.
- Cut one validator off with iptables rules on loopback (its p2p port both ways, its
  own connections to the others' p2p and HTTP ports, and the others' fetches from its
  HTTP port; the test's own HTTP client still reaches it), then heal.
- SIGKILL all four under load and restart: every transaction a validator answered as
  committed is still at its index everywhere, and the pre-kill checkpoint is a prefix.

Every wait polls with a deadline. The cut needs root and iptables (tests fail, never
skip, without them); its rules live in a chain of their own, match only this test's
ports and group ids, and are removed in a ``finally`` even when the test fails.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
from collections.abc import Iterator

import pytest

from farm.transactions import tx_id
from ledger.block import verify_commit_certificate
from ledger.genesis import Genesis, load_genesis
from ledger.verify import (
    signature_threshold,
    verify_consistency,
)
from tests.support.ledger_checks import (
    all_identical,
    blocks,
    client_check,
    commit_for_a_while,
    enrolls,
    healthy,
    height,
    load,
    submit,
)
from tests.support.ledger_testnet import LedgerTestnet, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

N = 4
THRESHOLD = 3  # 2f+1 for n = 4


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerTestnet]:
    t = LedgerTestnet(tmp_path_factory.mktemp("faults"), N)
    gid = random.randrange(61_000, 64_000, 8)
    t.groups = {i: gid + i for i in range(N)}
    try:
        t.start_all()
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def genesis(net: LedgerTestnet) -> Genesis:
    g = load_genesis(net.genesis)
    assert signature_threshold(g.n) == THRESHOLD
    return g


# ---------------------------------------------------------------------- loopback cut


def _can_connect(port: int, gid: int | None) -> bool:
    """Whether a process of group ``gid`` can open a TCP connection to ``port``."""
    code = (
        "import socket,sys\n"
        "s=socket.socket();s.settimeout(1.0)\n"
        f"try: s.connect(('127.0.0.1',{port}))\n"
        "except OSError: sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", code], group=gid, check=False).returncode == 0


def _iptables(*args: str, check: bool = True) -> None:
    r = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"iptables {' '.join(args)}: {r.stderr.strip()}")


@contextlib.contextmanager
def cut_off(net: LedgerTestnet, iso: int) -> Iterator[None]:
    """Drop every TCP packet between validator ``iso`` and the other validators.

    A chain of our own, jumped to from OUTPUT on ``lo`` (every loopback packet passes
    OUTPUT once, where the sending socket's owner is known), drops: anything to or from
    ``iso``'s p2p port; what ``iso``'s process (its own group id) sends to the others'
    p2p and HTTP ports (its dials and its catch-up fetches); what the validators'
    processes send to ``iso``'s HTTP port (their catch-up fetches). Removed on exit.
    """
    others = [i for i in range(net.n) if i != iso]
    gids = sorted(net.groups.values())
    assert len(gids) == net.n and gids == list(range(gids[0], gids[0] + net.n))
    chain = f"farm-cut-{net.base_port}"
    jump = ["OUTPUT", "-o", "lo", "-p", "tcp", "-j", chain]
    ports = ",".join(str(p) for i in others for p in (net.p2p_port(i), net.http_port(i)))
    rules = [
        ["--dport", str(net.p2p_port(iso))],
        ["--sport", str(net.p2p_port(iso))],
        ["-m", "owner", "--gid-owner", str(net.groups[iso]), "-m", "multiport", "--dports", ports],
        [
            "-m",
            "owner",
            "--gid-owner",
            f"{gids[0]}-{gids[-1]}",
            "--dport",
            str(net.http_port(iso)),
        ],
    ]
    _iptables("-N", chain)
    try:
        for rule in rules:
            _iptables("-A", chain, "-p", "tcp", *rule, "-j", "DROP")
        _iptables("-I", *jump)
        yield
    finally:
        _iptables("-D", *jump, check=False)
        _iptables("-F", chain, check=False)
        _iptables("-X", chain, check=False)


# ---------------------------------------------------------------------- scenarios


def test_sigstop_one_the_others_go_on_and_it_catches_up(
    net: LedgerTestnet, genesis: Genesis
) -> None:
    early = healthy(net, genesis)
    h0 = height(net, 0)
    stopped = 3
    live = [0, 1, 2]
    net.pause(stopped)
    try:
        receipts = commit_for_a_while(net, live, "paused", min_heights=2 * N)
        size = max(r.index for r in receipts) + 1
        net.wait_same_checkpoint(live, size=size, timeout=30)
        h1 = height(net, 0)
    finally:
        net.resume(stopped)

    # while it was stopped: blocks by the others only, signed by the others only, and
    # the heights whose round-0 proposer was the stopped one went to a later round
    name = genesis.validators[stopped].name
    keys = genesis.validator_set().keys
    late_rounds = 0
    for block, cert in blocks(net, 0, h0 + 1, h1):
        verify_commit_certificate(cert, block.hash(), keys, height=block.height)
        assert block.proposer != name
        assert name not in {s.validator for s in cert.signatures}
        late_rounds += cert.round > 0
    assert late_rounds > 0, "no height needed a round past the stopped proposer's"

    # the receipts handed out meanwhile rest on checkpoints the three co-signed alone
    assert any(r.checkpoint is not None for r in receipts)
    for r in receipts:
        if r.checkpoint is not None:
            r.verify(genesis)

    # after SIGCONT it catches up, and it takes part again
    all_identical(net, genesis, size)
    after = submit(net, stopped, enrolls(net, "resumed", 1)[0])
    late = all_identical(net, genesis, after.index + 1)
    assert late.size == size + 1
    client_check(net, genesis, stopped, receipts[len(receipts) // 2], early)
    client_check(net, genesis, 0, after, early)


def test_cut_one_off_and_heal(net: LedgerTestnet, genesis: Genesis) -> None:
    early = healthy(net, genesis)
    iso = 2
    live = [0, 1, 3]
    other_gid = net.groups[0]
    assert _can_connect(net.p2p_port(0), net.groups[iso])
    before = height(net, iso)
    with cut_off(net, iso):
        # the rules really drop: the cut validator cannot reach a peer, a peer cannot
        # reach it; the test (another group) still reads its HTTP API
        assert not _can_connect(net.p2p_port(0), net.groups[iso])
        assert not _can_connect(net.p2p_port(iso), other_gid)
        assert not _can_connect(net.http_port(iso), other_gid)
        assert _can_connect(net.http_port(0), other_gid)
        receipts = commit_for_a_while(net, live, "cut", min_heights=2 * N)
        size = max(r.index for r in receipts) + 1
        net.wait_same_checkpoint(live, size=size, timeout=30)
        # it heard nothing of them: still at its height, its log unchanged
        assert height(net, iso) == before
        st = net.status(iso)
        assert st is not None and st["size"] < size and not st["syncing"]
    assert _can_connect(net.p2p_port(0), net.groups[iso])
    assert _can_connect(net.p2p_port(iso), other_gid)

    assert any(r.checkpoint is not None for r in receipts)
    for r in receipts:
        if r.checkpoint is not None:
            r.verify(genesis)

    # healed: it catches up to the same checkpoint, then commits with the others
    all_identical(net, genesis, size)
    after = submit(net, iso, enrolls(net, "healed", 1)[0])
    all_identical(net, genesis, after.index + 1)
    client_check(net, genesis, iso, receipts[0], early)
    client_check(net, genesis, 1, after, early)


def test_sigkill_all_under_load_nothing_committed_is_lost(
    net: LedgerTestnet, genesis: Genesis
) -> None:
    early = healthy(net, genesis)
    h0 = height(net, 0)
    txs = enrolls(net, "load", 600)
    with load(net, txs) as receipts:
        wait_for(
            "commits under load",
            lambda: len(receipts) >= 40 and height(net, 0) >= h0 + 8,
            timeout=40,
        )
        for i in range(N):
            net.kill(i)
    acknowledged = list(receipts)
    # each receipt that came with a co-signed checkpoint stands on its own (one may
    # come without if co-signing lagged more than checkpoint_wait behind its commit)
    with_note = [r for r in acknowledged if r.checkpoint is not None]
    assert with_note, "no receipt carried a co-signed checkpoint"
    pre_kill = max((r.verify(genesis) for r in with_note), key=lambda c: c.size)

    net.start_all()
    after = submit(net, 1, enrolls(net, "after-kill", 1)[0])
    assert after.index >= max(r.index for r in acknowledged) + 1
    late = all_identical(net, genesis, after.index + 1)

    # every acknowledged transaction is where its receipt said, on every validator
    # (checked on one per receipt; the four equal roots cover the others)
    for k, r in enumerate(acknowledged):
        entry = net.get(k % N, f"/v1/entries/{r.index}").json()
        assert entry["tx_id"] == tx_id(r.tx), f"entry {r.index} lost or changed"
    # the largest checkpoint handed out before the kill is a prefix of the final log
    proof = net.get(3, "/v1/proofs/consistency", old=pre_kill.size, new=late.size).json()
    verify_consistency(
        pre_kill.size,
        late.size,
        pre_kill.root_hash,
        late.root_hash,
        [bytes.fromhex(h) for h in proof["proof"]],
    )
    client_check(net, genesis, 2, acknowledged[-1], early)
    client_check(net, genesis, 0, after, pre_kill)
