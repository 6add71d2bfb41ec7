"""Delivery of a signed result to the coordinator: outputs to staging, then the envelope.

Used only when the builder is configured with a coordinator (``FARM_COORDINATOR_URL``).
Every request is signed with the builder's key (:mod:`farm.coordinator.client`).
Transient failures (coordinator unreachable, a 5xx) are retried a bounded number of
times with exponential backoff; a refusal (the coordinator said no, with a reason) is
not retried but logged with that reason. Delivery never raises into the Celery task:
the result is already stored in Redis, and a resend is idempotent on both ends
(staging is content-addressed, an identical result is accepted once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from builders.store import ContentStore
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.errors import (
    AuthenticationError,
    ConflictError,
    CoordinatorError,
    EnrollmentError,
    NotFoundError,
    PermissionDeniedError,
    ResultRefusedError,
    StagingError,
)
from farm.errors import FarmError
from farm.keys import KeyPair
from farm.result import verify_result

__all__ = ["CoordinatorLink", "DeliveryReport"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Answers of the coordinator that a retry cannot change.
_REFUSALS: tuple[type[CoordinatorError], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    EnrollmentError,
    ConflictError,
    StagingError,
    ResultRefusedError,
    NotFoundError,
)


@dataclass
class DeliveryReport:
    """What became of one delivery."""

    uploaded: list[str] = field(default_factory=list)
    accepted: bool = False
    refused: str | None = None
    error: str | None = None


class CoordinatorLink:
    """This builder's signed connection to its coordinator, with bounded retries."""

    def __init__(
        self,
        url: str,
        key: KeyPair,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        client: CoordinatorClient | None = None,
    ) -> None:
        self.url = url
        self.key = key
        self.client = client or CoordinatorClient(url, key=key, timeout=timeout)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except _REFUSALS:
                raise
            except CoordinatorError as exc:
                if attempt == self.attempts:
                    raise
                logger.warning(
                    "%s failed (attempt %d/%d): %s; retrying in %.1fs",
                    what,
                    attempt,
                    self.attempts,
                    exc,
                    delay,
                )
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def heartbeat(self) -> None:
        """Tell the coordinator this builder is alive (one try: the next beat comes soon)."""
        try:
            self.client.heartbeat()
        except FarmError as exc:
            logger.warning("coordinator heartbeat failed: %s", exc)

    def deliver(self, envelope: dict[str, Any], store: ContentStore) -> DeliveryReport:
        """Upload the result's outputs and log from ``store``, then post the envelope.

        Never raises: the report says what was uploaded, and whether the result was
        accepted, refused (with the coordinator's reason) or could not be delivered.
        """
        report = DeliveryReport()
        try:
            predicate = verify_result(envelope, [self.key.public]).predicate
            digests = [o.sha256 for o in predicate.outputs]
            if predicate.log_sha256 and store.has(predicate.log_sha256):
                digests.append(predicate.log_sha256)
            for digest in dict.fromkeys(digests):
                data = store.get(digest).read_bytes()
                self._retry(f"upload of sha256:{digest[:16]}", partial(self.client.upload, data))
                report.uploaded.append(digest)
            self._retry(
                f"result of build {predicate.build_id}",
                lambda: self.client.post_result(predicate.build_id, envelope),
            )
            report.accepted = True
            logger.info(
                "result of build %s delivered to %s (%d blobs staged)",
                predicate.build_id,
                self.url,
                len(report.uploaded),
            )
        except _REFUSALS as exc:
            report.refused = str(exc)
            logger.error("coordinator refused the result: %s", exc)
        except (FarmError, OSError, KeyError) as exc:
            report.error = str(exc)
            logger.error("could not deliver the result to the coordinator: %s", exc)
        return report
