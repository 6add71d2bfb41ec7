"""``farm serve``, ``farm operator`` and ``farm builder enroll`` as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from farm.keys import generate_key, save_key
from farm.ports import free_port

FARM = [sys.executable, "-m", "farm.cli"]


def farm(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [*FARM, *args], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_serve_token_enroll_approve(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FARM_COORDINATOR_URL", None)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            *FARM,
            "serve",
            "--db",
            db,
            "--port",
            str(port),
            "--staging",
            str(tmp_path / "st"),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        operator = farm("operator", "new-operator-token", "--db", db, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/v1/builders", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "farm serve did not come up"
                time.sleep(0.1)
        token = farm(
            "operator", "token", "--coordinator", url, "--operator-token", operator, env=env
        )
        home = tmp_path / "builder"
        farm("builder", "init", "--home", str(home), env=env)
        builder_id = farm("builder", "id", "--home", str(home), env=env)
        out = farm(
            "builder",
            "enroll",
            "--coordinator",
            url,
            "--token",
            token,
            "--home",
            str(home),
            env=env,
        )
        assert builder_id in out and "pending approval" in out
        again = subprocess.run(
            [
                *FARM,
                "builder",
                "enroll",
                "--coordinator",
                url,
                "--token",
                token,
                "--home",
                str(home),
            ],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert again.returncode == 1
        assert "already used" in again.stderr
        farm(
            "operator",
            "approve",
            builder_id,
            "--coordinator",
            url,
            "--operator-token",
            operator,
            "--domain",
            "org-a",
            env=env,
        )
        (listed,) = httpx.get(f"{url}/v1/builders").json()
        assert listed["id"] == builder_id and listed["approved"] is True
        assert listed["domain"] == "org-a"
        direct = farm("operator", "token", "--db", db, env=env)
        assert len(direct) >= 40 and direct != token
    finally:
        server.terminate()
        server.wait(10)


def test_serve_with_a_ledger_needs_its_chain_id(tmp_path: Path) -> None:
    """Operator transactions are signed for one chain: without --ledger-chain (or with
    something that is not a chain id) ``farm serve --ledger`` stops before serving."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FARM_COORDINATOR_LEDGER_CHAIN", None)
    key = tmp_path / "k.key"
    save_key(generate_key(), key)
    base = [
        *FARM, "serve", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--port", str(free_port()),
        "--staging", str(tmp_path / "st"), "--ledger", "http://127.0.0.1:9",
        "--coordinator-key", str(key),
    ]  # fmt: skip
    for extra, message in (
        ([], "--ledger needs --ledger-chain"),
        (["--ledger-chain", "two words"], "is not a chain id"),
        (["--ledger-chain", "farm-x"], "--ledger needs --genesis"),
        (["--ledger-chain", "farm-x", "--genesis", str(tmp_path / "no.json")], "no genesis"),
    ):
        proc = subprocess.run(
            [*base, *extra], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert proc.returncode != 0
        assert message in proc.stderr + proc.stdout


def test_the_coordinator_takes_no_operator_key_and_the_operator_signs_only_with_theirs(
    tmp_path: Path,
) -> None:
    """``farm serve`` has no --operator-key (ADR 34); ``farm operator approve --key`` and
    ``farm revoke --key`` refuse a key the genesis does not list, before any request."""
    from ledger.genesis import Genesis, save_genesis
    from tests.support.ledger_fixtures import validator_info

    env = {**os.environ, "COLUMNS": "200"}
    key, operator = tmp_path / "k.key", generate_key()
    save_key(generate_key(), key)
    proc = subprocess.run(
        [*FARM, "serve", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--operator-key", str(key)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "No such option" in proc.stderr
    genesis = tmp_path / "genesis.json"
    save_genesis(
        Genesis(
            chain_id="farm-cli", genesis_time="2026-01-01T00:00:00Z",
            validators=(validator_info(0),), operators=(operator.public_dict(),),
        ),
        genesis,
    )  # fmt: skip
    unreachable = ["--coordinator", "http://127.0.0.1:9", "--operator-token", "t"]
    for argv in (
        ["operator", "approve", "ab" * 32, "--domain", "org-a"],
        ["revoke", "ab" * 32, "--reason", "r"],
    ):
        proc = subprocess.run(
            [*FARM, *argv, *unreachable, "--key", str(key), "--genesis", str(genesis)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "is not an operator of ledger 'farm-cli'" in proc.stderr
    proc = subprocess.run(
        [*FARM, "revoke", "ab" * 32, "--reason", "r", *unreachable],
        capture_output=True, text=True, env={k: v for k, v in env.items()
                                             if k not in ("FARM_OPERATOR_KEY", "FARM_GENESIS")},
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "give --key OPERATOR_KEY and --genesis GENESIS" in proc.stderr
