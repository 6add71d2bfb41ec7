#!/bin/bash
# Health checks of the cluster's services (docker-compose healthcheck: probe.sh ROLE).
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help || $# -ne 1 ]]; then
    cat <<USAGE
Usage: probe.sh ROLE

Exit 0 when this host's service of ROLE is ready, non-zero otherwise. The farm services
answer GET /readyz themselves (200 only when every check passes; deploy/README.md):
  validator    :26657/readyz   caught up, connected to 2f peers
  coordinator  :8600/readyz    database, Redis and a validator reachable (HTTPS)
  dist         :8700/readyz    followed the ledger, checkpoint fresh (HTTPS)
  builder      :9100/readyz    its Engine answers with the pinned image, Redis reachable
               (and its worker's heartbeat is in Redis, read as this host's broker user)
  redis        redis-cli --tls PING
  postgres     pg_isready on 127.0.0.1:5432
  client       farm runs
USAGE
    [[ $# -eq 1 ]] && exit 0 || exit 2
fi

# HTTPS URLs are checked against the farm CA (/etc/farm/ca.pem): the certificates name
# localhost too.
http() {
    /opt/farm/bin/python - "$1" <<'PY'
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="/etc/farm/ca.pem") if sys.argv[1].startswith("https:") else None
with urllib.request.urlopen(sys.argv[1], timeout=4, context=ctx) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

case $1 in
validator) http http://127.0.0.1:26657/readyz ;;
coordinator) http https://localhost:8600/readyz ;;
dist) http https://localhost:8700/readyz ;;
redis) [[ $(redis-cli --tls --cacert /etc/farm/ca.pem -h localhost -p 6379 ping) == PONG ]] ;;
postgres) /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p 5432 -U farm -d farm ;;
builder)
    http http://127.0.0.1:9100/readyz
    id=$(cat "$FARM_HOME/enrolled")
    /opt/farm/bin/python - "$id" <<'PY'
import os, socket, sys, redis
from farm.registry import heard
password = open("/run/farm-secrets/redis-password").read().strip()
url = os.environ["FARM_REDIS_URL"].replace("rediss://", f"rediss://{socket.gethostname()}:{password}@", 1)
client = redis.Redis.from_url(url, socket_timeout=4)
sys.exit(0 if heard(client, sys.argv[1]) is not None else 1)
PY
    ;;
client) farm version >/dev/null ;;
*)
    echo "probe.sh: unknown role $1" >&2
    exit 2
    ;;
esac
