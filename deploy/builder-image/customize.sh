#!/bin/bash
# mmdebstrap --customize-hook for the farm builder image (run by build.sh, not by hand).
#
# $1 is the chroot directory. Runs after every package is installed and before
# mmdebstrap's own cleanup (apt lists, apt cache, dpkg/apt logs, machine-id, /run, /tmp).
# Everything here must give the same bytes on every host and on every run.
#
# Environment (exported by build.sh): SOURCE_DATE_EPOCH, FARM_MANIFEST (where the
# package manifest goes, outside the chroot).
set -euo pipefail
umask 022

root=${1:?usage: customize.sh CHROOT}
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
: "${FARM_MANIFEST:?FARM_MANIFEST must be set}"

# The unprivileged build user. useradd/groupadd (shadow >= 4.6) take "now" from
# SOURCE_DATE_EPOCH, so the last-change day in /etc/shadow is fixed.
chroot "$root" groupadd --gid 1000 builder
chroot "$root" useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash \
    --comment 'farm builder' builder

# Mount points of the hermetic build: sources, pinned dependencies, outputs.
install -d -m 0755 -o 1000 -g 1000 "$root/src" "$root/deps" "$root/out"
install -d -m 1777 -o 0 -g 0 "$root/tmp"

# mmdebstrap copies the host's /etc/hostname and /etc/resolv.conf; Docker bind-mounts
# its own over both at run time, so fixed contents cost nothing.
# Recreate them so neither the host's contents nor its file modes (or a symlink) leak in.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
printf 'builder\n' >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
chmod 0644 "$root/etc/hostname" "$root/etc/resolv.conf"

# The .pyc files py3compile wrote are kept: Python 3.11's marshal sorts frozensets
# (bpo-37596), so they do not depend on the hash seed, and two builds compare equal
# (tests/integration/test_builder_image.py). Should that ever fail on them, delete
# every __pycache__ under /usr here; builds then compile the stdlib at each start.

# Backups and logs that record the run rather than the result.
rm -f "$root"/etc/passwd- "$root"/etc/group- "$root"/etc/shadow- "$root"/etc/gshadow- \
    "$root"/etc/subuid- "$root"/etc/subgid-
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/var/log" -xdev -type f -exec truncate -s 0 {} +

# The package manifest: name=version of everything installed, sorted bytewise.
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package}=${Version}\n' \
    | LC_ALL=C sort >"$FARM_MANIFEST"
