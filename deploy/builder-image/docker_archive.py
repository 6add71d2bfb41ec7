#!/usr/bin/env python3
"""Wrap a rootfs tarball into a one-layer docker-archive (the ``docker save`` format).

Used by build.sh instead of ``docker import``, whose image config carries the current
time. Everything written here is a function of the layer bytes, SOURCE_DATE_EPOCH and
the fixed settings below, so the image ID (the sha256 of the config JSON, which is what
``docker load`` assigns) is the same on every host.

Standard library only: it runs under the host's python3, outside farm's virtualenv.

Usage::

    docker_archive.py --layer rootfs.tar --epoch N --tag farm-builder:bookworm \\
        --id-file ID [--arch amd64|arm64] [--archive OUT.tar | --archive -] [--config CONFIG.json]

Writes the archive to --archive ("-" is stdout, for ``| docker load``) and the image
ID (``sha256:<hex>``) to --id-file.

Invariant: the amd64 config is byte for byte what it was before --arch existed (no
``variant`` key, the same title label), so the pinned amd64 image ID does not move.
An arm64 config says ``"architecture": "arm64", "variant": "v8"`` (what Docker records
for linux/arm64 images) and its title label names the arm64 tag.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import IO, Any

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


BUILDER_CONFIG: dict[str, Any] = {
    "Env": [ENV_PATH],
    "User": "1000:1000",
    "WorkingDir": "/src",
    "Cmd": ["/bin/bash"],
    "Labels": {"org.opencontainers.image.title": "farm-builder:bookworm"},
}
BUILDER_CREATED_BY = "farm deploy/builder-image/build.sh (mmdebstrap)"

#: Debian architecture -> the (architecture, variant) pair of an OCI/Docker image config.
PLATFORMS: dict[str, tuple[str, str | None]] = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
}


def builder_config(arch: str) -> dict[str, Any]:
    """The builder image's config for ``arch``; amd64's is exactly :data:`BUILDER_CONFIG`."""
    if arch == "amd64":
        return BUILDER_CONFIG
    labels = {"org.opencontainers.image.title": f"farm-builder:bookworm-{arch}"}
    return {**BUILDER_CONFIG, "Labels": labels}


def image_config(
    diff_id: str,
    epoch: int,
    config: dict[str, Any] | None = None,
    created_by: str = BUILDER_CREATED_BY,
    arch: str = "amd64",
) -> dict[str, Any]:
    """The image config; ``config`` (Env, User, Cmd, ...) defaults to the builder image's."""
    created = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    architecture, variant = PLATFORMS[arch]
    result: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": builder_config(arch) if config is None else config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": created, "created_by": created_by}],
    }
    if variant is not None:
        result["variant"] = variant
    return result


def _member(name: str, size: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = epoch
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(
    out: IO[bytes], layer: Path, config: bytes, config_hex: str, diff_id: str, tag: str, epoch: int
) -> None:
    layer_name = f"{diff_id}/layer.tar"
    manifest = canonical_json(
        [{"Config": f"{config_hex}.json", "RepoTags": [tag], "Layers": [layer_name]}]
    )
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_member(f"{config_hex}.json", len(config), epoch), io.BytesIO(config))
        dir_info = tarfile.TarInfo(diff_id)
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        dir_info.mtime = epoch
        tar.addfile(dir_info)
        with layer.open("rb") as f:
            tar.addfile(_member(layer_name, layer.stat().st_size, epoch), f)
        tar.addfile(_member("manifest.json", len(manifest), epoch), io.BytesIO(manifest))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=Path, required=True, help="uncompressed rootfs tar")
    parser.add_argument("--epoch", type=int, required=True, help="SOURCE_DATE_EPOCH")
    parser.add_argument("--tag", required=True, help="RepoTag, a convenience only")
    parser.add_argument("--id-file", type=Path, required=True, help="where the image ID goes")
    parser.add_argument("--layer-sha-file", type=Path, help="where the layer's sha256 goes")
    parser.add_argument("--archive", help="output path, or - for stdout")
    parser.add_argument(
        "--arch", choices=sorted(PLATFORMS), default="amd64", help="Debian architecture"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON file {'config': {...}, 'created_by': '...'} replacing the builder "
        "image's config (Env, User, WorkingDir, Entrypoint, Cmd, Labels)",
    )
    args = parser.parse_args(argv)

    diff_id = sha256_file(args.layer)
    if args.config is not None:
        given = json.loads(args.config.read_text())
        config = canonical_json(
            image_config(diff_id, args.epoch, given["config"], given["created_by"], args.arch)
        )
    else:
        config = canonical_json(image_config(diff_id, args.epoch, arch=args.arch))
    config_hex = hashlib.sha256(config).hexdigest()
    if args.layer_sha_file is not None:
        args.layer_sha_file.write_text(f"{diff_id}  {args.layer.name}\n")
    args.id_file.write_text(f"sha256:{config_hex}\n")
    if args.archive == "-":
        write_archive(
            sys.stdout.buffer, args.layer, config, config_hex, diff_id, args.tag, args.epoch
        )
        sys.stdout.buffer.flush()
    elif args.archive:
        with Path(args.archive).open("wb") as out:
            write_archive(out, args.layer, config, config_hex, diff_id, args.tag, args.epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
