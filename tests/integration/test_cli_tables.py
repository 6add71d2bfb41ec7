"""``farm builds``, ``farm builders`` and ``farm attestations`` at 80 columns.

A real coordinator (uvicorn on a loopback port) holds realistic data: builders enrolled
over HTTP with real keys, builds of the shipped iniconfig 2.0.0 recipe and of a demo
recipe decided from real signed results (one verified but differing from upstream,
one matching upstream, one disputed, one pending), and signed attestations with their
ledger receipts (``farm.bench.api_load``), one artifact revoked. The commands run as a user
runs them, at COLUMNS=80: every name, short id and short digest must show whole, with
no ellipsis; ``--wide`` shows the full ids; ``--json`` parses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from api.coordinator.app import create_app
from farm.bench.api_load import make_attestations, store_attestations
from farm.cli.main import app
from farm.coordinator import service
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.db import make_engine
from farm.coordinator.models import Revocation, utcnow
from farm.coordinator.settings import CoordinatorSettings
from farm.keys import generate_key
from farm.recipe import load_recipe
from farm.result import OutputDigest
from farm.task import new_build_id
from tests.integration.conftest import REPO, serve
from tests.unit.farm.coordinator._world import BAD, GOOD, envelope, recipe, sha

INICONFIG = load_recipe(REPO / "recipes" / "iniconfig" / "2.0.0.yaml")
INICONFIG_WHEEL = "iniconfig-2.0.0-py3-none-any.whl"
HOSTS = ("rack1.farm.example", "rack2.farm.example", "rack3.farm.example")
STRANGER = "rack4.farm.example"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Data:
    url: str
    builders: list[str]
    stranger: str
    builds: dict[str, str]
    """Build id of each: differs, matches, disputed, pending."""
    package: str
    artifacts: list[tuple[str, str]]
    attestations: int
    attesters: list[str]
    revoked: str


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    root = tmp_path_factory.mktemp("tables")
    settings = CoordinatorSettings(
        db_url=f"sqlite:///{root / 'c.db'}",
        staging_dir=root / "staging",
        reports_dir=root / "reports",
    )
    engine = make_engine(settings.db_url)
    api = create_app(settings, engine=engine)
    with Session(engine) as s:
        token = service.create_operator_token(s, utcnow())
    with serve(api) as url, httpx.Client(base_url=url, timeout=10) as http:
        operator = CoordinatorClient(http, operator_token=token)
        keys = [generate_key() for _ in HOSTS]
        clients = []
        for key, host in zip(keys, HOSTS, strict=True):
            client = CoordinatorClient(http, key=key)
            client.enroll(operator.new_enrollment_token()["token"], host, ["amd64"])
            operator.approve(key.keyid, f"site-{key.keyid[:6]}")
            client.heartbeat()
            client.upload(GOOD)
            clients.append(client)
        clients[2].upload(BAD)
        stranger = generate_key()
        CoordinatorClient(http, key=stranger).enroll(
            operator.new_enrollment_token()["token"], STRANGER, ["amd64", "arm64"]
        )
        builds = {k: new_build_id() for k in ("pending", "disputed", "matches", "differs")}
        ids = [k.keyid for k in keys]
        demo = recipe(upstream=GOOD)
        with Session(engine) as s:
            for kind, build_id in builds.items():
                r = demo if kind in ("matches", "disputed") else INICONFIG
                service.create_build(s, r, "amd64", ids, build_id, utcnow())
        wheel = OutputDigest(name=INICONFIG_WHEEL, sha256=sha(GOOD), size=len(GOOD))
        for key, client, content in zip(keys, clients, (GOOD, GOOD, BAD), strict=True):
            b = builds["differs"]
            client.post_result(b, envelope(key, INICONFIG, b, GOOD, outputs=(wheel,)))
            client.post_result(builds["matches"], envelope(key, demo, builds["matches"]))
            client.post_result(builds["disputed"], envelope(key, demo, builds["disputed"], content))
        made, signers, _coordinator = make_attestations(4, workers=1)
        store_attestations(engine, made, signers)
        package = made[0].name
        mine = [m for m in made if m.name == package]
        revoked = mine[0].artifacts[0][1]
        with Session(engine) as s:
            s.add(
                Revocation(
                    sha256=revoked, reason="signing host compromised", status="committed",
                    tx="{}", tx_id="f" * 64, requested_by="operator", created_at=utcnow(),
                    decided_at=utcnow(), ledger_index=99,
                )
            )  # fmt: skip
            s.commit()
        yield Data(
            url=url,
            builders=ids,
            stranger=stranger.keyid,
            builds=builds,
            package=package,
            artifacts=[a for m in mine for a in m.artifacts],
            attestations=len(mine),
            attesters=sorted({b.keyid for b in signers}),
            revoked=revoked,
        )
    engine.dispose()


def run(data: Data, *argv: str, columns: int = 80) -> str:
    """Run ``farm ARGV --coordinator URL`` at ``columns`` wide; return its output."""
    result = CliRunner().invoke(
        app, [*argv, "--coordinator", data.url], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    return _ANSI.sub("", result.output)


def as_json(data: Data, *argv: str) -> Any:
    return json.loads(run(data, *argv, "--json"))


def farm(data: Data, *argv: str, columns: int = 80, ellipses: int = 0) -> str:
    """``run``, whose output holds no ellipsis but the ``ellipses`` the data itself has
    and, unless ``--wide`` (the table's natural width), fits in ``columns``."""
    out = run(data, *argv, columns=columns)
    print(out)
    assert out.count("…") == ellipses, "a cell was cut"
    if "--wide" not in argv:
        assert max(len(line) for line in out.splitlines()) <= columns
    return out


def lines_with(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


def test_builds_at_80_columns(data: Data) -> None:
    out = farm(data, "builds")
    rows = {kind: lines_with(out, build_id[:12]) for kind, build_id in data.builds.items()}
    assert all(len(r) == 1 for r in rows.values()), rows
    for kind in ("differs", "pending"):
        assert "iniconfig 2.0.0" in rows[kind][0]
    for kind in ("matches", "disputed"):
        assert "demo 1.0.0" in rows[kind][0]
    assert re.search(r"\bverified\b.*\bdiffers\b", rows["differs"][0]), rows
    assert re.search(r"\bverified\b.*\bmatches\b", rows["matches"][0]), rows
    assert re.search(r"\bdisputed\b", rows["disputed"][0]), rows
    assert re.search(r"\bpending\b", rows["pending"][0]), rows
    assert "4 of 4 builds" in out


def test_builds_wide_and_json(data: Data) -> None:
    page = as_json(data, "builds")
    # The verdicts' reasons abbreviate digests themselves.
    dots = sum((b["verdict_reason"] or "").count("…") for b in page["items"])
    wide = farm(data, "builds", "--wide", ellipses=dots)
    for b in page["items"]:  # whole ids and reasons, each build on one line
        (row,) = lines_with(wide, b["id"])
        assert (b["verdict_reason"] or "") in row
    assert {b["id"] for b in page["items"]} == set(data.builds.values())
    upstream = {b["id"]: b["upstream_matches"] for b in page["items"]}
    assert upstream[data.builds["differs"]] is False
    assert upstream[data.builds["matches"]] is True


def test_builders_at_80_columns(data: Data) -> None:
    out = farm(data, "builders")
    for builder_id, host in zip(data.builders, HOSTS, strict=True):
        (row,) = lines_with(out, builder_id[:12])
        assert host in row and "yes" in row
        # Three builds decided (two verified, one disputed); each agreed on the verified
        # ones and the two majority builders on the disputed one too.
        assert re.search(r"\b[23]/3 (67|100)%", row), row
    (row,) = lines_with(out, data.stranger[:12])
    assert STRANGER in row and "no" in row and "never" in row


def test_builders_wide_and_json(data: Data) -> None:
    wide = farm(data, "builders", "--wide")
    for builder_id in data.builders:
        (row,) = lines_with(wide, builder_id)
        assert re.search(r"index \d+", row) is None  # no ledger here: not enrolled on one
    (row,) = lines_with(wide, data.stranger)
    assert STRANGER in row
    listed = as_json(data, "builders")
    assert {b["id"] for b in listed} == {*data.builders, data.stranger}


def test_attestations_at_80_columns(data: Data) -> None:
    out = farm(data, "attestations", data.package)
    assert f"attestations of {data.package}" in out
    for name, digest in data.artifacts:
        assert name in out and f"sha256:{digest[:16]}" in out
    attesting = [b for b in data.attesters if b[:12] in out]
    assert len(attesting) >= 3  # each attestation rests on three builders
    assert len(lines_with(out, f"sha256:{data.revoked[:16]} revoked")) == 1
    why = f"(sha256:{data.revoked[:16]}): signing host compromised (ledger index 99)"
    assert why in " ".join(out.split())  # under the table, wrapped at 80 columns
    assert f"{data.attestations} of {data.attestations} attestations" in out


def test_attestations_wide_and_json(data: Data) -> None:
    wide = farm(data, "attestations", data.package, "--wide")
    for _, digest in data.artifacts:
        assert f"sha256:{digest}" in wide
    assert all(b in wide for b in data.attesters[:3])
    page = as_json(data, "attestations", data.package)
    assert {a["sha256"] for i in page["items"] for a in i["artifacts"]} == {
        d for _, d in data.artifacts
    }
