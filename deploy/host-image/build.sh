#!/bin/bash
# Build farm's host image (Debian bookworm, amd64, farm installed) without a registry.
# See README.md in this folder. Progress goes to stderr; the image ID is the last stdout line.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
ROOT=$(cd "$HERE/../.." && pwd)
readonly ROOT
readonly NAME=farm-host-bookworm-amd64
readonly DEFAULT_TAG=farm-host:bookworm
readonly TAG=${FARM_HOST_IMAGE:-$DEFAULT_TAG}
readonly SUITE=bookworm
readonly SOURCES=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)

usage() {
    cat <<USAGE
Usage: $(basename "$0") [--out DIR] [--no-load] [--verbose] [--help]

Build the farm host image: the image every host of a farm of hosts runs (validators,
coordinator, Redis, PostgreSQL, builder hosts with their own Docker Engine, distribution
nodes, clients). A Debian $SUITE amd64 rootfs made by mmdebstrap with SOURCE_DATE_EPOCH
from the file SOURCE_DATE_EPOCH and the packages in packages.txt; farm and the
dependencies pinned by sha256 in requirements.lock installed into /opt/farm from a
wheelhouse (downloaded from PyPI by hash; farm's own wheel built from this checkout's
files with the backend pinned in build-requirements.lock). The rootfs is wrapped into a
docker-archive with a fixed config and 'docker load'ed: two builds from the same checkout
and the same Debian mirror state give the same image ID.

Options:
  --out DIR   where the rootfs, the wheelhouse, the package manifest and the image ID go
              (default: \$FARM_CACHE/host-image, FARM_CACHE defaults to /var/cache/farm;
              with FARM_HOST_IMAGE set, a directory of that tag's own below it)
  --no-load   do not 'docker load'; write the docker-archive to DIR/$NAME.docker.tar
  --verbose   pass --verbose to mmdebstrap
  --help      show this help

Environment: PYTHON, the interpreter that downloads wheels and builds farm's wheel
(default: the checkout's .venv/bin/python, else python3; it must be CPython 3.11, the
Python of Debian $SUITE); FARM_HOST_IMAGE, the tag to give the image (default
$DEFAULT_TAG; docker-compose.yml and farm cluster read the same variable), so that
two checkouts built on one machine do not take each other's tag. Must run as root. Prints the image ID as the last stdout line.
USAGE
}

log() { printf 'host-image: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cache=${FARM_CACHE:-/var/cache/farm}
out=
load=1
verbosity=()
while (($#)); do
    case $1 in
    --out)
        (($# >= 2)) || die "--out needs a directory"
        out=$2
        shift 2
        ;;
    --out=*)
        out=${1#--out=}
        shift
        ;;
    --no-load)
        load=0
        shift
        ;;
    --verbose)
        verbosity=(--verbose)
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
done

(($(id -u) == 0)) || die "must run as root (mmdebstrap --mode=root, docker load)"
if [[ -z $out ]]; then
    out=$cache/host-image
    [[ $TAG == "$DEFAULT_TAG" ]] || out=$out/${TAG//[^A-Za-z0-9_.-]/-}
fi
mkdir -p "$out" "$cache/host-debs" "$cache/host-wheels"
out=$(cd "$out" && pwd)
debs=$(cd "$cache/host-debs" && pwd)
downloads=$(cd "$cache/host-wheels" && pwd)
python=${PYTHON:-}
if [[ -z $python ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then python=$ROOT/.venv/bin/python; else python=python3; fi
fi
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "$python is not CPython 3.11 (Debian $SUITE's Python): its wheels would not fit"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (bash deploy/setup.sh installs it)"
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $KEYRING ]] || die "$KEYRING is missing (apt-get install debian-archive-keyring)"
if ((load)); then
    docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (or use --no-load)"
fi
for dir in "$HERE" "$debs" "$out"; do
    [[ $dir != *[[:space:]]* ]] || die "paths with whitespace are not supported: '$dir'"
done

exec 9>"$cache/host-image.lock"
if ! flock -n 9; then
    log "another build holds $cache/host-image.lock; waiting"
    flock 9
fi

epoch=$(tr -d '[:space:]' <"$HERE/SOURCE_DATE_EPOCH")
[[ $epoch =~ ^[0-9]+$ ]] || die "$HERE/SOURCE_DATE_EPOCH must hold a decimal integer"
export SOURCE_DATE_EPOCH=$epoch
start=$SECONDS

# 1. The wheelhouse: every pinned wheel, checked against its hash, and farm's own wheel.
wheels=$out/wheels
rm -rf -- "$wheels" "$out/.work"
mkdir -p "$wheels" "$out/.work"
trap 'rm -rf -- "$out/.work" "$out/.$NAME.tar.partial" "$out/.$NAME.docker.tar.partial"' EXIT
log "downloading the pinned wheels (requirements.lock) into $downloads"
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
    --require-hashes -r "$HERE/requirements.lock" -r "$HERE/build-requirements.lock" \
    -d "$downloads" >&2
"$python" - "$HERE/requirements.lock" "$downloads" "$wheels" <<'PY'
import shutil, sys
from pathlib import Path
lock, downloads, wheels = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
names = {l.split("==")[0].replace("-", "_").lower(): l.split("==")[1].split()[0]
         for l in lock.read_text().splitlines() if l and not l.startswith("#")}
for whl in sorted(downloads.glob("*.whl")):
    dist, version = whl.name.split("-")[:2]
    if names.get(dist.lower()) == version:
        shutil.copy2(whl, wheels / whl.name)
PY
cp -- "$HERE/requirements.lock" "$wheels/"
log "building farm's wheel from $ROOT (the files git tracks or would track)"
src=$out/.work/src
mkdir -p "$src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    tar --create --null --files-from=- --ignore-failed-read 2>/dev/null) | tar -x -C "$src"
"$python" -m venv "$out/.work/backend"
"$out/.work/backend/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-index --find-links "$downloads" --require-hashes \
    -r "$HERE/build-requirements.lock" >&2
"$out/.work/backend/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$wheels" "$src" >&2
log "wheelhouse: $(find "$wheels" -name '*.whl' | wc -l) wheels"

# 2. The rootfs.
packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/packages.txt" | paste -sd, -)
export FARM_WHEELS=$wheels
export FARM_MANIFEST=$out/.work/packages.txt
log "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH; packages: $packages"
# shellcheck disable=SC2016 # "$1" in hooks is the chroot, expanded by mmdebstrap's sh
mmdebstrap \
    "${verbosity[@]}" \
    --mode=root \
    --variant=minbase \
    --architectures=amd64 \
    --format=tar \
    --include="$packages" \
    --keyring="$KEYRING" \
    --skip=check/signed-by \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in $debs /var/cache/apt/archives/" \
    --customize-hook="\"$HERE/customize.sh\" \"\$1\"" \
    --customize-hook="sync-out /var/cache/apt/archives $debs" \
    "$SUITE" "$out/.$NAME.tar.partial" "${SOURCES[@]}" >&2
mv -f -- "$out/.$NAME.tar.partial" "$out/$NAME.tar"
mv -f -- "$FARM_MANIFEST" "$out/$NAME.packages.txt"
log "rootfs built in $((SECONDS - start))s"

# 3. The image: one layer, a config that is a function of the inputs.
"$python" - "$out/config.json" <<'PY'
import json, sys
json.dump({
    "config": {
        "Env": ["PATH=/opt/farm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LC_ALL=C.UTF-8", "PYTHONUNBUFFERED=1"],
        "User": "0:0",
        "WorkingDir": "/var/lib/farm",
        "Entrypoint": ["/usr/bin/tini", "--"],
        "Cmd": ["farm", "--help"],
        "Labels": {"org.opencontainers.image.title": "farm-host:bookworm"},
    },
    "created_by": "farm deploy/host-image/build.sh (mmdebstrap, farm from a pinned wheelhouse)",
}, open(sys.argv[1], "w"), sort_keys=True)
PY
archive_args=(--layer "$out/$NAME.tar" --epoch "$SOURCE_DATE_EPOCH" --tag "$TAG"
    --id-file "$out/$NAME.image-id" --layer-sha-file "$out/$NAME.tar.sha256"
    --config "$out/config.json")
if ((load)); then
    log "loading into Docker"
    python3 "$HERE/../builder-image/docker_archive.py" "${archive_args[@]}" --archive - |
        docker load >&2
    image=$(tr -d '[:space:]' <"$out/$NAME.image-id")
    loaded=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    [[ $loaded == "$image" ]] || die "docker load did not produce $image (got '${loaded:-nothing}')"
else
    python3 "$HERE/../builder-image/docker_archive.py" "${archive_args[@]}" \
        --archive "$out/.$NAME.docker.tar.partial"
    mv -f -- "$out/.$NAME.docker.tar.partial" "$out/$NAME.docker.tar"
    image=$(tr -d '[:space:]' <"$out/$NAME.image-id")
fi
log "image $image ($(wc -l <"$out/$NAME.packages.txt") packages, $(find "$wheels" -name '*.whl' | wc -l) wheels) in $((SECONDS - start))s"
printf '%s\n' "$image"
