"""The builder base image: build it reproducibly, and check the pinned one is present.

Every hermetic build runs in the image a recipe pins as ``image: sha256:<64 hex>``, the
Docker image ID, which is the sha256 of the image's config JSON. The image is made
without a registry by ``deploy/builder-image/build.sh`` (mmdebstrap with a fixed
``SOURCE_DATE_EPOCH``, then a hand-written docker-archive), so the same Debian package
versions give the same ID on every host.

Invariants:

- an image is accepted only by its exact full ID; tags and short IDs are never trusted;
- :func:`require_image` fails closed: absent, unreadable, or a different ID all raise
  :class:`~farm.errors.ImageError`.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from farm.errors import ImageError

__all__ = [
    "BUILD_SCRIPT",
    "build_builder_image",
    "image_present",
    "require_image",
]

logger = logging.getLogger(__name__)

#: The script that builds the image; in a source checkout it sits beside the packages.
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "builder-image" / "build.sh"

_SCRIPT_HINT = "deploy/builder-image/build.sh"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_STDERR_TAIL = 20


def _check_digest(digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"not an image digest (want sha256:<64 lowercase hex>): {digest!r}")


def build_builder_image(
    *,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    out: Path | None = None,
    script: Path | None = None,
) -> str:
    """Build (or find already built) the builder base image and return its digest.

    Runs ``deploy/builder-image/build.sh`` (as root; it installs mmdebstrap if needed,
    downloads from Debian's mirror and ``docker load``s the result), passing each line it
    prints on stderr to ``log`` as it comes (default: this module's logger at INFO).
    With ``force`` the image is rebuilt even if the last build's image is present.
    ``out`` is the folder for the rootfs tarball and package manifest (the script's
    default is ``$FARM_CACHE/builder-image``); ``script`` overrides the script's path.

    Returns the image ID, ``sha256:<64 hex>``, as the script printed it.

    Raises:
        ImageError: the script is missing, cannot be started, exits non-zero (the message
            carries the last lines of its stderr), or does not print a digest last.
    """
    path = script if script is not None else BUILD_SCRIPT
    if not path.is_file():
        raise ImageError(f"builder image script not found: {path}")
    emit = log if log is not None else logger.info
    argv = [str(path)]
    if out is not None:
        argv += ["--out", str(out)]
    if force:
        argv.append("--force")

    tail: deque[str] = deque(maxlen=_STDERR_TAIL)
    with tempfile.TemporaryFile() as stdout:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ImageError(f"cannot run {path}: {exc}") from exc
        assert proc.stderr is not None  # set by stderr=PIPE
        with proc:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                tail.append(line)
                emit(line)
        stdout.seek(0)
        printed = stdout.read().decode("utf-8", "replace").split()

    if proc.returncode != 0:
        detail = "; ".join(line for line in tail if line.strip())[-2000:]
        raise ImageError(f"{path} exited with status {proc.returncode}: {detail}")
    digest = printed[-1] if printed else ""
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"{path} did not print an image digest last (got {digest!r})")
    return digest


def _get_image_id(client: docker.DockerClient, digest: str) -> str | None:
    """The full ID of the image ``digest`` names, or None when Docker has no such image."""
    try:
        image = client.images.get(digest)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot look up image {digest} in Docker: {exc}") from exc
    image_id = image.id
    return image_id if isinstance(image_id, str) else None


def image_present(client: docker.DockerClient, digest: str) -> bool:
    """Whether Docker holds the image whose full ID is exactly ``digest``.

    Returns False when no image has that ID (also when Docker resolves the reference to
    an image with another ID). Never matches by tag or ID prefix.

    Raises:
        ImageError: ``digest`` is not ``sha256:<64 hex>``, or Docker cannot be asked.
    """
    _check_digest(digest)
    return _get_image_id(client, digest) == digest


def require_image(client: docker.DockerClient, digest: str) -> None:
    """Return only if Docker holds the image whose full ID is exactly ``digest``.

    Raises:
        ImageError: ``digest`` is malformed, Docker cannot be asked, the image is absent,
            or the image Docker found has a different ID; the message says to run
            ``deploy/builder-image/build.sh`` (which prints the digest it made).
    """
    _check_digest(digest)
    found = _get_image_id(client, digest)
    if found is None:
        raise ImageError(
            f"builder image {digest} is not present; build it with {_SCRIPT_HINT} "
            "(it prints the digest it made)"
        )
    if found != digest:
        raise ImageError(
            f"builder image {digest} resolves to {found}; rebuild with {_SCRIPT_HINT} --force "
            "and compare its package manifest"
        )
