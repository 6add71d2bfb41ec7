"""``farm pull`` / ``farm verify`` against a hostile distribution node.

The node is a real HTTP server (uvicorn in a thread) serving crafted answers; the
evidence behind them is real (keys, DSSE envelopes, Merkle log, cosigned checkpoints,
see tests/support/evidence.py). Each attack must end in exit status 1, one
line that names the artifact and the failure, and nothing written.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from farm.cli._errors import run_cli
from farm.cli.main import app
from farm.consumer.client import MAX_JSON
from farm.evidence import ArtifactEvidence, PackageRelease
from ledger.genesis import save_genesis
from tests.integration.conftest import serve
from tests.support.attest_world import WHEEL
from tests.support.evidence import BLOB, SHA, MiniLedger

Send = Any
Receive = Any


@dataclass
class HostileNode:
    """A node whose every answer the test sets: JSON bodies and the blob's bytes."""

    release: PackageRelease | None = None
    evidence: dict[str, ArtifactEvidence] = field(default_factory=dict)
    blob: bytes = BLOB
    content_length: int | None = None  # None: the blob's length
    chunked_extra: int = 0  # bytes sent past the blob, chunked, with no Content-Length
    gone: str | None = None  # answer 410 with this reason
    consistency: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    endless_json: bool = False  # answer the release with JSON that never ends

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        self.requests.append(path)
        if path.startswith("/v1/packages/") and self.endless_json:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b'{"name": "', "more_body": True})
            for _ in range((MAX_JSON >> 20) + 8):
                await send(
                    {"type": "http.response.body", "body": b"a" * (1 << 20), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        elif path.startswith("/v1/packages/") and self.release is not None:
            await _json(send, 200, self.release.model_dump(mode="json"))
        elif path.startswith("/v1/evidence/sha256/") and self.gone is not None:
            await _json(send, 410, {"error": {"code": "revoked", "message": self.gone}})
        elif path.startswith("/v1/evidence/sha256/") and path.rsplit("/", 1)[1] in self.evidence:
            await _json(send, 200, self.evidence[path.rsplit("/", 1)[1]].model_dump(mode="json"))
        elif path == "/v1/proofs/consistency":
            query = dict(p.split("=") for p in scope["query_string"].decode().split("&"))
            key = (int(query["old"]), int(query["new"]))
            if key in self.consistency:
                await _json(
                    send, 200, {"old": key[0], "new": key[1], "proof": self.consistency[key]}
                )
            else:
                await _json(send, 404, {"error": {"code": "not_found", "message": "no"}})
        elif path.startswith("/artifacts/sha256/"):
            await self._blob(send)
        else:
            await _json(send, 404, {"error": {"code": "not_found", "message": path}})

    async def _blob(self, send: Send) -> None:
        if self.gone is not None:
            await _json(send, 410, {"error": {"code": "revoked", "message": self.gone}})
            return
        if self.chunked_extra:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.blob, "more_body": True})
            for _ in range(self.chunked_extra // 65536):
                await send({"type": "http.response.body", "body": b"\0" * 65536, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        length = len(self.blob) if self.content_length is None else self.content_length
        headers = [(b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.blob[:length]})


async def _json(send: Send, status: int, value: Any) -> None:
    body = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def hostile() -> Iterator[tuple[HostileNode, str]]:
    node = HostileNode()
    with serve(node) as url:
        yield node, url


@dataclass
class Setup:
    ledger: MiniLedger
    node: HostileNode
    url: str
    tmp: Path

    @property
    def genesis(self) -> Path:
        return self.tmp / "genesis.json"

    @property
    def dest(self) -> Path:
        return self.tmp / "dl"

    def serve(self, evidence: ArtifactEvidence) -> None:
        self.node.release = PackageRelease(
            name="demo",
            version="1.0",
            checkpoint=evidence.checkpoint,
            tree_size=evidence.attestation.tree_size,
            artifacts=[evidence],
        )
        self.node.evidence = {evidence.artifact.sha256: evidence}

    def evidence(self, index: int, bundle: Any, *, age: float = 5.0, **kw: Any) -> ArtifactEvidence:
        note = kw.pop("note", None) or self.ledger.note(
            kw.get("tree_size"), at=int(time.time() - age), signers=kw.pop("signers", 4)
        )
        return self.ledger.evidence(index, bundle, note=note, **kw)

    def farm(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        """Run the real `farm` command line in this process; (status, stdout+stderr)."""
        argv = [
            "farm",
            *args,
            "--genesis",
            str(self.genesis),
            "--state-dir",
            str(self.tmp / "state"),
        ]
        if args[0] == "pull":
            argv += ["--node", self.url, "--dest", str(self.dest)]
        old = sys.argv
        sys.argv = argv
        try:
            status = run_cli(app)
        finally:
            sys.argv = old
        out = capsys.readouterr()
        return status, out.out + out.err

    def written(self) -> list[str]:
        return sorted(p.name for p in self.dest.iterdir()) if self.dest.exists() else []


@pytest.fixture
def setup(hostile: tuple[HostileNode, str], tmp_path: Path) -> Setup:
    ledger = MiniLedger()
    save_genesis(ledger.genesis, tmp_path / "genesis.json")
    node, url = hostile
    return Setup(ledger, node, url, tmp_path)


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_honest_pull_then_offline_verify(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    status, out = setup.farm(capsys, "pull", "demo==1.0", "--arch", "amd64")
    assert status == 0, out
    assert "3 builders agree" in out and "ledger index 5" in out and "checkpoint size 6" in out
    assert setup.written() == [WHEEL, WHEEL + ".farm-evidence.json"]
    assert (setup.dest / WHEEL).read_bytes() == BLOB
    setup.node.release = None  # the node is gone: verify must not need it
    status, out = setup.farm(capsys, "verify", str(setup.dest / WHEEL), "--offline")
    assert status == 0, out
    assert "from evidence file" in out
    (setup.dest / WHEEL).write_bytes(BLOB[:-1] + b"!")
    status, out = setup.farm(capsys, "verify", str(setup.dest / WHEEL), "--offline")
    assert status == 1
    assert "refused demo-1.0-py3-none-any.whl" in _one_line(out)
    assert "tampered with or mixed up" in out


def test_tampered_blob_is_refused(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    setup.node.blob = BLOB[:-1] + b"!"
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "bytes hash to sha256:" in _one_line(out) and "tampered" in out
    assert setup.written() == []


def test_endless_data_is_cut_off(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    setup.node.chunked_extra = 8 << 20
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert f"sent more than the {len(BLOB)} bytes declared (endless data)" in _one_line(out)
    assert setup.written() == []


def test_declared_length_above_the_attested_size_is_refused(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    setup.node.blob = BLOB + b"x" * 100
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert f"declares {len(BLOB) + 100} bytes, more than the {len(BLOB)} attested" in _one_line(out)
    assert setup.written() == []


def test_attestation_of_another_artifact_is_refused(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.ledger.attest()
    other_index, other = setup.ledger.attest(sha="7" * 64, build_id="other")
    setup.serve(setup.evidence(other_index, other))  # declares SHA, attests 777…
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "mix-and-match" in _one_line(out)
    assert not any(p.startswith("/artifacts/") for p in setup.node.requests)  # refused early


def test_old_checkpoint_is_refused_unless_allowed(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle, age=2 * 86400))
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "checkpoint is 2.0 days old, more than the allowed 24.0 h" in _one_line(out)
    status, out = setup.farm(capsys, "pull", "demo==1.0", "--max-age", "259200")
    assert status == 0, out
    assert "2.0 days old" in out
    wheel = str(setup.dest / WHEEL)
    status, out = setup.farm(capsys, "verify", wheel, "--offline")
    assert status == 1 and "2.0 days old" in _one_line(out)
    status, out = setup.farm(capsys, "verify", wheel, "--offline", "--allow-stale")
    assert status == 0, out


def test_too_few_signatures_are_refused(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle, signers=2))
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "2/4 known validator signatures, need 3" in _one_line(out)
    assert setup.written() == []


def test_rolled_back_tree_is_refused(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    old = setup.evidence(index, bundle)  # tree size 6
    setup.ledger.attest(sha="8" * 64, build_id="later")
    setup.serve(setup.evidence(index, bundle))  # tree size 7
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 0, out
    setup.serve(old)
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "6 entries but this machine already verified 7" in _one_line(out)


def test_growth_needs_a_consistency_proof(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))  # size 6
    assert setup.farm(capsys, "pull", "demo==1.0")[0] == 0
    setup.ledger.attest(sha="8" * 64, build_id="later")
    setup.serve(setup.evidence(index, bundle))  # size 7, no proof served
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "no consistency proof from the remembered size 6 to 7" in _one_line(out)
    setup.node.consistency[(6, 7)] = ["11" * 32 for _ in setup.ledger.consistency(6)]
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "does not extend" in _one_line(out)
    setup.node.consistency[(6, 7)] = [h.hex() for h in setup.ledger.consistency(6)]
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 0, out
    assert "checkpoint size 7" in out


def test_revoked_artifact_is_refused(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    at = setup.ledger.revoke(reason="CVE-2026-1234: compromised build host")
    setup.serve(setup.evidence(index, bundle, revoked_at=at))
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert "revoked on the ledger at index 6: CVE-2026-1234" in _one_line(out)
    # A node that hides the revocation in the evidence has no absence proof to give.
    setup.serve(setup.evidence(index, bundle))
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "did not prove the artifact is not revoked" in _one_line(out)
    # Evidence at the checkpoint before the revoke (true then), but 410 for the bytes.
    setup.serve(setup.evidence(index, bundle, tree_size=at))
    setup.node.gone = "CVE-2026-1234"
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "the node says it is revoked: CVE-2026-1234" in _one_line(out)
    assert setup.written() == []


def test_a_hidden_revocation_is_refused(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    """The node serves the evidence as it was before the revoke, at the newer checkpoint
    (which commits to the revoked set): without a proof of absence, or with the proof
    of the older, smaller set, the pull is refused and nothing is written."""
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 0, out
    older = setup.ledger.not_revoked(SHA)
    (setup.dest / WHEEL).unlink()
    setup.ledger.revoke(reason="CVE-2026-1234: compromised build host")
    size = setup.ledger.log.size
    setup.node.consistency[(size - 1, size)] = [h.hex() for h in setup.ledger.consistency(size - 1)]
    hidden = setup.evidence(index, bundle)  # no `revoked`, and no absence proof to give
    assert hidden.artifact.revoked is None and hidden.not_revoked is None
    for evidence, why in (
        (hidden, "the evidence has no absence proof"),
        (hidden.model_copy(update={"not_revoked": older}), "for 0 revocations, not 1"),
    ):
        setup.serve(evidence)
        setup.node.requests.clear()
        status, out = setup.farm(capsys, "pull", "demo==1.0")
        assert status == 1, out
        line = _one_line(out)
        assert "refused demo-1.0-py3-none-any.whl" in line and why in line
        assert "did not prove the artifact is not revoked" in line and "another node" in line
        assert setup.written() == [WHEEL + ".farm-evidence.json"]
        assert setup.node.requests == ["/v1/packages/demo/1.0", "/v1/proofs/consistency"]
    # `farm verify` asking the node by digest is refused the same way.
    file = setup.tmp / WHEEL
    file.write_bytes(BLOB)
    status, out = setup.farm(capsys, "verify", str(file), "--node", setup.url)
    assert status == 1 and "did not prove the artifact is not revoked" in _one_line(out)


def test_verify_asks_the_node_by_digest(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle))
    file = setup.tmp / WHEEL
    file.write_bytes(BLOB)
    status, out = setup.farm(capsys, "verify", str(file), "--node", setup.url)
    assert status == 0, out
    assert setup.node.requests[-1] == f"/v1/evidence/sha256/{SHA}"
    file.write_bytes(b"something else")
    status, out = setup.farm(capsys, "verify", str(file), "--node", setup.url)
    assert status == 1 and "knows no attested artifact with this digest" in _one_line(out)


def test_unreachable_node_and_missing_trust_root_are_explained(
    setup: Setup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    setup.url = "http://127.0.0.1:9"  # discard port: nothing listens
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "cannot reach the node at http://127.0.0.1:9" in _one_line(out)
    status, out = setup.farm(capsys, "pull", "demo")
    assert status == 1 and "'demo' is not NAME==VERSION" in _one_line(out)
    setup.genesis.unlink()
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1 and "no genesis file there" in _one_line(out)


def test_verify_refuses_what_the_node_says_is_revoked(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    file = setup.tmp / WHEEL
    file.write_bytes(BLOB)
    setup.node.gone = "CVE-2026-9: pulled"  # revoke committed, not yet in a checkpoint
    status, out = setup.farm(capsys, "verify", str(file), "--node", setup.url)
    assert status == 1
    assert f"sha256:{SHA}: the node says it is revoked: CVE-2026-9: pulled" in _one_line(out)


def test_stale_evidence_file_is_refreshed_from_the_node(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    index, bundle = setup.ledger.attest()
    setup.serve(setup.evidence(index, bundle, age=2 * 86400))
    assert setup.farm(capsys, "pull", "demo==1.0", "--allow-stale")[0] == 0
    wheel = setup.dest / WHEEL
    saved = Path(str(wheel) + ".farm-evidence.json")
    stale = saved.read_text()
    setup.serve(setup.evidence(index, bundle))  # the node now has a fresh checkpoint
    status, out = setup.farm(capsys, "verify", str(wheel), "--node", setup.url)
    assert status == 0, out
    assert setup.url in out and " s old" in out and "days" not in out
    assert saved.read_text() != stale
    status, out = setup.farm(capsys, "verify", str(wheel), "--offline")
    assert status == 0 and "from evidence file" in out


def test_a_lying_node_cannot_hide_a_good_consistency_proof(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    validator = HostileNode()  # an honest validator's HTTP API, as far as proofs go
    with serve(validator) as vurl:
        v0 = setup.ledger.genesis.validators[0].model_copy(update={"http": vurl[len("http://") :]})
        setup.ledger.genesis = setup.ledger.genesis.model_copy(
            update={"validators": (v0, *setup.ledger.genesis.validators[1:])}
        )
        save_genesis(setup.ledger.genesis, setup.genesis)
        index, bundle = setup.ledger.attest()
        setup.serve(setup.evidence(index, bundle))  # size 6
        assert setup.farm(capsys, "pull", "demo==1.0")[0] == 0
        setup.ledger.attest(sha="8" * 64, build_id="later")
        setup.serve(setup.evidence(index, bundle))  # size 7
        setup.node.consistency[(6, 7)] = ["11" * 32 for _ in setup.ledger.consistency(6)]
        validator.consistency[(6, 7)] = [h.hex() for h in setup.ledger.consistency(6)]
        status, out = setup.farm(capsys, "pull", "demo==1.0")
        assert status == 0, out
        assert "checkpoint size 7" in out
        assert validator.requests == ["/v1/proofs/consistency"] * 2  # before and after the bytes


def test_endless_json_is_cut_off(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.node.endless_json = True
    status, out = setup.farm(capsys, "pull", "demo==1.0")
    assert status == 1
    assert f"runs past {MAX_JSON} bytes (endless data)" in _one_line(out)
