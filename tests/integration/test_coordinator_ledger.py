"""The coordinator commits to a real ledger: 4 ``farm ledger run`` validators, Redis,
three builder workers, Docker and ``farm serve --ledger``.

Approving a builder commits an enroll transaction; a verified build commits an attest
transaction whose receipt (index, inclusion proof, co-signed checkpoint) the
coordinator serves and a client verifies against the genesis validator keys; a
disputed build commits nothing.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.coordinator.app import create_app
from farm.attestation import AttestationBundle
from farm.checkpoint import signature_threshold, verify_checkpoint
from farm.cluster import LocalCluster, free_port
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.settings import CoordinatorSettings
from farm.keys import generate_key, load_key
from farm.merkle import hash_leaf, verify_consistency, verify_inclusion
from farm.operator import Operator
from farm.transactions import make_attest, make_revoke, tx_id
from ledger.genesis import load_genesis
from tests.integration.conftest import serve, write_recipe
from tests.support.ledger_testnet import LedgerTestnet
from tests.support.served import farm_cli as _farm
from tests.support.served import served_farm, wait_for
from tests.unit.farm.coordinator._world import sha
from tests.unit.farm.coordinator.test_upstream import file_server

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.image, pytest.mark.slow]


@dataclass
class Farm:
    """A running farm on a running ledger."""

    url: str
    token: str
    cluster: LocalCluster
    net: LedgerTestnet
    http: httpx.Client

    @property
    def auth(self) -> dict[str, str]:
        """The operator token's header."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def signing(self) -> list[str]:
        """What farm revoke / farm operator sign with: the operator's key, kept where
        the operator works (never given to the coordinator)."""
        return ["--key", str(self.net.root / "operator.key"), "--genesis", str(self.net.genesis)]

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def ledger_size(self) -> int:
        sizes = {s["size"] for i in range(self.net.n) if (s := self.net.status(i)) is not None}
        assert len(sizes) == 1, sizes
        return int(sizes.pop())


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, builder_image: str) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("ledgerloop")
    net = LedgerTestnet(root / "ledger", 4)
    try:
        net.start_all()
        with served_farm(
            root,
            label="ledger test",
            serve_args=[
                "--ledger", ",".join(net.url(i) for i in range(net.n)),
                "--coordinator-key", str(net.root / "coordinator.key"),
                "--ledger-chain", net.chain_id, "--genesis", str(net.genesis),
            ],
            operator=(net.root / "operator.key", net.genesis),
            serve_env={
                "FARM_COORDINATOR_TIMEOUT_MARGIN": "5",
                "FARM_COORDINATOR_LEDGER_INTERVAL": "0.5",
            },
        ) as served:  # fmt: skip
            yield Farm(served.url, served.token, served.cluster, net, served.http)
    finally:
        net.close()


def _verify_receipt(net: LedgerTestnet, att: dict[str, Any]) -> None:
    """Check the attestation's inclusion proof against a checkpoint co-signed by 3 of 4."""
    g = load_genesis(net.genesis)
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    assert signature_threshold(g.n) == 3
    note = att["checkpoint"]
    assert isinstance(note, str), att
    cp = verify_checkpoint(note, known, 3, g.chain_id)
    assert cp.size == att["tree_size"]
    tx = make_attest(AttestationBundle.model_validate(att["bundle"]))
    assert tx_id(tx) == att["tx_id"]
    proof = [bytes.fromhex(h) for h in att["inclusion_proof"]]
    verify_inclusion(hash_leaf(tx), att["ledger_index"], cp.size, proof, cp.root_hash)
    # The committed entry is the same bytes.
    entry = net.get(0, f"/v1/entries/{att['ledger_index']}")
    assert entry.status_code == 200, entry.text


def test_approved_builders_are_enrolled_on_the_ledger(farm: Farm) -> None:
    def enrolled() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = farm.get("/v1/builders")
        done = [b for b in rows if b["ledger_index"] is not None]
        assert not [b for b in rows if b["ledger_error"]], rows
        return rows if len(done) == 3 else None

    rows = wait_for("three enroll transactions", enrolled, 60, 0.3)
    assert sorted(b["ledger_index"] for b in rows) == [0, 1, 2]
    assert farm.ledger_size() == 3
    # Each in the domain the operator gave it, inside the enroll transaction it signed.
    assert sorted(b["domain"] for b in rows) == ["local-1", "local-2", "local-3"]
    for b in rows:
        entry = farm.net.get(0, f"/v1/entries/{b['ledger_index']}").json()
        tx = json.loads(base64.b64decode(entry["tx"]))
        assert tx["type"] == "enroll" and tx["domain"] == b["domain"]
        assert tx["operator"] == farm.net.operator.keyid


def test_the_coordinator_relays_only_what_the_operator_signed(farm: Farm) -> None:
    """A coordinator with a ledger approves nothing unsigned, and nothing signed by a key
    the genesis does not list as an operator (its own coordinator key, say)."""
    token = farm.http.post(
        "/v1/operator/enrollment-tokens", headers=farm.auth, json={"note": "relay test"}
    ).json()["token"]
    key = generate_key()
    CoordinatorClient(farm.http, key=key).enroll(token, "relay-host", ["amd64"])
    approve = f"/v1/builders/{key.keyid}/approve"
    unsigned = farm.http.post(approve, headers=farm.auth, json={"domain": "org-x"})
    assert unsigned.status_code == 400, unsigned.text
    assert "enroll transaction the operator signed" in unsigned.json()["error"]["message"]
    shown = farm.get(f"/v1/builders/{key.keyid}")
    coordinator = Operator(load_key(farm.net.root / "coordinator.key"), farm.net.chain_id)
    forged = coordinator.enroll(key.keyid, shown, "org-x").decode()
    refused = farm.http.post(
        approve, headers=farm.auth, json={"domain": "org-x", "enroll_tx": forged}
    )
    assert refused.status_code == 403, refused.text
    assert "unknown operator" in refused.json()["error"]["message"]
    assert farm.get(f"/v1/builders/{key.keyid}")["approved"] is False


def test_verified_build_is_attested_with_a_verifiable_proof(
    farm: Farm, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    wait_for(
        "enrolls",
        lambda: (
            all(b["ledger_index"] is not None for b in farm.get("/v1/builders") if b["approved"])
            or None
        ),
        60,
        0.3,
    )
    size_before = farm.ledger_size()
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "cp data.txt /out/data.txt\n", ["data.txt"], name="ledger-ok",
    )  # fmt: skip
    proc = _farm(
        "submit", str(recipe), "--coordinator", farm.url, "--operator-token", farm.token,
        "--wait", "--timeout", "120",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout

    def attested() -> dict[str, Any] | None:
        page: dict[str, Any] = farm.get("/v1/attestations", name="ledger-ok")
        return page if page["total"] == 1 else None

    page = wait_for("the attestation", attested, 60, 0.3)
    att = page["items"][0]
    assert att["status"] == "committed" and att["reason"] is None
    assert att["ledger_index"] == size_before
    assert {a["name"] for a in att["artifacts"]} == {"data.txt"}
    _verify_receipt(farm.net, att)
    assert farm.ledger_size() == size_before + 1

    # The same attestation by tx id and by each filter.
    one = farm.get(f"/v1/attestations/{att['tx_id']}")
    assert one["tx_id"] == att["tx_id"] and one["inclusion_proof"] == att["inclusion_proof"]
    sha = att["artifacts"][0]["sha256"]
    assert farm.get("/v1/attestations", sha256=sha)["total"] == 1
    assert farm.get("/v1/attestations", recipe_digest=att["recipe_digest"])["total"] == 1
    assert farm.get("/v1/attestations", name="ledger-ok", version="1.0", arch="amd64")["total"]
    assert farm.get("/v1/attestations", name="ledger-ok", arch="arm64")["total"] == 0
    missing = farm.http.get("/v1/attestations/" + "0" * 64)
    assert missing.status_code == 404 and "error" in missing.json()


def test_disputed_build_commits_nothing(
    farm: Farm, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    wait_for(
        "enrolls",
        lambda: (
            all(b["ledger_index"] is not None for b in farm.get("/v1/builders") if b["approved"])
            or None
        ),
        60,
        0.3,
    )
    # Any attestation still on its way lands before the size is taken.
    wait_for(
        "no verified build waiting for the ledger",
        lambda: _settled(farm) or None,
        60,
        0.3,
    )
    size_before = farm.ledger_size()
    recipe = write_recipe(
        tmp_path / "recipes", builder_image, git_source,
        "date +%s%N > /out/stamp.txt\n", ["stamp.txt"], name="ledger-stamp",
    )  # fmt: skip
    proc = _farm(
        "submit", str(recipe), "--coordinator", farm.url, "--operator-token", farm.token,
        "--wait", "--timeout", "120",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "disputed" in proc.stdout
    # The publisher passes every 0.5 s; give it several, then nothing may have moved.
    time.sleep(3.0)
    assert farm.get("/v1/attestations", name="ledger-stamp")["total"] == 0
    assert farm.get("/v1/attestations", name="ledger-stamp", status="rejected")["total"] == 0
    assert farm.ledger_size() == size_before


def _settled(farm: Farm) -> bool:
    verified = farm.get("/v1/builds", verdict="verified")["total"]
    attested = farm.get("/v1/attestations")["total"]
    rejected = farm.get("/v1/attestations", status="rejected")["total"]
    return bool(verified == attested + rejected)


def _attested_artifact(farm: Farm, image: str, source: dict[str, str], tmp: Path, name: str) -> Any:
    """Build a trivial recipe named ``name`` to a committed attestation; return it."""
    wait_for(
        "enrolls",
        lambda: (
            all(b["ledger_index"] is not None for b in farm.get("/v1/builders") if b["approved"])
            or None
        ),
        60,
        0.3,
    )
    recipe = write_recipe(
        tmp / "recipes", image, source, f"echo {name} > /out/{name}.txt\n", [f"{name}.txt"],
        name=name,
    )  # fmt: skip
    proc = _farm(
        "submit", str(recipe), "--coordinator", farm.url, "--operator-token", farm.token,
        "--wait", "--timeout", "120",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def attested() -> dict[str, Any] | None:
        page: dict[str, Any] = farm.get("/v1/attestations", name=name)
        return page["items"][0] if page["total"] == 1 else None

    return wait_for("the attestation", attested, 60, 0.3)


def test_revocation_is_committed_and_shown(
    farm: Farm, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    att = _attested_artifact(farm, builder_image, git_source, tmp_path, "ledger-revoke")
    sha = att["artifacts"][0]["sha256"]
    assert att["revoked"] is False and att["artifacts"][0]["revoked"] is None

    # Writes need a valid operator token.
    body = {
        "tx": make_revoke(farm.net.operator, sha, "compromised", chain=farm.net.chain_id).decode()
    }
    anon = farm.http.post("/v1/revocations", json=body)
    assert anon.status_code == 401, anon.text
    assert anon.json()["error"]["code"] == "unauthenticated"
    bad = farm.http.post(
        "/v1/revocations", json=body, headers={"Authorization": "Bearer not-a-token"}
    )
    assert bad.status_code == 401 and bad.json()["error"]["message"]
    assert farm.get("/v1/revocations", sha256=sha)["total"] == 0

    # An unknown digest is refused with a clear message, before anything is signed.
    proc = _farm(
        "revoke", "ab" * 32, "--reason", "x", "--coordinator", farm.url,
        "--operator-token", farm.token, *farm.signing,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no committed attestation on this coordinator" in proc.stderr, proc.stderr

    size_before = farm.ledger_size()
    proc = _farm(
        "revoke", f"sha256:{sha}", "--reason", "compromised signing host",
        "--coordinator", farm.url, "--operator-token", farm.token, "--wait", *farm.signing,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"committed at ledger index {size_before}" in proc.stdout, proc.stdout
    assert farm.ledger_size() == size_before + 1

    (rev,) = farm.get("/v1/revocations", sha256=sha)["items"]
    assert rev["status"] == "committed" and rev["ledger_index"] == size_before
    assert rev["reason"] == "compromised signing host" and rev["error"] is None
    # The committed entry is the revoke transaction the operator signed (farm revoke --key).
    entry = farm.net.get(1, f"/v1/entries/{size_before}").json()
    tx = json.loads(base64.b64decode(entry["tx"]))
    assert entry["tx_id"] == rev["tx_id"]
    assert tx["type"] == "revoke" and tx["artifact"] == sha
    assert tx["operator"] == farm.net.operator.keyid
    # ... and its inclusion proof holds against a checkpoint 3 of 4 validators signed.
    g = load_genesis(farm.net.genesis)
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    cp = verify_checkpoint(rev["checkpoint"], known, 3, g.chain_id)
    proof = [bytes.fromhex(h) for h in rev["inclusion_proof"]]
    raw = base64.b64decode(entry["tx"])
    verify_inclusion(hash_leaf(raw), size_before, cp.size, proof, cp.root_hash)

    # Attestations of the artifact show the revocation; the filter finds it.
    one = farm.get("/v1/attestations", sha256=sha)["items"][0]
    assert one["revoked"] is True
    assert one["artifacts"][0]["revoked"] == {
        "revocation_id": rev["id"],
        "reason": "compromised signing host",
        "ledger_index": size_before,
    }
    revoked = farm.get("/v1/attestations", revoked="true")
    assert sha in {a["sha256"] for item in revoked["items"] for a in item["artifacts"]}
    assert att["tx_id"] not in {
        i["tx_id"] for i in farm.get("/v1/attestations", revoked="false")["items"]
    }

    # Twice is refused, with where the first one is.
    proc = _farm(
        "revoke", sha, "--reason", "again", "--coordinator", farm.url,
        "--operator-token", farm.token, *farm.signing,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"already revoked (at ledger index {size_before}" in proc.stderr, proc.stderr

    # farm attestations shows it too.
    proc = _farm("attestations", "ledger-revoke==1.0", "--coordinator", farm.url)
    assert proc.returncode == 0, proc.stderr
    assert "compromised signing host" in proc.stdout and str(att["ledger_index"]) in proc.stdout


def test_attestations_command(
    farm: Farm, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    att = _attested_artifact(farm, builder_image, git_source, tmp_path, "ledger-list")
    sha = att["artifacts"][0]["sha256"]
    proc = _farm("attestations", "ledger-list", "--coordinator", farm.url)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ledger-list" in out and "amd64" in out and "ledger-list.txt" in out
    assert str(att["ledger_index"]) in out and sha[:16] in out
    assert all(b[:12] in out for b in att["builders"]) and len(att["builders"]) == 3
    assert "1 of 1 attestations" in out

    proc = _farm(
        "attestations", "ledger-list==1.0", "--arch", "amd64", "--sha256", sha, "--json",
        "--coordinator", farm.url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = json.loads(proc.stdout)
    assert page["total"] == 1 and page["items"][0]["tx_id"] == att["tx_id"]

    proc = _farm("attestations", "ledger-list==2.0", "--coordinator", farm.url)
    assert proc.returncode == 0 and "no committed attestation of ledger-list==2.0" in proc.stdout

    for spec, why in (
        ("ledger-list=1.0", "use == between name and version"),
        ("ledger-list==", "no version after =="),
        ("a==1==2", "more than one =="),
        ("bad name", "is not NAME or NAME==VERSION"),
    ):
        proc = _farm("attestations", spec, "--coordinator", farm.url)
        assert proc.returncode == 2, (spec, proc.stdout, proc.stderr)
        assert why in proc.stderr, (spec, proc.stderr)
    proc = _farm("attestations", "ledger-list", "--sha256", "xyz", "--coordinator", farm.url)
    assert proc.returncode == 2 and "is not a sha256" in proc.stderr


def test_ledger_checkpoint_proofs_and_status(farm: Farm) -> None:
    g = load_genesis(farm.net.genesis)
    known = {v.name: bytes.fromhex(v.public_key) for v in g.validators}
    wait_for("no verified build waiting for the ledger", lambda: _settled(farm) or None, 60, 0.3)
    status = farm.get("/v1/ledger/status")
    assert status["size"] == farm.ledger_size() and status["height"] >= 1
    assert status["chain_id"] == g.chain_id

    def full_checkpoint() -> dict[str, Any] | None:
        cp: dict[str, Any] = farm.get("/v1/ledger/checkpoint")
        return cp if cp["size"] == status["size"] else None

    cp_json = wait_for("a checkpoint of the whole log", full_checkpoint, 30, 0.3)
    cp = verify_checkpoint(cp_json["note"], known, 3, g.chain_id)
    assert cp.size == status["size"]

    # Every entry (enrolls, and whatever earlier tests committed) is in the tree.
    for index in range(cp.size):
        p = farm.get("/v1/ledger/proofs/inclusion", index=index, size=cp.size)
        raw = base64.b64decode(farm.net.get(2, f"/v1/entries/{index}").json()["tx"])
        assert p["leaf_hash"] == hash_leaf(raw).hex() and p["root"] == cp.root_hash.hex()
        proof = [bytes.fromhex(h) for h in p["proof"]]
        verify_inclusion(hash_leaf(raw), index, cp.size, proof, cp.root_hash)

    # Each earlier tree is a prefix of today's.
    for old_size in range(1, cp.size + 1):
        old = farm.get("/v1/ledger/proofs/inclusion", index=0, size=old_size)["root"]
        c = farm.get("/v1/ledger/proofs/consistency", old=old_size, new=cp.size)
        proof = [bytes.fromhex(h) for h in c["proof"]]
        verify_consistency(old_size, cp.size, bytes.fromhex(old), cp.root_hash, proof)

    # Bad queries: one error shape, a status that says whose fault it is.
    for path, params, status_code in (
        ("/v1/ledger/proofs/inclusion", {"index": 5, "size": 5}, 400),
        ("/v1/ledger/proofs/inclusion", {"index": 0, "size": cp.size + 1000}, 400),
        ("/v1/ledger/proofs/inclusion", {"index": -1, "size": 2}, 422),
        ("/v1/ledger/proofs/consistency", {"old": 4, "new": 2}, 400),
        ("/v1/ledger/proofs/consistency", {"old": 1}, 422),
    ):
        r = farm.http.get(path, params=params)
        assert r.status_code == status_code, (path, params, r.text)
        assert set(r.json()) == {"error"} and r.json()["error"]["message"]
    schema = farm.get("/openapi.json")
    ok = schema["paths"]["/v1/ledger/checkpoint"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("LedgerCheckpointPublic")


def test_rebuild_differing_from_upstream_gets_an_upstream_diffoscope_report(
    farm: Farm, builder_image: str, git_source: dict[str, str], tmp_path: Path
) -> None:
    upstream = b"some data, as upstream published it\n"
    with file_server({"/data.txt": upstream, "/other.txt": upstream}) as base:
        recipe = write_recipe(
            tmp_path / "recipes", builder_image, git_source,
            "cp data.txt /out/data.txt\ncp data.txt /out/other.txt\n",
            ["data.txt", "other.txt"], name="ledger-upstream",
            upstream=[
                {"output": "data.txt", "sha256": sha(upstream), "url": f"{base}/data.txt"},
                # The URL serves the right bytes but the recipe's digest is not theirs.
                {"output": "other.txt", "sha256": "0" * 64, "url": f"{base}/other.txt"},
            ],
        )  # fmt: skip
        proc = _farm(
            "submit", str(recipe), "--coordinator", farm.url, "--operator-token", farm.token,
            "--wait", "--timeout", "120",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "verified" in proc.stdout
        assert "differs from upstream: data.txt, other.txt" in proc.stdout, proc.stdout
        (build,) = farm.get("/v1/builds", name="ledger-upstream")["items"]

        def reported() -> dict[str, Any] | None:
            b: dict[str, Any] = farm.get(f"/v1/builds/{build['id']}")
            return b if "upstream_reports" in (b["verdict"] or {}) else None

        full = wait_for("the upstream reports in the verdict", reported, 60, 0.3)
    verdict = full["verdict"]
    assert verdict["status"] == "verified" and verdict["upstream_matches"] is False
    by_output = {r["output"]: r for r in verdict["upstream_reports"]}
    assert by_output["data.txt"]["status"] == "done", by_output
    assert by_output["other.txt"]["status"] == "error"
    assert "not the recipe's reference" in by_output["other.txt"]["error"]

    diffs = farm.get(f"/v1/builds/{build['id']}/diffs")
    (done,) = [d for d in diffs if d["output"] == "data.txt"]
    assert done["against"] == "upstream" and done["sha256_a"] == sha(upstream)
    assert done["id"] == by_output["data.txt"]["report_id"]
    report = farm.get(f"/v1/diffs/{done['id']}.json")
    assert "-some data, as upstream published it" in report["unified_diff"]
    assert "+some data" in report["unified_diff"]
    html = farm.http.get(f"/v1/diffs/{done['id']}.html")
    assert html.status_code == 200 and "sandbox" in html.headers["content-security-policy"]


def test_ledger_reads_fail_over_and_say_when_no_validator_answers(
    farm: Farm, tmp_path: Path
) -> None:
    """Last in this module: it stops a validator (and starts it again)."""
    farm.net.stop(0)
    try:
        for _ in range(3):
            assert farm.get("/v1/ledger/status")["size"] >= 3
            assert farm.get("/v1/ledger/checkpoint")["note"]
    finally:
        farm.net.start(0)
    # A coordinator whose validators are all gone answers 503 in the one error shape.
    dead = ",".join(f"http://127.0.0.1:{free_port()}" for _ in range(2))
    settings = CoordinatorSettings(
        db_url=f"sqlite:///{tmp_path / 'c.db'}",
        staging_dir=tmp_path / "staging",
        ledger_urls=dead,
        coordinator_key=farm.net.root / "coordinator.key",
        ledger_chain=farm.net.chain_id,
        genesis=farm.net.genesis,
    )
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
        for path in ("/v1/ledger/status", "/v1/ledger/checkpoint"):
            r = http.get(path)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "ledger_unavailable"
            assert "no ledger validator answered" in r.json()["error"]["message"]
