"""The Celery application shared by whoever sends builds and the builders that run them.

Configured for builds that must never be lost or silently run twice: JSON only (never
pickle), late acknowledgement, reject on worker loss, prefetch 1, and a broker
visibility timeout longer than the longest build, so a task whose worker died is
delivered again only when no live worker can still be running it.

Between hosts the broker is reached over TLS: a ``rediss://`` URL, with the CA to trust
as its ``ssl_ca_certs`` query parameter (``rediss://redis:6379/0?ssl_ca_certs=/etc/farm/
ca.pem``; redis-py reads the same URL). The server's certificate is always verified:
kombu alone would take a ``rediss://`` URL without ``ssl_cert_reqs`` as "verify nothing",
so :func:`make_celery` sets ``broker_use_ssl`` and ``redis_backend_use_ssl`` itself, and
refuses a URL that asks for less than ``required`` (:func:`redis_tls`).

A builder may have a keyspace of its own (``keyprefix``, :func:`keyspace_of`): every key
and channel kombu and Celery's result backend use for it (its queue, ``unacked``,
``unacked_index``, bindings, task results and their notices) then starts with
``farm:b:<builder id>:``, so a Redis ACL user limited to that prefix can serve its queue
and reach nobody else's (ADR 43). Whoever sends it a task must use the same prefix.
Such an app has no remote control: its pidbox would PSUBSCRIBE to a pattern, which a
Redis ACL allows only when it is literally one of the user's channel patterns.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from celery import Celery

from farm.errors import ConfigError

__all__ = ["DEFAULT_VISIBILITY_TIMEOUT", "keyspace_of", "make_celery", "redis_tls"]

#: Longest recipe timeout (6 h) plus margin.
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600 + 600


def keyspace_of(builder_id: str) -> str:
    """The prefix of every broker key and channel of builder ``builder_id``'s own keyspace."""
    return f"farm:b:{builder_id}:"


def make_celery(
    redis_url: str, *, visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT, keyprefix: str = ""
) -> Celery:
    """A Celery app on ``redis_url`` (broker and result backend) with farm's delivery rules;
    with ``keyprefix``, in that keyspace alone (see the module docstring)."""
    tls = redis_tls(redis_url)
    # The TLS settings are given whole below: the URL's own ssl_* parameters would
    # replace them in kombu (dropping ssl_cert_reqs), so the URL goes without them.
    url = _without_ssl_params(redis_url) if tls is not None else redis_url
    app = Celery("farm", broker=url, backend=url)
    if tls is not None:
        app.conf.update(broker_use_ssl=tls, redis_backend_use_ssl=tls)
    transport: dict[str, object] = {
        "visibility_timeout": visibility_timeout,
        # Look for tasks of dead workers every second; they are restored only once
        # older than the visibility timeout.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    if keyprefix:
        transport["global_keyprefix"] = keyprefix
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 24 * 3600,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue="farm.unrouted",
        worker_send_task_events=False,
        broker_heartbeat=0,
        worker_enable_remote_control=not keyprefix,
    )
    return app


def redis_tls(redis_url: str) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for ``redis_url``: None for ``redis://``; for
    ``rediss://`` the server's certificate required, against the URL's ``ssl_ca_certs``
    (the system's CAs without it). ConfigError for ``ssl_cert_reqs`` other than
    ``required`` (a TLS link that accepts any certificate protects nothing)."""
    parts = urlsplit(redis_url)
    if parts.scheme != "rediss":
        return None
    query = {k: unquote(v[-1]) for k, v in parse_qs(parts.query).items()}
    reqs = query.get("ssl_cert_reqs", "required")
    if reqs.lower() not in ("required", "cert_required"):
        raise ConfigError(
            f"Redis URL asks for ssl_cert_reqs={reqs}: farm verifies the broker's "
            "certificate (drop the parameter, or give ssl_ca_certs=CA.pem)"
        )
    tls: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if query.get("ssl_ca_certs"):
        tls["ssl_ca_certs"] = query["ssl_ca_certs"]
    return tls


def _without_ssl_params(url: str) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if not k.startswith("ssl_")]
    return urlunsplit(parts._replace(query=urlencode(kept)))
