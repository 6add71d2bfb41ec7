#!/bin/bash
# mmdebstrap --customize-hook for the farm host image (run by build.sh, not by hand).
#
# $1 is the chroot. Installs farm and its pinned dependencies from the wheelhouse into
# /opt/farm (a venv on Debian's python3), adds the 'farm' user, and removes what records
# the run rather than the result. Everything here must give the same bytes on every run.
#
# Environment (exported by build.sh): SOURCE_DATE_EPOCH, FARM_WHEELS (the wheelhouse:
# requirements.lock and every wheel it pins, plus farm's own wheel), FARM_MANIFEST.
set -euo pipefail
umask 022

root=${1:?usage: customize.sh CHROOT}
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
: "${FARM_WHEELS:?FARM_WHEELS must be set}"
: "${FARM_MANIFEST:?FARM_MANIFEST must be set}"

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1 \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" LC_ALL=C.UTF-8 "$@"; }

# The service user every farm process runs as (a builder host's dockerd runs as root).
chroot "$root" groupadd --gid 1000 farm
chroot "$root" useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash \
    --comment 'farm services' farm
install -d -m 0750 -o 1000 -g 1000 "$root/var/lib/farm"

# farm into /opt/farm, from the wheelhouse only, every dependency checked by its hash.
mkdir -p "$root/tmp/wheels"
cp -- "$FARM_WHEELS"/*.whl "$FARM_WHEELS/requirements.lock" "$root/tmp/wheels/"
in_root python3 -m venv --without-pip /opt/farm
pip=(python3 -m pip --python /opt/farm/bin/python --disable-pip-version-check --no-cache-dir
    install --quiet --no-index --find-links /tmp/wheels --no-compile)
in_root "${pip[@]}" --require-hashes -r /tmp/wheels/requirements.lock
farm_wheel=$(cd "$FARM_WHEELS" && echo farm-*.whl)
[[ -f $FARM_WHEELS/$farm_wheel ]] || { echo "no farm wheel in $FARM_WHEELS" >&2; exit 1; }
in_root "${pip[@]}" --no-deps "/tmp/wheels/$farm_wheel"
rm -rf -- "$root/tmp/wheels"
# Byte code compiled once, keyed by each source's hash rather than its mtime, so the
# .pyc bytes are a function of the sources (PEP 552).
in_root /opt/farm/bin/python -m compileall -q -j 1 --invalidation-mode unchecked-hash \
    /opt/farm/lib >/dev/null
# pip records who installed (INSTALLER) and, for farm, where the wheel was (direct_url):
# both fixed here, but drop direct_url.json since its path is the wheelhouse's.
find "$root/opt/farm" -name direct_url.json -delete

# Docker bind-mounts its own hostname and resolv.conf at run time (see builder-image).
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
printf 'farm-host\n' >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
chmod 0644 "$root/etc/hostname" "$root/etc/resolv.conf"

# Packages' postinst scripts may have started nothing (no init in a chroot), but they
# leave state that records the run: backups, logs, the PostgreSQL cluster Debian makes
# (a host initialises its own, with its own password, on first start).
rm -f "$root"/etc/passwd- "$root"/etc/group- "$root"/etc/shadow- "$root"/etc/gshadow- \
    "$root"/etc/subuid- "$root"/etc/subgid-
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/var/log" -xdev -type f -exec truncate -s 0 {} +
rm -rf "$root/var/lib/postgresql/15/main" "$root/etc/postgresql/15/main"
rm -f "$root"/etc/ssl/private/ssl-cert-snakeoil.key "$root"/etc/ssl/certs/ssl-cert-snakeoil.pem

dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package}=${Version}\n' \
    | LC_ALL=C sort >"$FARM_MANIFEST"
