"""Give a restarted builder back the task its killed process was running.

Celery acknowledges a build only when it ends (ADR 0003), so a builder killed in the
middle of a build leaves its task in the broker's ``unacked`` hash, where Redis would
keep it until the visibility timeout (hours) has passed. A builder is the only
consumer of its own queue, and it starts only once no other live process serves its
identity (:func:`builders.worker.run_worker` checks that first), so a task on its
queue still unacknowledged when it starts was taken by a dead process of this very
builder: it is put back at the head of the queue at once, and the builder runs it
again (building it, or returning the result a finished attempt stored, which the
idempotency key makes the same thing).
"""

from __future__ import annotations

import json
import logging
from typing import cast

from celery import Celery
from kombu.transport import redis as redis_transport

from farm.errors import ConfigError

__all__ = ["requeue_interrupted"]

logger = logging.getLogger(__name__)


def requeue_interrupted(app: Celery, queue: str) -> int:
    """Put the unacknowledged tasks taken from ``queue`` back on it; how many.

    Call it before the worker consumes, and only when no other live process serves
    ``queue``. Raises ConfigError if the broker is not Redis.
    """
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        if not isinstance(channel, redis_transport.Channel):
            raise ConfigError(f"the broker of {queue} is not Redis: cannot take back its tasks")
        client = channel.client
        tags = []
        # kombu prefixes the keys of the commands it uses itself, not HGETALL's: the
        # hash of this keyspace (``farm.queue.keyspace_of``) is named here in full.
        unacked = channel.global_keyprefix + channel.unacked_key
        for tag, raw in client.hgetall(unacked).items():
            try:
                _payload, _exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if routing_key == queue:
                tags.append(tag)
        qos = cast(redis_transport.QoS, channel.qos)  # a Redis channel's is always this
        for tag in tags:
            qos.restore_by_tag(tag, client=client, leftmost=True)
    if tags:
        logger.warning("took back %d task(s) an earlier process of this builder left", len(tags))
    return len(tags)
