#!/usr/bin/env python3
"""Write requirements.lock (farm's runtime dependencies) and build-requirements.lock (the
backend that builds farm's wheel), each package pinned to one wheel by sha256.

Resolves ``pip install <checkout>`` with pip's ``--dry-run --report``, wheels only, and
writes ``name==version --hash=sha256:...`` for every package but farm. pip evaluates
environment markers for the interpreter it runs under, and Debian bookworm's Python is
3.11.2 (redis, for one, needs async-timeout below 3.11.3), so pip runs in the builder image
(``--image``, Debian bookworm's own python3 and pip), with this checkout copied in.
Run it when pyproject.toml's dependencies change; commit the result (the host image is a
function of it). Standard library only.

Usage: python3 deploy/host-image/relock.py [--image IMAGE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


HEADER = (
    "# {what}, one wheel each, pinned by sha256.\n"
    "# Written by deploy/host-image/relock.py; do not edit by hand.\n"
)


def resolve(image: str, target: str) -> list[str]:
    """``name==version --hash=sha256:...`` of each wheel ``pip install target`` takes under
    the image's python3 (``target`` "." is this checkout)."""
    script = (
        "set -e; mkdir /tmp/farm; cd /farm; "
        "cp -r pyproject.toml README.md farm builders ledger api /tmp/farm/; cd /tmp/farm; "
        "python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "
        '--dry-run --ignore-installed --only-binary=:all: --report /tmp/report.json "$1" '
        ">&2; cat /tmp/report.json"
    )
    # The host's CA bundle, for a host whose way to PyPI re-signs TLS.
    ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    trust = ["--volume", f"{ca}:/etc/ssl/host-ca.crt:ro", "--env", "PIP_CERT=/etc/ssl/host-ca.crt"]
    proc = subprocess.run(
        [
            "docker", "run", "--rm", "--user", "0:0", "--volume", f"{ROOT}:/farm:ro",
            *(trust if ca.is_file() else []), "--entrypoint", "/bin/sh", image, "-c", script,
            "sh", target,
        ],
        check=False,
        capture_output=True,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        raise SystemExit(f"relock: pip in {image} failed (exit {proc.returncode})")
    resolved = json.loads(proc.stdout)["install"]
    lines = []
    for item in resolved:
        meta = item["metadata"]
        if meta["name"] == "farm":
            continue
        sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{meta['name'].lower()}=={meta['version']} --hash=sha256:{sha}")
    return sorted(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image",
        default="farm-builder:bookworm",
        help="a Debian bookworm image with python3 and pip (default: the builder image)",
    )
    args = parser.parse_args(argv)
    runtime = resolve(args.image, ".")
    (HERE / "requirements.lock").write_text(
        HEADER.format(what="farm's runtime dependencies for the host image")
        + "\n".join(runtime)
        + "\n"
    )
    build = resolve(args.image, "setuptools>=77")
    (HERE / "build-requirements.lock").write_text(
        HEADER.format(what="What builds farm's wheel for the host image (PEP 517 backend)")
        + "\n".join(build)
        + "\n"
    )
    print(
        f"requirements.lock: {len(runtime)}, build-requirements.lock: {len(build)}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
