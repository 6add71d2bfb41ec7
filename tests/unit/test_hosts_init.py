"""farm.hosts.init: the cluster directory a farm of hosts is made from, made once.

Run as root (as ``farm cluster up`` is): the secrets are given to the image's farm user.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from farm.errors import ConfigError
from farm.hosts.init import (
    SERVICE_UID,
    ClusterDir,
    ClusterStateError,
    init_cluster,
    load_cluster,
)
from farm.keys import load_key
from ledger.genesis import load_genesis

IMAGE_ID = "sha256:" + "ab" * 32
ARCHIVE = Path("/var/cache/farm/builder-image/farm-builder-bookworm-amd64.docker.tar")


def _init(root: Path, **kw: object) -> tuple[object, bool]:
    return init_cluster(root, builder_archive=ARCHIVE, builder_image_id=IMAGE_ID, **kw)  # type: ignore[arg-type]


@pytest.fixture
def made(tmp_path: Path) -> ClusterDir:
    assert os.geteuid() == 0, "these tests run as root, as farm cluster up does"
    _init(tmp_path / "cluster", project="farmunit", coordinator_port=18600, dist_port=18700)
    return ClusterDir(tmp_path / "cluster")


def test_the_genesis_names_every_validator_by_hostname_with_the_operator_and_coordinator(
    made: ClusterDir,
) -> None:
    g = load_genesis(made.genesis)
    assert [(v.name, v.p2p, v.http) for v in g.validators] == [
        (f"v{i}", f"v{i}:26656", f"v{i}:26657") for i in range(4)
    ]
    for v in g.validators:
        key = load_key(made.secrets(v.name) / "validator.key")
        assert key.private.public_key().public_bytes_raw().hex() == v.public_key
    secrets = made.secrets("coordinator")
    assert [k["keyid"] for k in g.operators] == [load_key(made.operator_key).keyid]
    assert [k["keyid"] for k in g.coordinators] == [load_key(secrets / "coordinator.key").keyid]
    assert g.quorum == 3 and g.f == 1
    m = load_cluster(made.root)
    assert m.genesis_hash == g.hash and m.project == "farmunit"
    assert m.builders == ("b1", "b2", "b3")


def test_the_compose_environment_names_the_directory_ports_and_pinned_image(
    made: ClusterDir,
) -> None:
    env = dict(line.split("=", 1) for line in made.env_file.read_text().splitlines())
    assert env["FARM_CLUSTER_DIR"] == str(made.root)
    assert env["FARM_COORDINATOR_PORT"] == "18600" and env["FARM_DIST_PORT"] == "18700"
    assert env["FARM_BUILDER_IMAGE_ID"] == IMAGE_ID
    assert env["FARM_BUILDER_ARCHIVE"] == str(ARCHIVE)
    assert env["FARM_CHAIN_ID"] == load_genesis(made.genesis).chain_id


def test_every_secret_is_0400_in_a_0700_directory_of_the_farm_user(made: ClusterDir) -> None:
    secrets = sorted(p for p in (made.root / "secrets").rglob("*") if p.is_file())
    names = {str(p.relative_to(made.root / "secrets")) for p in secrets}
    assert names == {
        *(f"v{i}/validator.key" for i in range(4)),
        "coordinator/coordinator.key",
        "coordinator/postgres-password",
        "postgres/postgres-password",
        *(f"{s}/tls.{ext}" for s in ("coordinator", "dist", "redis") for ext in ("pem", "key")),
        *(f"{s}/redis-password" for s in ("coordinator", "b1", "b2", "b3")),
        "redis/admin-password",
        "redis/users.acl",
    }
    for p in secrets:
        st = p.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
            0o400, SERVICE_UID, SERVICE_UID,
        ), p  # fmt: skip
    services = ("v0", "v1", "v2", "v3", "coordinator", "postgres", "dist", "redis", "b1", "b2")
    for service in (*services, "b3"):
        st = made.secrets(service).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, SERVICE_UID), service
    assert (made.secrets("postgres") / "postgres-password").read_bytes() == (
        made.secrets("coordinator") / "postgres-password"
    ).read_bytes()
    assert not made.operator_token.exists()  # made by `up`, once the coordinator runs
    # The operator key is the host's CLI's alone, outside every mounted directory: no
    # container (the coordinator's least) ever sees it.
    st = made.operator_key.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o400, os.geteuid())
    assert stat.S_IMODE(made.operator_key.parent.stat().st_mode) == 0o700
    compose = (Path(__file__).parents[2] / "deploy/cluster/docker-compose.yml").read_text()
    assert "/operator" not in compose and "operator.key" not in compose
    assert not list(made.root.parent.glob(".cluster.*")), "the work directory was left"


def test_each_tls_service_has_a_certificate_of_the_farm_ca_naming_its_host(
    made: ClusterDir,
) -> None:
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    assert stat.S_IMODE(made.ca_cert.stat().st_mode) == 0o644
    # The CA key is the operator's alone, beside the operator key: no container mounts it.
    st = made.ca_key.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o400, os.geteuid())
    assert made.ca_key.parent == made.operator_key.parent
    bundle = made.ca_bundle.read_bytes()
    assert bundle.endswith(made.ca_cert.read_bytes()) and bundle.count(b"BEGIN CERTIFICATE") > 1
    env = dict(line.split("=", 1) for line in made.env_file.read_text().splitlines())
    assert env["FARM_CA_BUNDLE"] == str(made.ca_bundle)
    for service in ("coordinator", "dist", "redis"):
        cert = x509.load_pem_x509_certificate(made.tls_cert(service).read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [service, "localhost"]
        key = serialization.load_pem_private_key(made.tls_key(service).read_bytes(), None)
        assert key.public_key() == cert.public_key()


def test_a_second_run_reuses_every_key_and_the_genesis(made: ClusterDir) -> None:
    before = {p: p.read_bytes() for p in made.root.rglob("*") if p.is_file()}
    m, created = _init(made.root, project="other", coordinator_port=1, dist_port=2)
    assert created is False
    after = {p: p.read_bytes() for p in made.root.rglob("*") if p.is_file()}
    assert after == before
    assert m == load_cluster(made.root)


def test_a_directory_holding_something_else_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "genesis.json").write_text("{}")
    with pytest.raises(ClusterStateError, match=r"not a cluster directory .*genesis\.json"):
        _init(root)
    assert sorted(p.name for p in root.iterdir()) == ["genesis.json"]


def test_a_half_made_directory_is_refused_naming_what_is_missing(made: ClusterDir) -> None:
    (made.secrets("v2") / "validator.key").unlink()
    with pytest.raises(ClusterStateError, match=r"half-made .*secrets/v2/validator\.key"):
        _init(made.root)


def test_a_changed_genesis_is_refused(made: ClusterDir) -> None:
    data = json.loads(made.genesis.read_text())
    data["quorum"] = 2
    made.genesis.write_text(json.dumps(data))
    with pytest.raises(ClusterStateError, match="changed since the cluster was made"):
        load_cluster(made.root)


@pytest.mark.parametrize("name", ["B4", "coordinator", "v0", "4b", "b_4", ""])
def test_a_builder_host_name_must_be_a_free_hostname(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="builder host name"):
        _init(tmp_path / "c", builders=("b1", name))
    assert not (tmp_path / "c").exists()


def test_a_bad_image_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not sha256"):
        init_cluster(tmp_path / "c", builder_archive=ARCHIVE, builder_image_id="latest")


def test_the_broker_acl_has_a_user_per_builder_host_that_may_only_ping_until_granted(
    made: ClusterDir,
) -> None:
    acl = made.broker_acl.read_text()
    users = {line.split()[1]: line for line in acl.splitlines()}
    assert sorted(users) == ["admin", "b1", "b2", "b3", "coordinator", "default"]
    for b in ("b1", "b2", "b3"):
        password = (made.secrets(b) / "redis-password").read_text().strip()
        assert password not in acl  # hashed
        assert users[b].endswith("resetkeys resetchannels -@all +ping")
    assert users["coordinator"].endswith("~* &* +@all")
    assert users["default"] == "user default on nopass resetkeys resetchannels -@all +ping"
    # Each password differs: one builder host cannot log in as another.
    passwords = {(made.secrets(s) / "redis-password").read_text() for s in ("b1", "b2", "b3")}
    assert len(passwords) == 3
