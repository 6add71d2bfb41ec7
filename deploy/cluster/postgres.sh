#!/bin/bash
# The coordinator's PostgreSQL host: initdb into the volume at first start, then serve.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    cat <<USAGE
Usage: postgres.sh

Run PostgreSQL 15 (from the image) as the farm user on /var/lib/farm/pgdata (the host's
volume). At first start the cluster is made with initdb: superuser 'farm' with the
password in /run/farm-secrets/postgres-password (scram-sha-256 from the network, peer
auth on the local socket), and a database 'farm'. The marker .farm-initialised is written
last: a first start cut short is made again from nothing.
USAGE
    exit 0
fi

bin=/usr/lib/postgresql/15/bin
data=/var/lib/farm/pgdata
marker=/var/lib/farm/.farm-initialised
password=/run/farm-secrets/postgres-password
[[ -r $password ]] || { echo "postgres.sh: no readable password at $password" >&2; exit 1; }

if [[ ! -f $marker ]]; then
    echo "postgres.sh: first start, making the cluster in $data" >&2
    rm -rf "$data"
    "$bin/initdb" -D "$data" -U farm --pwfile="$password" --auth-local=peer \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' \
        >>"$data/pg_hba.conf"
    echo "CREATE DATABASE farm" | "$bin/postgres" --single -D "$data" postgres >/dev/null
    touch "$marker"
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp
