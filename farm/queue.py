"""The Celery application shared by whoever sends builds and the builders that run them.

Configured for builds that must never be lost or silently run twice: JSON only (never
pickle), late acknowledgement, reject on worker loss, prefetch 1, and a broker
visibility timeout longer than the longest build, so a task whose worker died is
delivered again only when no live worker can still be running it.
"""

from __future__ import annotations

from celery import Celery

__all__ = ["DEFAULT_VISIBILITY_TIMEOUT", "make_celery"]

#: Longest recipe timeout (6 h) plus margin.
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600 + 600


def make_celery(redis_url: str, *, visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT) -> Celery:
    """A Celery app on ``redis_url`` (broker and result backend) with farm's delivery rules."""
    app = Celery("farm", broker=redis_url, backend=redis_url)
    transport = {
        "visibility_timeout": visibility_timeout,
        # Look for tasks of dead workers every second; they are restored only once
        # older than the visibility timeout.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
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
    )
    return app
