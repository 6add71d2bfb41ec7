"""The profile ``farm up --keep-running`` leaves: defaults for every ``farm`` command.

A flag beats the environment, which beats the profile; a malformed profile stops the
command with the file and line. The precedence is checked through the real ``farm``
entry point against a loopback HTTP server that records what it was asked.
"""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.cli.profile import (
    ProfileError,
    apply_profile,
    load_profile,
    parse_profile,
    profile_path,
    write_profile,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("# a comment\n\n", {}),
        (
            "FARM_COORDINATOR_URL=http://127.0.0.1:1\n",
            {"FARM_COORDINATOR_URL": "http://127.0.0.1:1"},
        ),
        ("export FARM_OPERATOR_TOKEN=abc", {"FARM_OPERATOR_TOKEN": "abc"}),
        ("FARM_GENESIS='/a dir/genesis.json'", {"FARM_GENESIS": "/a dir/genesis.json"}),
        ('FARM_GENESIS="/x"\nFARM_GENESIS=/y', {"FARM_GENESIS": "/y"}),
        ("FARM_EMPTY=", {"FARM_EMPTY": ""}),
    ],
)
def test_a_profile_reads_as_the_shell_would(text: str, expected: dict[str, str]) -> None:
    assert parse_profile(text, "p") == expected


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("FARM_A=1\nnonsense\n", 2, "expected FARM_NAME=VALUE"),
        ("PATH=/evil", 1, "expected FARM_NAME=VALUE"),
        ("# c\nFARM_A='unclosed", 2, "No closing quotation"),
        ("FARM_A=two words", 1, "quote a value with spaces"),
        ("farm_a=1", 1, "expected FARM_NAME=VALUE"),
    ],
)
def test_a_malformed_profile_is_refused_naming_its_line(text: str, line: int, says: str) -> None:
    with pytest.raises(ProfileError, match=f"^p:{line}: .*{says}"):
        parse_profile(text, "p")


def test_a_written_profile_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "env"
    values = {"FARM_OPERATOR_TOKEN": "s3cret", "FARM_GENESIS": "/a b/'q'.json"}
    write_profile(path, values, "first line\nsecond line")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_profile(path) == values
    assert path.read_text().startswith("# first line\n# second line\n")


def test_the_environment_beats_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "env"
    write_profile(path, {"FARM_A": "profile", "FARM_B": "profile"}, "")
    environ = {"FARM_PROFILE": str(path), "FARM_A": "environment"}
    apply_profile(environ)
    assert environ == {"FARM_PROFILE": str(path), "FARM_A": "environment", "FARM_B": "profile"}


def test_no_profile_is_no_defaults(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path)}
    assert profile_path(environ) == tmp_path / ".farm" / "local" / "env"
    apply_profile(environ)
    assert environ == {"HOME": str(tmp_path)}


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []  # noqa: RUF012 - one test's log

    def _answer(self, body: object) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer([])

    def do_POST(self) -> None:
        self._answer({})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def coordinator() -> Iterator[str]:
    """A loopback HTTP server that answers every request and records it."""
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _farm(home: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *argv],
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("flag", "environment", "winner"),
    [(False, False, "profile"), (False, True, "environment"), (True, True, "flag")],
)
def test_a_flag_beats_the_environment_which_beats_the_profile(
    tmp_path: Path, coordinator: str, flag: bool, environment: bool, winner: str
) -> None:
    (tmp_path / ".farm" / "local").mkdir(parents=True)
    write_profile(
        tmp_path / ".farm" / "local" / "env",
        {"FARM_COORDINATOR_URL": f"{coordinator}/profile", "FARM_OPERATOR_TOKEN": "profile"},
        "",
    )
    env = (
        {"FARM_COORDINATOR_URL": f"{coordinator}/environment", "FARM_OPERATOR_TOKEN": "environment"}
        if environment
        else {}
    )
    flags = ["--coordinator", f"{coordinator}/flag", "--operator-token", "flag"] if flag else []
    listed = _farm(tmp_path, "builders", *flags[:2], **env)
    assert listed.returncode == 0, listed.stderr
    approved = _farm(tmp_path, "operator", "approve", "b1", "--domain", "d1", *flags, **env)
    assert approved.returncode == 0, approved.stderr
    assert _Recorder.seen == [
        ("GET", f"/{winner}/v1/builders", None),
        ("POST", f"/{winner}/v1/builders/b1/approve", f"Bearer {winner}"),
    ]


def test_a_malformed_profile_stops_the_command_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.env"
    path.write_text("# farm up\nFARM_COORDINATOR_URL=http://127.0.0.1:9\nFARM_OPERATOR_TOKEN\n")
    proc = _farm(tmp_path, "builders", FARM_PROFILE=str(path))
    assert proc.returncode == 1
    assert f"error: {path}:3: expected FARM_NAME=VALUE" in proc.stderr
    assert "Traceback" not in proc.stderr
