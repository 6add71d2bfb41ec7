"""``farm tls`` and ``farm serve --tls-cert``: the coordinator over HTTPS, as real
processes. A client given the farm CA gets in; one without it is refused; the operator's
token never crosses the wire in clear."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from farm.ports import free_port

FARM = [sys.executable, "-m", "farm.cli"]


def _farm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FARM, *args], check=False, capture_output=True, text=True, env=env, timeout=60
    )


class _Tap:
    """A TCP relay on loopback that keeps every byte the client sent."""

    def __init__(self, target: int) -> None:
        self.seen = bytearray()
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def https_coordinator(tmp_path: Path) -> Iterator[tuple[str, Path, str, dict[str, str]]]:
    """A coordinator serving HTTPS on loopback with a certificate of a new farm CA:
    (its URL, the CA certificate, an operator token, the environment)."""
    env = {**os.environ, "COLUMNS": "200"}
    ca_dir = tmp_path / "ca"
    made = _farm("tls", "init", str(ca_dir), env=env)
    assert made.returncode == 0, made.stderr
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    issued = _farm(
        "tls", "issue", str(ca_dir), "127.0.0.1", "localhost", "-o", str(tmp_path / "coord"),
        env=env,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    again = _farm("tls", "issue", str(ca_dir), "x", "-o", str(tmp_path / "coord"), env=env)
    assert again.returncode != 0 and "exists" in again.stderr  # nothing stored is overwritten
    db = f"sqlite:///{tmp_path / 'c.db'}"
    operator = _farm("operator", "new-operator-token", "--db", db, env=env)
    assert operator.returncode == 0, operator.stderr
    port = free_port()
    server = subprocess.Popen(
        [*FARM, "serve", "--db", db, "--port", str(port), "--staging", str(tmp_path / "st"),
         "--log-level", "warning", "--tls-cert", str(tmp_path / "coord.pem"),
         "--tls-key", str(tmp_path / "coord.key")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(ca_dir / "ca.pem"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", verify=ctx, timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "farm serve --tls-cert did not come up"
                time.sleep(0.2)
        yield url, ca_dir / "ca.pem", operator.stdout.strip(), env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_clients_with_the_farm_ca_get_in_others_are_refused(
    https_coordinator: tuple[str, Path, str, dict[str, str]],
) -> None:
    url, ca, token, env = https_coordinator
    ctx = ssl.create_default_context(cafile=str(ca))
    assert httpx.get(f"{url}/healthz", verify=ctx, timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", timeout=5)  # the system's CAs do not vouch for it
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url.replace("https", "http") + "/healthz", timeout=5)  # no plain HTTP
    # The operator's command line trusts the CA it is given (SSL_CERT_FILE), no other.
    args = ("operator", "token", "--coordinator", url, "--operator-token", token)
    ok = _farm(*args, env={**env, "SSL_CERT_FILE": str(ca)})
    assert ok.returncode == 0, ok.stderr
    refused = _farm(*args, env=env)
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate" in refused.stderr.lower()
    assert "Traceback" not in refused.stderr


def test_the_operator_token_is_not_seen_on_the_wire(
    https_coordinator: tuple[str, Path, str, dict[str, str]],
) -> None:
    url, ca, token, env = https_coordinator
    tap = _Tap(int(url.rsplit(":", 1)[1]))
    try:
        tapped = f"https://127.0.0.1:{tap.port}"
        args = ("operator", "token", "--coordinator", tapped, "--operator-token", token)
        made = _farm(*args, env={**env, "SSL_CERT_FILE": str(ca)})
        assert made.returncode == 0, made.stderr
        enrollment = made.stdout.strip()
        assert len(tap.seen) > 500, "the request did not go through the tap"
        assert token.encode() not in tap.seen
        assert b"Authorization" not in tap.seen and b"POST" not in tap.seen
        assert enrollment.encode() not in tap.seen
    finally:
        tap.close()
