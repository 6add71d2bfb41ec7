#!/bin/bash
# A ledger validator host: `farm ledger run` on its own volume, its key from its secrets.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    cat <<USAGE
Usage: validator.sh

Run this host's ledger validator (farm ledger run) as the farm user. Its store and vote
guard live in /var/lib/farm/ledger (the host's volume); its key is read from
/run/farm-secrets/validator.key (mounted read-only, mode 0400, owned by farm) through a
link, so the key is never copied into the volume; the chain is /etc/farm/genesis.json.
It binds the addresses the genesis gives it (HOSTNAME:26656 peers, HOSTNAME:26657 HTTP).
USAGE
    exit 0
fi

dir=/var/lib/farm/ledger
key=/run/farm-secrets/validator.key
[[ -r $key ]] || { echo "validator.sh: no readable key at $key" >&2; exit 1; }
mkdir -p "$dir"
ln -sfn "$key" "$dir/validator.key"
exec farm ledger run --dir "$dir" --genesis /etc/farm/genesis.json
