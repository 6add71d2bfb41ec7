"""The builder image's config per architecture (deploy/builder-image/docker_archive.py).

The amd64 config must stay byte for byte what it was before arm64 existed: recipes pin
the amd64 image ID, which is the sha256 of this config. The pinned ID below is the one
``build.sh`` printed for the layer whose sha256 is ``AMD64_LAYER``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[3] / "deploy" / "builder-image" / "docker_archive.py"
EPOCH = int((SCRIPT.parent / "SOURCE_DATE_EPOCH").read_text())
AMD64_LAYER = "e9fdfd0f4009a75e0f36a82491722d32864471800ca37cf4a546f99287e31a67"
AMD64_ID = "56c84b146d954159e963e1b0baa06f073ad5a6662c07d339470cf7ae1d671979"


@pytest.fixture(scope="module")
def docker_archive() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_archive", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_id(module: ModuleType, arch: str) -> tuple[str, dict[str, object]]:
    raw: bytes = module.canonical_json(module.image_config(AMD64_LAYER, EPOCH, arch=arch))
    return hashlib.sha256(raw).hexdigest(), json.loads(raw)


def test_amd64_config_keeps_the_pinned_id(docker_archive: ModuleType) -> None:
    digest, config = config_id(docker_archive, "amd64")
    assert digest == AMD64_ID
    assert config["architecture"] == "amd64"
    assert "variant" not in config


def test_arm64_config_names_its_platform(docker_archive: ModuleType) -> None:
    digest, config = config_id(docker_archive, "arm64")
    assert digest != AMD64_ID
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    inner = config["config"]
    assert isinstance(inner, dict)
    assert inner["Labels"] == {"org.opencontainers.image.title": "farm-builder:bookworm-arm64"}
    assert inner["User"] == "1000:1000"


def test_cli_writes_the_arm64_id(docker_archive: ModuleType, tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    layer.write_bytes(b"not really a tar, only hashed")
    id_file = tmp_path / "id"
    argv = ["--layer", str(layer), "--epoch", str(EPOCH), "--tag", "t", "--id-file"]
    assert docker_archive.main([*argv, str(id_file), "--arch", "arm64"]) == 0
    arm64 = id_file.read_text().strip()
    assert docker_archive.main([*argv, str(id_file)]) == 0
    assert id_file.read_text().strip() != arm64
    with pytest.raises(SystemExit):
        docker_archive.main([*argv, str(id_file), "--arch", "sparc"])
