#!/bin/bash
# A builder host: its own Docker Engine with the pinned builder image, then the worker.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    cat <<USAGE
Usage: builder.sh

Run one builder host, in order:
 1. start this host's own Docker Engine (dockerd, as root: the only root process of a
    farm; its image store is the host's volume at /var/lib/docker) and wait for it;
 2. load the builder image from /opt/farm-builder-image.tar (read-only) unless it is
    there, and fail loudly unless its ID is the pinned \$FARM_BUILDER_IMAGE_ID;
 3. as the farm user: make the builder key once (farm builder init, in \$FARM_HOME on
    the host's volume); enroll once with the one-time token /run/farm-secrets/token
    (waiting for it: farm cluster up writes it once the coordinator runs);
 4. run the worker (farm builder run) as farm until stopped, serving /healthz, /readyz
    and /metrics on port 9100. SIGTERM (docker stop/restart) stops the worker first
    (it takes no new task and finishes or gives back the one it runs), and only once it
    has exited stops dockerd, so a build never runs on an engine that is going away.
    Before it starts, the worker waits until the operator has granted this host's broker
    user (named after the host, password /run/farm-secrets/redis-password) the keys of
    the builder it enrolled: until then Redis lets it PING and nothing else.
    dockerd and the worker each run in a session of their own: a signal to this
    script's process group reaches neither; this script alone orders them.
The worker runs only build tasks signed by the coordinator key in
\$FARM_BUILDER_COORDINATOR_KEY (public/coordinator.pub, mounted read-only; ADR 41) and
refuses to start without it.
Environment: FARM_HOME, FARM_REDIS_URL, FARM_COORDINATOR_URL, FARM_BUILDER_IMAGE_ID,
FARM_BUILDER_COORDINATOR_KEY.
USAGE
    exit 0
fi

say() { printf 'builder.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
: "${FARM_HOME:?FARM_HOME must be set}"
: "${FARM_COORDINATOR_URL:?FARM_COORDINATOR_URL must be set}"
: "${FARM_BUILDER_IMAGE_ID:?FARM_BUILDER_IMAGE_ID must be set}"
: "${FARM_BUILDER_COORDINATOR_KEY:?FARM_BUILDER_COORDINATOR_KEY must be set}"
[[ -r $FARM_BUILDER_COORDINATOR_KEY ]] || die "no coordinator key at $FARM_BUILDER_COORDINATOR_KEY"
as_farm() { runuser -u farm -- env HOME=/home/farm "$@"; }

# 1. The host's own engine. No bridge and no iptables: builds run with no network.
rm -f /var/run/docker.pid /var/run/docker.sock
setsid dockerd --group farm --bridge none --iptables=false --ip-masq=false \
    >>/var/log/dockerd.log 2>&1 &
dockerd_pid=$!
for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited: $(tail -n 20 /var/log/dockerd.log)"
    sleep 0.5
done
docker info >/dev/null 2>&1 || die "dockerd did not answer in 60 s: $(tail -n 20 /var/log/dockerd.log)"
say "Docker Engine up ($(docker info --format '{{.Driver}}') storage)"

# 2. The pinned builder image, loaded from the archive, checked by ID.
if ! docker image inspect "$FARM_BUILDER_IMAGE_ID" >/dev/null 2>&1; then
    say "loading the builder image from /opt/farm-builder-image.tar"
    loaded=$(docker load -q -i /opt/farm-builder-image.tar) || die "docker load failed"
    say "$loaded"
fi
got=$(docker image inspect --format '{{.Id}}' "$FARM_BUILDER_IMAGE_ID" 2>/dev/null || true)
if [[ $got != "$FARM_BUILDER_IMAGE_ID" ]]; then
    die "the builder image archive is not the pinned image: pinned $FARM_BUILDER_IMAGE_ID," \
        "loaded $(docker images --no-trunc --format '{{.ID}}' | tr '\n' ' ')"
fi
say "builder image $FARM_BUILDER_IMAGE_ID present"

# 3. Identity once, enrollment once.
if [[ ! -f $FARM_HOME/key.pem ]]; then
    as_farm farm builder init --home "$FARM_HOME"
fi
id=$(as_farm farm builder id --home "$FARM_HOME")
if [[ ! -f $FARM_HOME/enrolled ]]; then
    token=/run/farm-secrets/token
    until [[ -s $token ]]; do
        say "builder $id waits for its enrollment token ($token)"
        sleep 2
    done
    # The coordinator may still be starting: a refused connection leaves the token unused.
    for attempt in $(seq 60); do
        as_farm farm builder enroll --coordinator "$FARM_COORDINATOR_URL" \
            --token "$(<"$token")" --home "$FARM_HOME" && break
        ((attempt < 60)) || die "could not enroll with $FARM_COORDINATOR_URL"
        sleep 3
    done
    as_farm sh -c 'printf "%s\n" "$1" > "$2"' sh "$id" "$FARM_HOME/enrolled"
fi

# This host's own broker user (its password never in the compose file or on a command
# line), then wait for the operator's grant of its builder's keys.
redis_password=$(</run/farm-secrets/redis-password) || die "no readable /run/farm-secrets/redis-password"
FARM_REDIS_URL="rediss://$(hostname):${redis_password}@${FARM_REDIS_URL#rediss://}"
export FARM_REDIS_URL
until as_farm /opt/farm/bin/python -c '
import os, sys, redis
redis.Redis.from_url(os.environ["FARM_REDIS_URL"], socket_timeout=5).exists(sys.argv[1])
' "farm:builders:$id" 2>/dev/null; do
    say "builder $id waits for the operator to grant its broker keys"
    sleep 2
done

# 4. The worker, until stopped. A TERM before this point ends the script at once (bash's
# default), which is right: no worker has taken a task yet.
# Started by setsid and setpriv, which exec (runuser stays as a parent that answers
# SIGTERM by SIGKILLing its child 2 s later, which cut the worker's warm shutdown short),
# written out here rather than through a function (a function run with & is a subshell
# of its own, whose pid "$!" would be): "$!" is the worker itself, in a session of its
# own, and only stop() below signals it.
setsid setpriv --reuid=farm --regid=farm --init-groups env HOME=/home/farm \
    farm builder run --home "$FARM_HOME" --image "$FARM_BUILDER_IMAGE_ID" \
    --metrics-address 0.0.0.0:9100 &
worker_pid=$!
# wait_for PID: until it has exited (a trapped signal interrupts "wait"; wait again).
wait_for() {
    while kill -0 "$1" 2>/dev/null; do
        wait "$1" 2>/dev/null
    done
}
stop() {
    trap '' TERM INT  # a second TERM (docker stop after docker restart) changes nothing
    say "stopping: the worker first (warm shutdown), then dockerd"
    kill -TERM "$worker_pid" 2>/dev/null
    wait_for "$worker_pid"
    say "worker stopped; stopping dockerd"
    kill -TERM "$dockerd_pid" 2>/dev/null
    wait_for "$dockerd_pid"
    say "dockerd stopped"
    exit 0
}
trap stop TERM INT
set +e
wait -n "$worker_pid" "$dockerd_pid"
status=$?
# Either one gone stops the host; the worker still goes first (a dockerd that exited on
# its own has already failed any build the worker runs: signed as this host's failure).
say "worker or dockerd exited ($status); stopping the host"
trap '' TERM INT
kill -TERM "$worker_pid" 2>/dev/null
wait_for "$worker_pid"
kill -TERM "$dockerd_pid" 2>/dev/null
wait_for "$dockerd_pid"
exit $((status == 0 ? 1 : status))
