#!/bin/bash
# Make arm64 runnable on this host under QEMU: install Debian's qemu-user-static where it
# is missing and register its aarch64 handler with binfmt_misc, with the F (fix binary)
# flag so that containers find the emulator without it being in their root file system.
# Run by deploy/setup.sh; safe to run again (a registered handler with F is left alone).
#
# Exit status: 0 when arm64 can run here (native, or the handler is registered with F);
# 3 when the machine does not allow it (the reason is printed: no binfmt_misc, the kernel
# refused the registration, qemu-user-static cannot be installed). Other errors exit 1.
set -euo pipefail

readonly BINFMT=${FARM_BINFMT_DIR:-/proc/sys/fs/binfmt_misc}
readonly CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
readonly HANDLER=qemu-aarch64

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help]

Install qemu-user-static (apt) if missing, mount binfmt_misc at $BINFMT if it is not,
and register the $HANDLER handler from $CONF (flags include F).
Idempotent. Exit 0: arm64 runs here; exit 3: this machine does not allow it (says why).
Must run as root.
EOF
}

log() { printf 'enable-arm64: %s\n' "$*" >&2; }
refuse() {
    log "arm64 is not available on this machine: $*; farm goes on with amd64 only"
    exit 3
}

case ${1:-} in
-h | --help)
    usage
    exit 0
    ;;
"") ;;
*)
    usage >&2
    log "error: unknown argument: $1"
    exit 1
    ;;
esac

if [[ $(uname -m) == aarch64 ]]; then
    log "this host is arm64 itself; no emulator needed"
    exit 0
fi
(($(id -u) == 0)) || {
    log "error: must run as root (apt-get, binfmt_misc registration)"
    exit 1
}

# The handler counts only when it is enabled and fixed (F): what builders/arch.py checks.
handler_ok() {
    [[ -f $BINFMT/$HANDLER ]] || return 1
    [[ $(head -n1 "$BINFMT/$HANDLER") == enabled ]] || return 1
    grep -qE '^flags:.*F' "$BINFMT/$HANDLER"
}

if [[ ! -f $CONF ]]; then
    log "installing qemu-user-static"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends qemu-user-static >&2 ||
        refuse "apt-get could not install qemu-user-static"
    [[ -f $CONF ]] || refuse "qemu-user-static did not install $CONF"
fi

if [[ ! -f $BINFMT/register ]]; then
    log "mounting binfmt_misc at $BINFMT"
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
        refuse "the kernel has no binfmt_misc, or this container may not mount it at $BINFMT"
    [[ -f $BINFMT/register ]] || refuse "binfmt_misc mounted but $BINFMT/register is missing"
fi
if [[ $(cat "$BINFMT/status") != enabled ]]; then
    log "enabling binfmt_misc"
    echo 1 >"$BINFMT/status" 2>/dev/null || refuse "the kernel refused to enable binfmt_misc"
fi

if handler_ok; then
    log "$HANDLER is registered with the F flag; nothing to do"
    exit 0
fi
if [[ -f $BINFMT/$HANDLER ]]; then
    # Registered without F (e.g. by binfmt-support with fix_binary no) or disabled:
    # replace it, since containers cannot see an emulator that is looked up at exec time.
    log "replacing the registered $HANDLER handler (disabled or without the F flag)"
    echo -1 >"$BINFMT/$HANDLER" 2>/dev/null || refuse "the kernel refused to remove $HANDLER"
fi
rule=$(grep -v '^[[:space:]]*#' "$CONF" | grep -m1 ":$HANDLER:") ||
    refuse "no $HANDLER rule in $CONF"
[[ ${rule##*:} == *F* ]] || rule=${rule}F
log "registering $HANDLER from $CONF"
printf '%s' "$rule" >"$BINFMT/register" 2>/dev/null ||
    refuse "the kernel refused to register $HANDLER (write to $BINFMT/register failed)"
handler_ok || refuse "$HANDLER is registered but not enabled with the F flag"
log "$HANDLER registered: $(grep '^flags:' "$BINFMT/$HANDLER")"
