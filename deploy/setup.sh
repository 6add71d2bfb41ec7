#!/usr/bin/env bash
# Set up farm on a fresh Debian (bookworm) machine with Docker: the system packages it
# needs, a virtualenv in .venv with farm and its test tools, and the reproducible
# builder base image. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: bash deploy/setup.sh [--no-image]"
  echo "Installs redis-server, mmdebstrap, busybox-static, diffoscope, postgresql, docker-compose"
  echo "and python3-venv"
  echo "(apt) where missing, creates .venv"
  echo "with farm[test], and builds the builder base image unless --no-image is given."
  echo "Makes arm64 available under QEMU where the kernel allows it (qemu-user-static, the"
  echo "qemu-aarch64 binfmt handler with the F flag) and then builds the arm64 image too."
  exit 0
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# chromium + chromium-driver: the dashboard's browser test; nginx: `farm bench dist`'s baseline;
# docker-compose: `farm cluster up`, a farm of hosts (deploy/cluster).
packages=(redis-server mmdebstrap busybox-static git diffoscope chromium chromium-driver nginx
  docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then missing+=(python3-venv); fi
# PostgreSQL server binaries for the coordinator's PostgreSQL tests (initdb, pg_ctl).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if (( ${#missing[@]} )); then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian packages start system servers; farm starts its own.
if command -v systemctl >/dev/null; then
  for unit in redis-server postgresql nginx; do
    if systemctl is-active -q "$unit" 2>/dev/null; then $SUDO systemctl stop "$unit" || true; fi
  done
fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "farm needs Python 3.11 or newer as python3" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing farm into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# arm64 under QEMU (issue 16): qemu-user-static and its qemu-aarch64 binfmt handler (F flag).
# Exit 3 means the machine does not allow it (the script says why): go on with amd64 only.
arm64=0
if $SUDO bash deploy/builder-image/enable-arm64.sh; then arm64=1; else
  rc=$?
  if (( rc != 3 )); then exit "$rc"; fi
  say "arm64 is not available here; only amd64 is set up"
fi

if ! docker info >/dev/null 2>&1; then
  echo "the Docker Engine is not reachable (is dockerd running and may $(id -un) use it?)" >&2
  exit 1
fi
if [[ "${1:-}" != "--no-image" ]]; then
  say "building the reproducible builder base image"
  bash deploy/builder-image/build.sh
  if (( arm64 )); then
    say "building the arm64 builder base image"
    bash deploy/builder-image/build.sh --arch arm64
  fi
fi
say "ready: .venv/bin/farm --help"
