#!/bin/bash
# Build farm's reproducible builder base image (Debian bookworm, amd64 or arm64) without a
# registry.
# See README.md in this folder. Progress goes to stderr; the image ID is the last stdout line.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SUITE=bookworm
readonly SOURCES=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
# Every file whose bytes go into the image; a change to any of them invalidates the
# "already built" shortcut.
readonly INPUTS=(build.sh customize.sh docker_archive.py packages.txt SOURCE_DATE_EPOCH)

usage() {
    cat <<EOF
Usage: $(basename "$0") [--arch amd64|arm64] [--out DIR] [--no-load] [--force] [--verbose]
       $(basename "$0") --help

Build the farm builder base image: a Debian $SUITE rootfs made by mmdebstrap with
SOURCE_DATE_EPOCH=$(tr -d '[:space:]' <"$HERE/SOURCE_DATE_EPOCH") (file SOURCE_DATE_EPOCH),
packages from packages.txt, user 'builder' (1000:1000), empty /src /deps /out. The rootfs
tarball is wrapped into a docker-archive with a deterministic config and 'docker load'ed,
so the image ID (sha256:...) is the same on every host with the same Debian mirror state.

Options:
  --arch A    amd64 (default; tagged farm-builder:bookworm) or arm64 (tagged
              farm-builder:bookworm-arm64; on an amd64 host it needs the qemu-aarch64
              binfmt handler: run enable-arm64.sh first)
  --out DIR   where the rootfs tarball, its sha256, the package manifest (name=version,
              sorted) and the image ID are written
              (default: \$FARM_CACHE/builder-image, FARM_CACHE defaults to /var/cache/farm)
  --no-load   do not 'docker load'; write the docker-archive to
              DIR/farm-builder-$SUITE-ARCH.docker.tar
  --force     rebuild even if the image from the last successful build is present
  --verbose   pass --verbose to mmdebstrap (shows apt's downloads)
  --help      show this help

Downloaded .debs are kept in \$FARM_CACHE/debs (amd64) or \$FARM_CACHE/debs-ARCH between
runs. Must run as root.
Prints the image ID (sha256:<64 hex>) as the last line on stdout.
EOF
}

log() { printf 'builder-image: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cache=${FARM_CACHE:-/var/cache/farm}
arch=amd64
out=
load=1
force=0
verbosity=()
while (($#)); do
    case $1 in
    --arch)
        (($# >= 2)) || die "--arch needs amd64 or arm64"
        arch=$2
        shift 2
        ;;
    --arch=*)
        arch=${1#--arch=}
        shift
        ;;
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
    --force)
        force=1
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

# amd64 keeps the names it had before arm64 existed (its tag, state file and .deb cache).
case $arch in
amd64)
    TAG=farm-builder:$SUITE
    debs_dir=$cache/debs
    state=$cache/builder-image.last
    ;;
arm64)
    TAG=farm-builder:$SUITE-arm64
    debs_dir=$cache/debs-arm64
    state=$cache/builder-image-arm64.last
    ;;
*) die "unknown architecture '$arch' (--arch takes amd64 or arm64)" ;;
esac
readonly arch TAG state NAME=farm-builder-$SUITE-$arch

(($(id -u) == 0)) || die "must run as root (mmdebstrap --mode=root, docker load)"
if [[ $arch == arm64 && $(uname -m) != aarch64 ]]; then
    handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
    [[ -f $handler && $(head -n1 "$handler") == enabled ]] && grep -qE '^flags:.*F' "$handler" ||
        die "arm64 on $(uname -m) needs the qemu-aarch64 binfmt handler with the F flag" \
            "($handler is missing or not enabled with F); run $HERE/enable-arm64.sh as root"
fi
[[ -n $out ]] || out=$cache/builder-image
mkdir -p "$out" "$debs_dir"
out=$(cd "$out" && pwd)
debs=$(cd "$debs_dir" && pwd)
readonly debs

# One build at a time per host: they share the .deb cache and the state file.
exec 9>"$cache/builder-image.lock"
if ! flock -n 9; then
    log "another build holds $cache/builder-image.lock; waiting"
    flock 9
fi

epoch=$(tr -d '[:space:]' <"$HERE/SOURCE_DATE_EPOCH")
[[ $epoch =~ ^[0-9]+$ ]] || die "$HERE/SOURCE_DATE_EPOCH must hold a decimal integer"
export SOURCE_DATE_EPOCH=$epoch

inputs=$(cd "$HERE" && { cat -- "${INPUTS[@]}" && printf 'arch=%s\n' "$arch"; } |
    sha256sum | cut -d' ' -f1)

# Shortcut: the last successful build had these inputs, its rootfs tarball is in --out,
# and its image is loaded (or, with --no-load, its docker-archive is in --out).
if ((!force)) && [[ -f $state ]]; then
    last_inputs=$(sed -n 's/^inputs=//p' "$state")
    last_image=$(sed -n 's/^image=//p' "$state")
    last_layer=$(sed -n 's/^layer=//p' "$state")
    if [[ $last_inputs == "$inputs" && $last_image =~ ^sha256:[0-9a-f]{64}$ &&
        -f $out/$NAME.tar ]] &&
        [[ $(sha256sum <"$out/$NAME.tar" | cut -d' ' -f1) == "$last_layer" ]]; then
        if ((load)); then
            present=$(docker image inspect --format '{{.Id}}' "$last_image" 2>/dev/null || true)
        else
            present=
            if [[ -f $out/$NAME.docker.tar ]]; then present=$last_image; fi
        fi
        if [[ $present == "$last_image" ]]; then
            log "image $last_image and rootfs $out/$NAME.tar (same inputs) are present;" \
                "skipping (--force rebuilds)"
            printf '%s\n' "$last_image"
            exit 0
        fi
        log "recorded image $last_image is missing; rebuilding"
    fi
fi

if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends mmdebstrap >&2
fi
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
if [[ ! -f $KEYRING ]]; then
    log "installing debian-archive-keyring"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends debian-archive-keyring >&2
fi
command -v python3 >/dev/null || die "python3 is needed on the host (docker_archive.py)"
if ((load)); then
    docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (or use --no-load)"
fi

packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/packages.txt" | paste -sd, -)
[[ -n $packages ]] || die "packages.txt lists no packages"

# mmdebstrap's special hooks split their arguments on whitespace.
for dir in "$HERE" "$debs" "$out"; do
    [[ $dir != *[[:space:]]* ]] || die "paths with whitespace are not supported: '$dir'"
done

partial_tar=$out/.$NAME.tar.partial
partial_manifest=$out/.$NAME.packages.partial
cleanup() { rm -f -- "$partial_tar" "$partial_manifest" "$out/.$NAME.docker.tar.partial"; }
trap cleanup EXIT
export FARM_MANIFEST=$partial_manifest

log "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH; packages: $packages"
log "host tools: $(mmdebstrap --version), $(tar --version | head -n1), $(dpkg-query -W -f='apt ${Version}' apt)"
start=$SECONDS
# --keyring + --skip=check/signed-by: apt verifies the mirror against Debian's archive
# keyring, and sources.list inside the image never depends on the host's key setup.
# --skip=essential/unlink keeps the essential .debs so the last hook can save them.
# shellcheck disable=SC2016 # "$1" in hooks is the chroot, expanded by mmdebstrap's sh
mmdebstrap \
    "${verbosity[@]}" \
    --mode=root \
    --variant=minbase \
    --architectures="$arch" \
    --format=tar \
    --include="$packages" \
    --keyring="$KEYRING" \
    --skip=check/signed-by \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in $debs /var/cache/apt/archives/" \
    --customize-hook="\"$HERE/customize.sh\" \"\$1\"" \
    --customize-hook="sync-out /var/cache/apt/archives $debs" \
    "$SUITE" "$partial_tar" "${SOURCES[@]}" >&2
log "rootfs built in $((SECONDS - start))s"

# Drop cached .debs that this build did not install (older versions after an update).
find "$debs" -maxdepth 1 -name '*.deb' -printf '%f\n' | while read -r deb; do
    pkg=${deb%%_*}
    ver=${deb#*_}
    ver=${ver%_*}
    ver=${ver//%3a/:}
    grep -qxF "$pkg=$ver" "$partial_manifest" || rm -f -- "$debs/$deb"
done

mv -f -- "$partial_tar" "$out/$NAME.tar"
mv -f -- "$partial_manifest" "$out/$NAME.packages.txt"
{
    printf 'arch=%s\n' "$arch"
    printf 'mmdebstrap=%s\n' "$(dpkg-query -W -f='${Version}' mmdebstrap)"
    printf 'tar=%s\n' "$(dpkg-query -W -f='${Version}' tar)"
    printf 'apt=%s\n' "$(dpkg-query -W -f='${Version}' apt)"
    printf 'dpkg=%s\n' "$(dpkg-query -W -f='${Version}' dpkg)"
    printf 'SOURCE_DATE_EPOCH=%s\n' "$SOURCE_DATE_EPOCH"
    printf 'inputs=%s\n' "$inputs"
} >"$out/$NAME.buildinfo"

archive_args=(--arch "$arch" --layer "$out/$NAME.tar" --epoch "$SOURCE_DATE_EPOCH" --tag "$TAG"
    --id-file "$out/$NAME.image-id" --layer-sha-file "$out/$NAME.tar.sha256")
if ((load)); then
    log "loading into Docker"
    python3 "$HERE/docker_archive.py" "${archive_args[@]}" --archive - | docker load >&2
    image=$(tr -d '[:space:]' <"$out/$NAME.image-id")
    loaded=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    [[ $loaded == "$image" ]] || die "docker load did not produce $image (got '${loaded:-nothing}')"
else
    python3 "$HERE/docker_archive.py" "${archive_args[@]}" --archive "$out/.$NAME.docker.tar.partial"
    mv -f -- "$out/.$NAME.docker.tar.partial" "$out/$NAME.docker.tar"
    image=$(tr -d '[:space:]' <"$out/$NAME.image-id")
    log "docker-archive written to $out/$NAME.docker.tar (docker load -i it)"
fi
layer=$(cut -d' ' -f1 <"$out/$NAME.tar.sha256")

printf 'inputs=%s\nimage=%s\nlayer=%s\nout=%s\n' "$inputs" "$image" "$layer" "$out" >"$state.tmp"
mv -f -- "$state.tmp" "$state"
log "rootfs sha256 $layer ($(wc -l <"$out/$NAME.packages.txt") packages, see $out/$NAME.packages.txt)"
if ((load)); then log "image $image loaded, tagged $TAG"; fi
log "done in $((SECONDS - start))s"
printf '%s\n' "$image"
