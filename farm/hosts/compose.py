"""``docker-compose`` for one cluster: the command line, its errors, the services' states.

Every call runs Debian's ``docker-compose`` (1.29) as ``docker-compose -p PROJECT
-f deploy/cluster/docker-compose.yml [-f DIR/compose.builders.yml] --env-file
DIR/compose.env ARGS``, so the CLI, the tests (pytest-docker) and an operator typing it
by hand drive the same project. A failing call raises :class:`ClusterCommandError` with
the command's last lines of output; a missing program says which command installs it,
and the images the cluster runs from are built when missing (:func:`ensure_host_image`,
:func:`ensure_builder_archive`), their progress shown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import ConfigError, FarmError
from farm.hosts.init import ClusterDir, Manifest

__all__ = [
    "COMPOSE_FILE",
    "HOST_IMAGE",
    "ClusterCommandError",
    "Compose",
    "build_host_image",
    "ensure_builder_archive",
    "ensure_host_image",
]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "cluster" / "docker-compose.yml"
#: The host image's tag: ``$FARM_HOST_IMAGE`` if set (deploy/host-image/build.sh tags it
#: so and docker-compose.yml runs it), so that two checkouts on one machine keep theirs.
HOST_IMAGE = os.environ.get("FARM_HOST_IMAGE") or "farm-host:bookworm"
BUILDER_CACHE = Path("/var/cache/farm/builder-image")
BUILDER_ID_FILE = BUILDER_CACHE / "farm-builder-bookworm-amd64.image-id"
#: Where the builder image's docker-archive is kept (what each builder host loads).
BUILDER_ARCHIVE = BUILDER_CACHE / "farm-builder-bookworm-amd64.docker.tar"

Say = Callable[[str], None]


class ClusterCommandError(FarmError):
    """docker-compose or docker failed, or a host did not come up in time."""


def _run(argv: Sequence[str], *, timeout: float, what: str, capture: bool = True) -> str:
    """Run ``argv``; its stdout (empty when not captured), or ClusterCommandError."""
    try:
        proc = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{argv[0]} is not installed (bash deploy/setup.sh installs it)"
        ) from None
    except subprocess.TimeoutExpired:
        raise ClusterCommandError(f"{what} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        lines = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()
        detail = ": " + "\n".join(lines[-8:]) if lines else " (its output is above)"
        raise ClusterCommandError(f"{what} failed (exit {proc.returncode}){detail}")
    return proc.stdout or ""


@dataclass(frozen=True)
class Compose:
    """``docker-compose`` for one project of one cluster directory."""

    project: str
    files: tuple[Path, ...]
    env_file: Path

    @classmethod
    def of(cls, d: ClusterDir, m: Manifest) -> Compose:
        """The project of cluster ``d``, with its override of added builder hosts."""
        if not COMPOSE_FILE.exists():
            raise ConfigError(f"{COMPOSE_FILE}: missing; run farm cluster from a farm checkout")
        files = [COMPOSE_FILE]
        if d.builders_override.exists():
            files.append(d.builders_override)
        return cls(m.project, tuple(files), d.env_file)

    def argv(self, *args: str) -> list[str]:
        """The whole docker-compose command line for ``args``."""
        argv = ["docker-compose", "-p", self.project]
        for f in self.files:
            argv += ["-f", str(f)]
        return [*argv, "--env-file", str(self.env_file), *args]

    def run(self, *args: str, timeout: float = 600, capture: bool = True) -> str:
        """docker-compose ``args``: its stdout, or ClusterCommandError.

        ``capture=False`` lets its progress through to the terminal."""
        return _run(
            self.argv(*args),
            timeout=timeout,
            what=f"docker-compose {' '.join(args[:3])}",
            capture=capture,
        )

    def exec(self, service: str, *cmd: str, user: str = "1000:1000", timeout: float = 120) -> str:
        """Run ``cmd`` in ``service``'s container as ``user`` (no TTY); its stdout."""
        return self.run("exec", "-T", "--user", user, service, *cmd, timeout=timeout)

    def container(self, service: str) -> str | None:
        """The id of ``service``'s container, if it has one."""
        out = _run(
            ["docker", "ps", "-aq", "--no-trunc",
             "--filter", f"label=com.docker.compose.project={self.project}",
             "--filter", f"label=com.docker.compose.service={service}"],
            timeout=60, what="docker ps",
        ).split()  # fmt: skip
        return out[0] if out else None

    def states(self) -> dict[str, dict[str, Any]]:
        """Service name → its container's ``State`` (``Status``, ``Health`` ...)."""
        ids = _run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"],
            timeout=60,
            what="docker ps",
        ).split()
        if not ids:
            return {}
        found = json.loads(_run(["docker", "inspect", *ids], timeout=60, what="docker inspect"))
        return {
            c["Config"]["Labels"].get("com.docker.compose.service", c["Name"]): c["State"]
            for c in found
        }


def _present(ref: str) -> bool:
    proc = subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, check=False, timeout=60
    )
    return proc.returncode == 0


def _script(path: Path, say: Say) -> str:
    """Run a build script, its progress on the terminal; the last stdout line (an ID)."""
    say(f"running {path.relative_to(REPO)} (its progress follows)")
    proc = subprocess.run(["bash", str(path)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterCommandError(f"{path} failed (exit {proc.returncode})")
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _need_docker() -> None:
    for program in ("docker", "docker-compose"):
        if shutil.which(program) is None:
            raise ConfigError(f"{program} is not installed (bash deploy/setup.sh installs it)")


def ensure_host_image(say: Say) -> None:
    """``farm-host:bookworm`` is here, built by ``deploy/host-image/build.sh`` if not."""
    _need_docker()
    if not _present(HOST_IMAGE):
        say(f"{HOST_IMAGE} is not here; building it (sudo bash deploy/host-image/build.sh)")
        build_host_image(say)


def build_host_image(say: Say) -> None:
    """Build ``farm-host:bookworm`` from this checkout now (about a minute warm): what the
    cluster tests run, so that they test the code they were run from."""
    _need_docker()
    _script(REPO / "deploy" / "host-image" / "build.sh", say)


def ensure_builder_archive(say: Say) -> tuple[Path, str]:
    """The builder image's docker-archive and the image ID it loads as, made if missing.

    The image is built by ``deploy/builder-image/build.sh`` when this host has none; its
    archive is ``docker save`` of it, which loads with the same ID (each builder host
    checks the ID it loaded against this one).
    """
    _need_docker()
    if not BUILDER_ID_FILE.exists():
        say("the builder image is not here; building it (bash deploy/builder-image/build.sh)")
        _script(REPO / "deploy" / "builder-image" / "build.sh", say)
    image_id = BUILDER_ID_FILE.read_text().strip()
    if not BUILDER_ARCHIVE.exists():
        if not _present(image_id):
            _script(REPO / "deploy" / "builder-image" / "build.sh", say)
        say(f"saving the builder image {image_id[:19]}… to {BUILDER_ARCHIVE}")
        partial = BUILDER_ARCHIVE.with_name(f".{BUILDER_ARCHIVE.name}.partial")
        _run(["docker", "save", "-o", str(partial), image_id], timeout=900, what="docker save")
        partial.replace(BUILDER_ARCHIVE)
    return BUILDER_ARCHIVE, image_id
