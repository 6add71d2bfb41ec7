"""Four real validator processes on loopback: commit, reject, crash, catch up, restart."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farm.attestation import build_bundle
from farm.checkpoint import (
    cosigned_time,
    signature_threshold,
    verify_checkpoint,
    verify_fresh_checkpoint,
)
from farm.keys import KeyPair, generate_key
from farm.merkle import hash_leaf, verify_inclusion
from farm.result import BuildPredicate, OutputDigest, sign_result
from farm.transactions import make_attest, make_enroll, make_revoke, tx_id
from ledger.errors import CheckpointError
from ledger.genesis import load_genesis
from tests.support.ledger_testnet import FARM, LedgerTestnet, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

RECIPE = "sha256:" + "ab" * 32
IMAGE = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerTestnet]:
    t = LedgerTestnet(tmp_path_factory.mktemp("ledger"), 4)
    try:
        t.start_all()
        yield t
    finally:
        t.close()


def _attest(coordinator: KeyPair, builders: list[KeyPair], build: str, artifact: bytes) -> bytes:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    outputs = (
        OutputDigest(
            name="pkg.whl", sha256=hashlib.sha256(artifact).hexdigest(), size=len(artifact)
        ),
    )
    envelopes = [
        sign_result(
            BuildPredicate(
                build_id=build,
                recipe_digest=RECIPE,
                recipe_name="pkg",
                recipe_version="1.0",
                image_digest=IMAGE,
                arch="x86_64",
                builder_id=b.keyid,
                started_at=now,
                finished_at=now,
                status="succeeded",
                exit_code=0,
                log_sha256="00" * 32,
                outputs=outputs,
            ),
            b,
        )
        for b in builders
    ]
    bundle = build_bundle(RECIPE, "pkg", "1.0", "x86_64", build, envelopes, coordinator, 3)
    return make_attest(bundle)


def _check_receipt(net: LedgerTestnet, body: dict[str, object], tx: bytes) -> None:
    assert body["tx_id"] == tx_id(tx)
    size = body["tree_size"]
    assert isinstance(size, int) and isinstance(body["index"], int)
    note = body["checkpoint"]
    assert isinstance(note, str), body
    g = load_genesis(net.genesis)
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    cp = verify_checkpoint(note, known, signature_threshold(g.n), g.chain_id)
    assert cp.size == size
    proof_hex = body["inclusion_proof"]
    assert isinstance(proof_hex, list)
    proof = [bytes.fromhex(h) for h in proof_hex]
    verify_inclusion(hash_leaf(tx), body["index"], size, proof, cp.root_hash)


def test_commit_reject_crash_and_catch_up(net: LedgerTestnet) -> None:
    operator, coordinator = net.operator, net.coordinator
    builders = [generate_key() for _ in range(3)]

    # enroll three builders through three different validators
    for i, b in enumerate(builders):
        tx = make_enroll(
            operator, b.public_dict(), ["x86_64"], f"host{i}", domain=f"host{i}", chain=net.chain_id
        )
        r = net.submit(i, tx)
        assert r.status_code == 200, r.text
        _check_receipt(net, r.json(), tx)

    # an attestation resting on the three builders' own signed results
    attest = _attest(coordinator, builders, "build-1", b"wheel bytes")
    r = net.submit(3, attest)
    assert r.status_code == 200, r.text
    receipt = r.json()
    _check_receipt(net, receipt, attest)

    # a duplicate is recognised, with the same entry
    again = net.submit(1, attest)
    assert again.status_code == 200, again.text
    assert again.json()["index"] == receipt["index"]

    # invalid: an attestation by builders that are not enrolled, a revoke by a stranger
    strangers = [generate_key() for _ in range(3)]
    bad_attest = _attest(coordinator, strangers, "build-2", b"other bytes")
    bad = net.submit(0, bad_attest)
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["code"] == "invalid_transaction"
    assert bad.json()["error"]["message"]
    bad_revoke = make_revoke(
        generate_key(), hashlib.sha256(b"wheel bytes").hexdigest(), "no", chain=net.chain_id
    )
    bad = net.submit(2, bad_revoke)
    assert bad.status_code == 400, bad.text
    assert "operator" in bad.json()["error"]["message"]

    revoke = make_revoke(
        operator, hashlib.sha256(b"wheel bytes").hexdigest(), "key leaked", chain=net.chain_id
    )
    r = net.submit(2, revoke)
    assert r.status_code == 200, r.text
    size = r.json()["index"] + 1
    body = net.wait_same_checkpoint(size=size)

    # the invalid transactions never entered a block
    for i in range(size):
        entry = net.get(0, f"/v1/entries/{i}").json()
        assert entry["tx_id"] not in (tx_id(bad_attest), tx_id(bad_revoke))

    # SIGKILL one validator: the other three keep committing
    net.kill(1)
    more = [
        make_enroll(
            operator,
            generate_key().public_dict(),
            ["x86_64"],
            f"extra{k}",
            domain=f"extra{k}",
            chain=net.chain_id,
        )
        for k in range(4)
    ]
    for k, tx in enumerate(more):
        r = net.submit([0, 2, 3][k % 3], tx)
        assert r.status_code == 200, r.text
    size += len(more)
    net.wait_same_checkpoint([0, 2, 3], size=size)

    # restart it: it catches up to the same checkpoint
    net.start(1)
    body = net.wait_same_checkpoint(size=size)

    # SIGKILL all four and restart: nothing committed is lost
    for i in range(4):
        net.kill(i)
    net.start_all()
    assert net.wait_same_checkpoint(size=size) == body
    for i in range(4):
        st = net.status(i)
        assert st is not None and st["size"] == size
    # and the chain goes on
    tx = make_enroll(
        operator,
        generate_key().public_dict(),
        ["x86_64"],
        "after-restart",
        domain="after-restart",
        chain=net.chain_id,
    )
    r = net.submit(0, tx)
    assert r.status_code == 200, r.text
    assert r.json()["index"] == size
    net.wait_same_checkpoint(size=size + 1)


def test_api_errors_and_proofs(net: LedgerTestnet) -> None:
    import base64

    tx = make_enroll(
        net.operator,
        generate_key().public_dict(),
        ["x86_64"],
        "api-test",
        domain="api-test",
        chain=net.chain_id,
    )
    r = net.client.post(net.url(1) + "/v1/tx", json={"tx": base64.b64encode(tx).decode()})
    assert r.status_code == 200, r.text
    assert r.json()["tx_id"] == tx_id(tx)
    assert net.get(2, f"/v1/entries/{r.json()['index']}").json()["tx_id"] == tx_id(tx)
    wait_for("a checkpoint", lambda: net.checkpoint(0))
    st = net.status(0)
    assert st is not None
    size = st["size"]
    assert net.get(0, "/v1/blocks/999999").json()["error"]["code"] == "not_found"
    assert net.get(0, f"/v1/entries/{size}").status_code == 404
    r = net.get(0, "/v1/proofs/inclusion", index=0, size=size)
    assert r.status_code == 200 and r.json()["size"] == size
    r = net.get(0, "/v1/proofs/consistency", old=1, new=size)
    assert r.status_code == 200
    assert net.get(0, "/v1/proofs/consistency", old=size, new=size + 5).status_code == 400
    r = net.client.post(net.url(0) + "/v1/tx", content=b"not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_transaction"
    block = net.get(0, "/v1/blocks/1").json()
    assert block["certificate"]["height"] == 1


def test_an_idle_ledgers_checkpoint_stays_fresh(net: LedgerTestnet) -> None:
    """No transaction, no block: the validators still re-cosign the latest checkpoint
    every FARM_LEDGER_COSIGN_INTERVAL (1 s here), so the time 2f+1 of them vouch for
    moves forward while the checkpoint itself stays the same."""
    import time

    tx = make_enroll(
        net.operator,
        generate_key().public_dict(),
        ["x86_64"],
        "fresh",
        domain="fresh",
        chain=net.chain_id,
    )
    r = net.submit(0, tx)
    assert r.status_code == 200, r.text
    size = r.json()["index"] + 1
    body = net.wait_same_checkpoint(size=size)
    g = load_genesis(net.genesis)
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    threshold = signature_threshold(g.n)

    def time_of(i: int) -> tuple[int, str]:
        cp = net.checkpoint(i)
        assert cp is not None
        note = str(cp["note"])
        return cosigned_time(note, known, threshold, g.chain_id), note

    first, old_note = time_of(0)
    assert abs(first - time.time()) < 10
    later = wait_for(
        "the idle checkpoint's time to advance by 3 s",
        lambda: (t := time_of(0)[0]) >= first + 3 and t,
        timeout=20,
    )
    assert later >= first + 3
    now = time.time()
    for i in range(net.n):
        _, note = time_of(i)
        assert note.split("\n\n", 1)[0] == body, "no new block while idle"
        cp = verify_fresh_checkpoint(note, known, threshold, g.chain_id, now=now, max_age=5)
        assert cp.size == size
    # the note served before is now stale for a client that allows 2 s
    with pytest.raises(CheckpointError, match="s old, older than the 2 s allowed"):
        verify_fresh_checkpoint(old_note, known, threshold, g.chain_id, now=now, max_age=2)


def test_run_refuses_a_store_of_another_genesis(net: LedgerTestnet, tmp_path: Path) -> None:
    import json
    import shutil
    import subprocess

    from ledger.storage import LedgerStore

    vdir = tmp_path / "v0"
    vdir.mkdir()
    shutil.copy2(net.root / "v0" / "validator.key", vdir / "validator.key")
    LedgerStore(vdir / "ledger.sqlite", load_genesis(net.genesis)).close()
    data = json.loads(net.genesis.read_text())
    data["chain_id"] = "another-chain"
    other = tmp_path / "genesis.json"
    other.write_text(json.dumps(data))
    r = subprocess.run(
        [*FARM, "ledger", "run", "--dir", str(vdir), "--genesis", str(other)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env=net.env,
    )
    assert r.returncode == 1, r.stderr
    assert "belongs to genesis" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_second_process_on_one_directory_is_refused(net: LedgerTestnet) -> None:
    import subprocess

    r = subprocess.run(
        [*FARM, "ledger", "run", "--dir", str(net.root / "v0"), "--genesis", str(net.genesis)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env=net.env,
    )
    assert r.returncode == 1
    assert "another validator process is running" in r.stderr


def test_commands_explain_what_is_missing(tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run(
        [
            *FARM,
            "ledger",
            "run",
            "--dir",
            str(tmp_path / "nokey"),
            "--genesis",
            str(tmp_path / "g.json"),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert "no genesis file" in r.stderr


def test_kill_all_under_load_then_restart_goes_on(tmp_path: Path) -> None:
    """All four die mid-height (votes signed, nothing committed): after a restart
    they resume in a fresh round, still locked, and commit again."""
    import contextlib
    import threading

    import httpx

    t = LedgerTestnet(tmp_path, 4)
    try:
        t.start_all()
        operator = t.operator
        txs = [
            make_enroll(
                operator,
                generate_key().public_dict(),
                ["x86_64"],
                f"load{k}",
                domain=f"load{k}",
                chain=t.chain_id,
            )
            for k in range(400)
        ]
        stop = threading.Event()

        def load(worker: int) -> None:
            with httpx.Client(timeout=5) as c:
                for k in range(worker, len(txs), 8):
                    if stop.is_set():
                        return
                    with contextlib.suppress(httpx.HTTPError):
                        c.post(t.url(k % 4) + "/v1/tx", content=txs[k])

        threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
        for th in threads:
            th.start()
        wait_for("some commits", lambda: (s := t.status(0)) is not None and s["height"] >= 10)
        for i in range(4):
            t.kill(i)
        stop.set()
        for th in threads:
            th.join()
        t.start_all()
        tx = make_enroll(
            operator,
            generate_key().public_dict(),
            ["x86_64"],
            "after",
            domain="after",
            chain=t.chain_id,
        )
        r = t.submit(1, tx)
        assert r.status_code == 200, r.text
        t.wait_same_checkpoint(size=r.json()["index"] + 1)
    finally:
        t.close()


def test_a_validator_that_joins_mid_height_is_sent_the_heights_messages(
    tmp_path: Path,
) -> None:
    """Two of four validators start a height (proposal, prevotes) before the third is
    up; with the fourth down, the round can only advance with the third's votes, and
    Tendermint waits for 2f+1 messages before it times a round out. The messages sent
    before it connected must reach it (sent again on connect), or the ledger stalls."""
    import threading

    t = LedgerTestnet(tmp_path, 4)
    try:
        t.start(0)
        t.start(1)
        wait_for("v0 and v1 to connect", lambda: (t.status(0) or {}).get("peers") == ["v1"])
        tx = make_enroll(t.operator, generate_key().public_dict(), ["x86_64"], "late",
                         domain="late", chain=t.chain_id)  # fmt: skip
        answers: list[int] = []
        submit = threading.Thread(target=lambda: answers.append(t.submit(0, tx, 40).status_code))
        submit.start()
        wait_for("v0 to start the height", lambda: (t.status(0) or {}).get("mempool") == 1)
        time.sleep(1.5)  # the height's first messages are gone, v2 has seen none
        t.start(2)
        submit.join(45)
        assert answers == [200], t.log(2)[-2000:]

        def at_height_1(i: int) -> bool:
            return (t.status(i) or {}).get("height") == 1

        for i in range(3):
            wait_for(f"v{i} at height 1", functools.partial(at_height_1, i))
    finally:
        t.close()
