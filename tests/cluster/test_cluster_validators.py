"""Cluster test group 2: the four validator hosts of a farm of hosts, broken one way each.

The validators are containers of ``deploy/cluster`` on their own ``ledger`` network;
faults are Docker's (pause, kill -9, stop, network disconnect). Every scenario ends as
the loopback ones do (:mod:`tests.support.ledger_checks`): all four serve the same checkpoint, each note
co-signed by 2f+1 genesis validators, and every transaction a validator acknowledged
is at its index, with proofs a consumer checks against the genesis alone. Each prints
its timings: how long the fault lasted, to recover (the faulty validator serves the
common checkpoint again) and to commit again. The last scenario delays and drops packets
on every validator link (:mod:`tests.support.netfault`: a delay proxy and iptables loss
in each validator's namespace, as ``tc netem`` on every host would).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from farm.transactions import tx_id
from ledger.genesis import Genesis, load_genesis
from ledger.verify import verify_consistency
from tests.support.cluster_ledger import ClusterValidators
from tests.support.hosts import FarmHosts
from tests.support.ledger_checks import (
    Receipt,
    all_identical,
    client_check,
    commit_for_a_while,
    enrolls,
    healthy,
    height,
    load,
    submit,
)
from tests.support.ledger_testnet import wait_for
from tests.support.netfault import net_faults

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker]

P2P_PORT = 26656
DELAY_S = 0.1
"""Added to every packet of a validator link, each way (one way: 100 ms, round trip 200)."""
LOSS = 0.05
"""Share of the packets of every validator link dropped (on leaving each host)."""
LOSSY_S = 45.0
"""How long transactions are submitted under delay and loss."""
COMMIT_BOUND_S = 20.0
"""Every transaction submitted under the fault commits within this (its 504 comes at 30)."""


@pytest.fixture(scope="module")
def vals(farm_hosts: FarmHosts) -> Iterator[ClusterValidators]:
    v = ClusterValidators(farm_hosts.project, farm_hosts.dir)
    try:
        yield v
    finally:
        v.heal()
        v.close()


@pytest.fixture(scope="module")
def genesis(vals: ClusterValidators) -> Genesis:
    return load_genesis(vals.genesis)


@pytest.fixture(autouse=True)
def _healed(vals: ClusterValidators) -> Iterator[None]:
    """Whatever a scenario broke is mended before the next one starts."""
    yield
    vals.heal()


def _report(name: str, **figures: float) -> None:
    """One line of timings (seconds) and counts for the closing note."""
    text = ", ".join(
        f"{k} {v}" if isinstance(v, int) else f"{k} {v:.1f} s" for k, v in figures.items()
    )
    print(f"\n[{name}] {text}")


def _acknowledged_everywhere(vals: ClusterValidators, receipts: list[Receipt]) -> None:
    """Nothing acknowledged was lost: each receipt's entry, on every validator."""
    for k, r in enumerate(receipts):
        entry = vals.get(k % vals.n, f"/v1/entries/{r.index}").json()
        assert entry["tx_id"] == tx_id(r.tx), f"entry {r.index} lost or changed"


def test_pause_one_the_others_commit_and_it_catches_up(
    vals: ClusterValidators, genesis: Genesis
) -> None:
    early = healthy(vals, genesis)
    vals.pause(3)
    t0 = time.monotonic()
    receipts = commit_for_a_while(vals, [0, 1, 2], "paused", min_heights=2 * vals.n)
    size = max(r.index for r in receipts) + 1
    vals.wait_same_checkpoint([0, 1, 2], size=size, timeout=60)
    vals.resume(3)
    t1 = time.monotonic()
    all_identical(vals, genesis, size)
    caught_up = time.monotonic() - t1
    after = submit(vals, 3, enrolls(vals, "unpaused", 1)[0])
    all_identical(vals, genesis, after.index + 1)
    _acknowledged_everywhere(vals, [*receipts, after])
    client_check(vals, genesis, 3, receipts[0], early)
    _report("pause v3", paused_s=t1 - t0, catch_up=caught_up, commit_after=time.monotonic() - t1)


def test_kill_one_and_restart_it(vals: ClusterValidators, genesis: Genesis) -> None:
    early = healthy(vals, genesis)
    vals.kill(2)
    t0 = time.monotonic()
    assert not vals.running(2)
    receipts = commit_for_a_while(vals, [0, 1, 3], "killed", min_heights=2 * vals.n)
    size = max(r.index for r in receipts) + 1
    vals.start(2)
    t1 = time.monotonic()
    all_identical(vals, genesis, size)
    recovered = time.monotonic() - t1
    after = submit(vals, 2, enrolls(vals, "restarted", 1)[0])
    all_identical(vals, genesis, after.index + 1)
    _acknowledged_everywhere(vals, [*receipts, after])
    client_check(vals, genesis, 2, receipts[-1], early)
    _report("kill -9 v2", down_s=t1 - t0, recover=recovered)


def test_disconnect_one_and_reconnect_it(vals: ClusterValidators, genesis: Genesis) -> None:
    early = healthy(vals, genesis)
    before = height(vals, 1)
    vals.disconnect(1)
    t0 = time.monotonic()
    assert vals.ip(1) == "", "v1 still has an address on the ledger network"
    receipts = commit_for_a_while(vals, [0, 2, 3], "cut", min_heights=2 * vals.n)
    size = max(r.index for r in receipts) + 1
    vals.wait_same_checkpoint([0, 2, 3], size=size, timeout=60)
    # Off the network it heard nothing: read it from inside its own container.
    assert _height_inside(vals, 1) == before
    vals.connect(1)
    t1 = time.monotonic()
    all_identical(vals, genesis, size)
    recovered = time.monotonic() - t1
    after = submit(vals, 1, enrolls(vals, "reconnected", 1)[0])
    all_identical(vals, genesis, after.index + 1)
    _acknowledged_everywhere(vals, [*receipts, after])
    client_check(vals, genesis, 1, receipts[0], early)
    _report("disconnect v1", cut_s=t1 - t0, recover=recovered)


def _height_inside(vals: ClusterValidators, i: int) -> int:
    """Validator ``i``'s height, asked from inside its container (no network needed)."""
    from tests.support.cluster_ledger import docker

    code = (
        "import json,urllib.request;"
        "print(json.load(urllib.request.urlopen('http://127.0.0.1:26657/v1/status'))['height'])"
    )
    return int(docker("exec", vals.container(i), "python3", "-c", code).strip())


def test_two_of_four_down_no_commit_no_fork_then_both_back(
    vals: ClusterValidators, genesis: Genesis
) -> None:
    healthy(vals, genesis)
    vals.stop(2)
    vals.stop(3)
    t0 = time.monotonic()
    stalled = {i: vals.checkpoint_body(i) for i in (0, 1)}
    h = {i: height(vals, i) for i in (0, 1)}
    tx = enrolls(vals, "no-quorum", 1)[0]
    with httpx.Client(timeout=15.0) as c:
        try:
            r = c.post(vals.url(0) + "/v1/tx", content=tx)
            answered = r.status_code
        except httpx.TimeoutException:
            answered = 0
    assert answered != 200, "a transaction committed with two of four validators"
    # No commit and no fork: the two live ones stay where they were, and agree.
    assert {i: height(vals, i) for i in (0, 1)} == h
    assert {i: vals.checkpoint_body(i) for i in (0, 1)} == stalled
    assert stalled[0] == stalled[1]
    vals.start(2, wait=False)
    vals.start(3, wait=False)
    t1 = time.monotonic()
    receipt = wait_for("the stalled transaction to commit", lambda: _try_submit(vals, tx), 120)
    resumed = time.monotonic() - t1
    all_identical(vals, genesis, receipt.index + 1)
    _acknowledged_everywhere(vals, [receipt])
    _report("two down", stalled_s=t1 - t0, commit_again=resumed)


def _try_submit(
    vals: ClusterValidators, tx: bytes, target: int = 1, timeout: float = 10.0
) -> Receipt | None:
    """``tx``'s receipt from validator ``target``, or None if it did not commit in time."""
    try:
        with httpx.Client(timeout=timeout) as c:
            r = c.post(vals.url(target) + "/v1/tx", content=tx)
    except httpx.HTTPError:
        return None
    return Receipt.from_answer(tx, r.json()) if r.status_code == 200 else None


def test_kill_all_four_under_load_nothing_acknowledged_is_lost(
    vals: ClusterValidators, genesis: Genesis
) -> None:
    healthy(vals, genesis)
    h0 = height(vals, 0)
    txs = enrolls(vals, "load", 400)
    with load(vals, txs) as receipts:
        wait_for(
            "commits under load",
            lambda: len(receipts) >= 30 and height(vals, 0) >= h0 + 5,
            timeout=90,
        )
        for i in range(vals.n):
            vals.kill(i)
        t0 = time.monotonic()
    acknowledged = list(receipts)
    with_note = [r for r in acknowledged if r.checkpoint is not None]
    assert with_note, "no receipt carried a co-signed checkpoint"
    pre_kill = max((r.verify(genesis) for r in with_note), key=lambda c: c.size)

    vals.start_all()
    after = wait_for(
        "a commit after the restart",
        lambda: _try_submit(vals, enrolls(vals, "after-kill", 1)[0]),
        120,
    )
    back = time.monotonic() - t0
    assert after.index >= max(r.index for r in acknowledged) + 1
    late = all_identical(vals, genesis, after.index + 1)
    _acknowledged_everywhere(vals, acknowledged)
    proof = vals.get(3, "/v1/proofs/consistency", old=pre_kill.size, new=late.size).json()
    verify_consistency(
        pre_kill.size,
        late.size,
        pre_kill.root_hash,
        late.root_hash,
        [bytes.fromhex(h) for h in proof["proof"]],
    )
    client_check(vals, genesis, 0, after, pre_kill)
    _report("kill -9 all four", acknowledged_txs=len(acknowledged), commit_again=back)


def test_delay_and_loss_on_every_link_still_commits(
    vals: ClusterValidators, genesis: Genesis
) -> None:
    """100 ms delay and 5 % loss on every validator link: transactions submitted during
    the fault commit, each within COMMIT_BOUND_S, and afterwards all four are identical."""
    early = healthy(vals, genesis)
    h0 = height(vals, 0)
    with net_faults([vals.container(i) for i in range(vals.n)]) as faults:
        for fault in faults:
            fault.drop(LOSS, [P2P_PORT], ingress=False)
            fault.delay(DELAY_S, [P2P_PORT])
        # Links made before the rules would skip the proxy: break them, they redial.
        for fault in faults:
            fault.reset_links([P2P_PORT])
        t0 = time.monotonic()
        try:
            wait_for("every validator linked to its 3 peers again", lambda: _all_linked(vals), 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_links_report(vals)}") from None
        relinked = time.monotonic() - t0
        receipts: list[Receipt] = []
        latencies: list[float] = []
        batch = 0
        while time.monotonic() - t0 < LOSSY_S or height(vals, 0) < h0 + 2 * vals.n:
            assert time.monotonic() - t0 < 3 * LOSSY_S, "the ledger stopped committing"
            for k, tx in enumerate(enrolls(vals, f"lossy{batch}", vals.n)):
                sent = time.monotonic()
                receipts.append(submit(vals, k, tx))
                latencies.append(time.monotonic() - sent)
            batch += 1
        dropped = sum(f.dropped() for f in faults)
        under_fault = time.monotonic() - t0
    healed = time.monotonic()
    latencies.sort()
    # The faults were in effect: packets were dropped, and no commit beat the delay (a
    # height takes at least propose, prevote, precommit: three one-way delays).
    assert dropped > 0, "the loss rules dropped nothing"
    assert latencies[0] >= 3 * DELAY_S, f"a commit took {latencies[0]:.3f} s: no delay?"
    assert latencies[-1] < COMMIT_BOUND_S, f"a commit took {latencies[-1]:.1f} s"
    after = submit(vals, 1, enrolls(vals, "healed", 1)[0])
    all_identical(vals, genesis, after.index + 1)
    _acknowledged_everywhere(vals, [*receipts, after])
    client_check(vals, genesis, 2, receipts[-1], early)
    _report(
        "delay 100 ms + loss 5 % on every link",
        fault_s=under_fault,
        relink=relinked,
        txs=len(receipts),
        heights=height(vals, 0) - h0,
        dropped_packets=dropped,
        commit_p50=latencies[len(latencies) // 2],
        commit_max=latencies[-1],
        commit_after_heal=time.monotonic() - healed,
    )


def _all_linked(vals: ClusterValidators) -> bool:
    """Every validator has its send and receive links to every other one."""
    for i in range(vals.n):
        st = vals.status(i)
        if st is None or len(st["peers"]) != vals.n - 1:
            return False
    return True


def _links_report(vals: ClusterValidators) -> str:
    """Each validator's peers and the end of its log, for a failed wait on the links."""
    import subprocess

    lines = []
    for i in range(vals.n):
        st = vals.status(i)
        lines.append(f"--- v{i}: peers {st and st['peers']}, height {st and st['height']}")
        tail = subprocess.run(
            ["docker", "logs", "--tail", "25", vals.container(i)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        lines += [f"    {t}" for t in (tail.stdout + tail.stderr).splitlines()]
    return "\n".join(lines)
