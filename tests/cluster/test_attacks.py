"""Attacks on the wire of a farm of hosts (issue 14 items 2 and 3; ADR 43).

Against the session's farm of hosts (``farm_hosts``), what a host on one of the farm's
networks, or a process on the operator's machine, can no longer do:

1. talk plain HTTP to the coordinator or the distribution node: they serve TLS only, so
   the request gets no HTTP answer at all; a client that does not trust the farm CA
   refuses their certificates;
2. talk to Redis in clear: it has no plain port, and its certificate is checked against
   the farm CA;
3. read a bearer token or the broker's traffic off the wire: the traffic on the
   coordinator's port 8600 while the operator's token is used from the client host, and
   on Redis's port 6379 while the builders beat, is captured in each host's own network
   namespace (``tcpdump``), and neither the token nor a Redis key name is in it;
4. with a builder host's own broker credential (what a compromised builder host holds):
   wipe the broker, list or read its keys, read, fill or steal from another builder's
   queue, write another builder's result, Celery state or heartbeat, drop the
   coordinator's marker: each refused by Redis (NOPERM); without a credential, only
   PING; and a build is still verified by the three builders afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from farm.coordinator.celery_dispatch import MARKER_KEY
from farm.queue import keyspace_of
from farm.task import queue_for
from tests.support.farm_builds import Builds
from tests.support.hosts import FarmHosts
from tests.support.netfault import container_pid

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker]

# From a host's container: fetch a URL, print the status or the error's class and text.
FETCH = """
import ssl, sys, urllib.request
url, ca = sys.argv[1], sys.argv[2]
# cafile given: trust it alone (SSL_CERT_FILE in the environment would win otherwise)
ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + sys.argv[3]})
try:
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        print("status", r.status)
except urllib.error.HTTPError as e:
    print("status", e.code)
except Exception as e:
    print("error", type(e).__name__, e)
"""


SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


def _fetch(
    hosts: FarmHosts, service: str, url: str, *, ca: str = SYSTEM_CAS, token: str = "x"
) -> str:
    """What ``service``'s container gets for ``url``, trusting ``ca`` alone (default:
    the image's system CAs, Debian's ``ca-certificates``)."""
    out = hosts.exec(service, "/opt/farm/bin/python", "-c", FETCH, url, ca, token, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_coordinator_and_dist_speak_no_plain_http_and_prove_their_names(
    farm_hosts: FarmHosts,
) -> None:
    hosts = farm_hosts
    for service, port in (("coordinator", 8600), ("dist", 8700)):
        # A host on the public network (the client) asking in clear: no HTTP answer.
        plain = _fetch(hosts, "client", f"http://{service}:{port}/healthz")
        assert plain.startswith("error"), plain
        # Over TLS, with the image's own CAs and not the farm's: the certificate is refused.
        stranger = _fetch(hosts, "client", f"https://{service}:{port}/healthz")
        assert "CERTIFICATE_VERIFY_FAILED" in stranger, stranger
        # With the farm CA: the service answers.
        trusted = _fetch(
            hosts, "client", f"https://{service}:{port}/healthz", ca="/etc/farm/ca.pem"
        )
        assert trusted == "status 200", trusted
    # The same from the operator's machine, through the published ports.
    for url in (hosts.coordinator_url, hosts.dist_url):
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", timeout=10)  # certifi's CAs, not the farm's
        assert httpx.get(f"{url}/healthz", timeout=10, verify=hosts.verify).status_code == 200


def test_redis_has_no_plain_port_and_proves_its_name(farm_hosts: FarmHosts) -> None:
    hosts = farm_hosts
    # From a builder host (on the broker's network): in clear, Redis does not answer.
    plain = hosts.exec("b1", "redis-cli", "-h", "redis", "-p", "6379", "ping", timeout=30)
    assert "PONG" not in plain.stdout, plain.stdout
    # Over TLS trusting the system's CAs only: the certificate is refused.
    stranger = hosts.exec(
        "b1", "redis-cli", "--tls", "--cacert", SYSTEM_CAS,
        "-h", "redis", "-p", "6379", "ping", timeout=30,
    )  # fmt: skip
    assert "PONG" not in stranger.stdout, stranger.stdout
    assert "certificate verify failed" in (stranger.stdout + stranger.stderr).lower()
    trusted = hosts.redis_cli("ping", service="b1")
    assert trusted.stdout.strip() == "PONG", trusted.stdout + trusted.stderr


@contextmanager
def _captured(hosts: FarmHosts, service: str, port: int, into: Path) -> Iterator[Path]:
    """Every packet to or from ``port`` in ``service``'s network namespace, written to
    ``into`` (pcap) while the block runs."""
    pid = container_pid(hosts.container(service))
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", "tcpdump", "-i", "any", "-s", "0", "-U", "-w",
         str(into), "tcp", "port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # tcpdump listening
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield into
        time.sleep(1.0)  # the last packets written
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _packets(pcap: Path) -> int:
    out = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-nn"], capture_output=True, text=True, check=True, timeout=60
    )
    return len(out.stdout.splitlines())


def _captures_nothing_readable(
    hosts: FarmHosts,
    service: str,
    port: int,
    tmp: Path,
    act: Callable[[], None],
    secrets: list[bytes],
) -> int:
    with _captured(hosts, service, port, tmp / f"{service}.pcap") as pcap:
        act()
    raw = pcap.read_bytes()
    seen = _packets(pcap)
    assert seen > 10, f"only {seen} packets on {service}:{port}: the capture saw nothing"
    for secret in secrets:
        assert secret not in raw, f"{secret[:24]!r}… crossed {service}:{port} in clear"
    return seen


def test_tokens_and_broker_traffic_never_cross_the_wire_in_clear(
    farm_hosts: FarmHosts, tmp_path: Path
) -> None:
    hosts = farm_hosts
    token = hosts.operator_token

    def use_the_token() -> None:
        # From the client host (the public network) and from the operator's machine.
        for _ in range(3):
            got = _fetch(
                hosts, "client", "https://coordinator:8600/v1/builders",
                ca="/etc/farm/ca.pem", token=token,
            )  # fmt: skip
            assert got == "status 200", got
            assert len(hosts.get("/v1/builders")) >= 3

    seen = _captures_nothing_readable(
        hosts, "coordinator", 8600, tmp_path, use_the_token, [token.encode(), b"/v1/builders"]
    )
    print(f"[attacks] {seen} packets on coordinator:8600, no token in clear")

    # Builders beat every 2 s (SET farm:builders:<id>) and poll their queues.
    seen = _captures_nothing_readable(
        hosts, "redis", 6379, tmp_path, lambda: time.sleep(6),
        [b"farm:builders:", b"farm.builder", *(b.encode() for b in hosts.builders.values())],
    )  # fmt: skip
    print(f"[attacks] {seen} packets on redis:6379, no key or builder id in clear")


def test_a_builder_host_reaches_only_its_own_broker_keys(farm_hosts: FarmHosts) -> None:
    hosts = farm_hosts
    me, other = hosts.builders["b1"], hosts.builders["b2"]
    theirs = keyspace_of(other)
    attempts = {
        "wipe the broker": ("FLUSHALL",),
        "wipe the database": ("FLUSHDB",),
        "list every key": ("KEYS", "*"),
        "read the configuration": ("CONFIG", "GET", "*"),
        "grant itself everything": ("ACL", "SETUSER", "b1", "~*", "+@all"),
        "read b2's queue": ("LRANGE", theirs + queue_for(other), "0", "-1"),
        "push a task to b2": ("LPUSH", theirs + queue_for(other), "{}"),
        "steal b2's unacknowledged tasks": ("HGETALL", theirs + "unacked"),
        "write b2's result": ("SET", f"farm:result:attack:{other}", "{}"),
        "mark b2's attempt failed": (
            "SET", f"{theirs}celery-task-meta-attack", '{"status": "FAILURE"}',
        ),
        "fake b2's heartbeat": ("SET", f"farm:builders:{other}", "{}"),
        "make the coordinator resend everything": ("DEL", MARKER_KEY),
        "a queue outside every keyspace": ("LPUSH", queue_for(other), "{}"),
    }  # fmt: skip
    for what, command in attempts.items():
        out = hosts.redis_cli(*command, service="b1")
        assert "NOPERM" in out.stdout + out.stderr, (what, out.stdout, out.stderr)
    own = hosts.redis_cli("LLEN", keyspace_of(me) + queue_for(me), service="b1")
    assert own.stdout.strip().isdigit(), own.stdout + own.stderr
    # No credential at all: PING, and nothing else.
    assert hosts.redis_cli("PING", service="b1", login=False).stdout.strip() == "PONG"
    anon = hosts.redis_cli("GET", MARKER_KEY, service="b1", login=False)
    assert "NOPERM" in anon.stdout + anon.stderr, anon.stdout
    # A wrong password for b2's user: refused.
    wrong = hosts.exec(
        "b1", "redis-cli", "--no-auth-warning", "--tls", "--cacert", "/etc/farm/ca.pem",
        "-h", "redis", "--user", "b2", "--pass", "guess", "GET", MARKER_KEY,
    )  # fmt: skip
    assert "WRONGPASS" in wrong.stdout + wrong.stderr, wrong.stdout + wrong.stderr
    # Nothing of a builder lives outside its keyspace: no shared queue or unacked hash.
    shared = hosts.redis_cli("--scan", "--pattern", "unacked*")
    assert shared.stdout.strip() == "", shared.stdout
    assert hosts.redis_cli("EXISTS", MARKER_KEY).stdout.strip() == "1"

    # And the farm still builds: the three builders verify a recipe under these users.
    builds = Builds(hosts)
    try:
        build = builds.decided(builds.request("idna/3.10"), timeout=900)
    finally:
        builds.close()
    assert build["status"] == "verified", build
    assert set(build["verdict"]["agreed"]) == set(hosts.builders.values())
