"""A running farm of hosts (``deploy/cluster``) as the cluster tests use it.

:class:`FarmHosts` is what ``tests/cluster/conftest.py``'s ``farm_hosts`` fixture yields:
the compose project and cluster directory, the coordinator's and distribution node's
URLs on 127.0.0.1, the operator token and each builder host's builder id, with the
helpers every cluster test needs: run a command in a service's container, wait until
services are healthy, and the closing check (all four validators hold the same
checkpoint, co-signed by 2f+1 genesis validators: :func:`same_checkpoint`).
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from farm.coordinator.client import CoordinatorClient
from farm.hosts.compose import Compose
from farm.hosts.init import ClusterDir, load_cluster
from farm.tls import client_context
from ledger.genesis import load_genesis
from ledger.verify import Checkpoint
from tests.support.cluster_ledger import ClusterValidators
from tests.support.ledger_checks import all_identical
from tests.support.ledger_testnet import wait_for

__all__ = ["FarmHosts", "same_checkpoint"]


@dataclass
class FarmHosts:
    """One running farm of hosts (see the module docstring)."""

    project: str
    dir: Path
    coordinator_url: str
    dist_url: str
    operator_token: str
    builders: dict[str, str] = field(default_factory=dict)
    """Builder host name → its builder id."""

    @property
    def compose(self) -> Compose:
        """docker-compose for this project (with the override of added builder hosts)."""
        d = ClusterDir(self.dir)
        return Compose.of(d, load_cluster(d.root))

    @property
    def ca_cert(self) -> Path:
        """The farm CA's certificate: the coordinator, dist and Redis are TLS only."""
        return ClusterDir(self.dir).ca_cert

    @property
    def verify(self) -> ssl.SSLContext:
        """httpx's ``verify`` for the published HTTPS ports: the farm CA alone."""
        return client_context(self.ca_cert)

    def redis_cli(
        self, *args: str, service: str = "redis", login: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``redis-cli ARGS`` against Redis over TLS, from ``service``'s container, logged
        in with that host's own broker credential (Redis: its admin user; a builder host:
        its own user, named after it), or with none (``login=False``)."""
        if not login:
            user = ""
        elif service == "redis":
            user = "admin"
            password = "/run/farm-secrets/admin-password"
        else:
            user = service
            password = "/run/farm-secrets/redis-password"
        script = (
            (f'REDISCLI_AUTH="$(cat {password})" ' if user else "")
            + "exec redis-cli --no-auth-warning --tls --cacert /etc/farm/ca.pem -h redis "
            + "-p 6379 "
            + (f"--user {user} " if user else "")
            + '"$@"'
        )
        return self.exec(service, "sh", "-c", script, "sh", *args)

    def container(self, service: str) -> str:
        """``service``'s container id."""
        found = self.compose.container(service)
        assert found is not None, f"{self.project}: no container for {service}"
        return found

    def exec(
        self, service: str, *cmd: str, user: str = "1000:1000", timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in ``service``'s container (``docker exec``); never raises on exit."""
        return subprocess.run(
            ["docker", "exec", "--user", user, self.container(service), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def state(self, service: str) -> str:
        """``service``'s container state (running, exited, paused ...), or 'missing'."""
        return str(self.compose.states().get(service, {}).get("Status", "missing"))

    def health(self, service: str) -> str:
        """``service``'s health (or its state when it has no health check)."""
        state = self.compose.states().get(service, {})
        return str((state.get("Health") or {}).get("Status") or state.get("Status", "missing"))

    def http(self) -> httpx.Client:
        """A client for the coordinator's published port."""
        return httpx.Client(base_url=self.coordinator_url, timeout=30, verify=self.verify)

    def client(self) -> CoordinatorClient:
        """The operator's client of the coordinator (HTTPS, trusting the farm CA)."""
        return CoordinatorClient(self.http(), operator_token=self.operator_token)

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` from the coordinator; its JSON (asserting 200)."""
        with self.http() as client:
            response = client.get(path, params=params)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()


def same_checkpoint(hosts: FarmHosts, size: int | None = None) -> Checkpoint:
    """All four validators serve the same checkpoint (of ``size``, default: the size v0
    serves now), each note co-signed by 2f+1 of the genesis validators."""
    vals = ClusterValidators(hosts.project, hosts.dir)
    try:
        g = load_genesis(vals.genesis)
        if size is None:
            status = wait_for("v0's status", lambda: vals.status(0), 60)
            size = int(status["size"])
        return all_identical(vals, g, size)
    finally:
        vals.close()
