#!/bin/bash
# The coordinator host: `farm serve` on PostgreSQL and Redis, attesting on the ledger.
set -euo pipefail

usage() {
    cat <<USAGE
Usage: coordinator.sh [operator-token NAME]

Without arguments: run the coordinator (farm serve) as the farm user on port 8600, HTTPS
only (its certificate /run/farm-secrets/tls.pem, from the farm CA), with its database on
the postgres host (password from /run/farm-secrets/postgres-password), the broker on
the redis host over TLS (trusting the farm CA, /etc/farm/ca.pem) as its own broker user
"coordinator" (password /run/farm-secrets/redis-password), each builder's tasks in that
builder's own keyspace, the four validators v0..v3 and its staging store in
/var/lib/farm (the host's volume). Its coordinator key is
/run/farm-secrets/coordinator.key; it holds no operator key (it relays the enroll, retire
and revoke transactions the operator signs on the operator's host, checked against the
genesis operators). The chain id is \$FARM_CHAIN_ID and its genesis
/etc/farm/genesis.json (receipts are checked against 2f+1 of its validators).

operator-token NAME: print a new operator bearer token made in its database (what
farm cluster up runs once, through docker-compose exec, to act as the operator).
USAGE
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
secrets=/run/farm-secrets
[[ -r $secrets/postgres-password ]] || {
    echo "coordinator.sh: no readable $secrets/postgres-password" >&2
    exit 1
}
FARM_COORDINATOR_DB_URL="postgresql+psycopg://farm:$(<"$secrets/postgres-password")@postgres:5432/farm"
export FARM_COORDINATOR_DB_URL

case ${1:-} in
operator-token)
    exec farm operator new-operator-token --name "${2:?operator-token needs a NAME}"
    ;;
"") ;;
*)
    usage >&2
    exit 2
    ;;
esac

: "${FARM_CHAIN_ID:?FARM_CHAIN_ID must be set}"
export FARM_COORDINATOR_REPORTS_DIR=/var/lib/farm/reports
# In the environment, not on the command line (ps shows that).
FARM_COORDINATOR_REDIS_URL="rediss://coordinator:$(<"$secrets/redis-password")@redis:6379/0?ssl_ca_certs=/etc/farm/ca.pem"
export FARM_COORDINATOR_REDIS_URL FARM_COORDINATOR_BUILDER_KEYSPACES=1
exec farm serve --host 0.0.0.0 --port 8600 --staging /var/lib/farm/staging \
    --tls-cert "$secrets/tls.pem" --tls-key "$secrets/tls.key" \
    --ledger http://v0:26657,http://v1:26657,http://v2:26657,http://v3:26657 \
    --coordinator-key "$secrets/coordinator.key" \
    --ledger-chain "$FARM_CHAIN_ID" --genesis /etc/farm/genesis.json --log-level info
