"""Mirror committed artifacts' bytes from the coordinator's staging store.

For each wanted digest the worker streams ``GET {coordinator}/v1/staging/sha256/{digest}``
into the :class:`~api.distribution.blobs.BlobStore`, hashing as it goes; the blob is published
only if its sha256 is the committed digest and it is exactly as long as the builders
signed (a longer stream is cut off as soon as it overruns). A failure is retried with
exponential back-off (capped), and logged; nothing the coordinator says is trusted.
A digest already on disk is never fetched again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from api.distribution.blobs import BlobStore
from api.distribution.errors import MirrorError

__all__ = ["Mirror", "fetch_blob"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def fetch_blob(
    client: httpx.Client, base_url: str, store: BlobStore, digest: str, size: int
) -> int:
    """Download one blob into ``store``; return its size.

    Raises:
        MirrorError: the coordinator does not have it, answers an error, the
            connection fails, or the bytes are not ``digest`` / not ``size`` long.
    """
    url = f"{base_url}/v1/staging/sha256/{digest}"
    started = time.monotonic()
    try:
        with client.stream("GET", url) as response:
            if response.status_code == 404:
                raise MirrorError(f"sha256:{digest[:12]}… is not in the coordinator's staging")
            if response.status_code != 200:
                raise MirrorError(
                    f"sha256:{digest[:12]}…: coordinator answered HTTP {response.status_code}"
                )
            with store.writer(digest, size) as writer:
                next_report = started + 5.0
                for chunk in response.iter_bytes(_CHUNK):
                    writer.write(chunk)
                    now = time.monotonic()
                    if now >= next_report:
                        next_report = now + 5.0
                        log.info(
                            "mirroring sha256:%s… %s of %s",
                            digest[:12],
                            _mb(writer.size),
                            _mb(size),
                        )
                writer.commit()
    except httpx.HTTPError as exc:
        raise MirrorError(f"sha256:{digest[:12]}…: {type(exc).__name__}: {exc}") from None
    elapsed = max(time.monotonic() - started, 1e-6)
    log.info(
        "mirrored sha256:%s… (%s in %.2f s, %.1f MB/s)",
        digest[:12],
        _mb(size),
        elapsed,
        size / elapsed / 1e6,
    )
    return size


@dataclass
class _Pending:
    size: int
    attempts: int = 0
    next_at: float = 0.0


class Mirror:
    """A worker thread that fetches wanted blobs until each is stored (or unwanted)."""

    def __init__(
        self,
        store: BlobStore,
        coordinator_url: str,
        on_stored: Callable[[str], None],
        *,
        retry_max: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.coordinator_url = coordinator_url
        self.on_stored = on_stored
        self.retry_max = retry_max
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.fetched = 0
        """Blobs downloaded by this process (restarts resume without re-downloading)."""

    def want(self, digest: str, size: int) -> None:
        """Fetch ``digest`` unless it is already stored or queued."""
        if self.store.size_of(digest) == size:
            return
        with self._cond:
            if digest not in self._pending:
                self._pending[digest] = _Pending(size)
                self._cond.notify()

    def drop(self, digest: str) -> None:
        """Stop wanting ``digest`` (e.g. it was revoked)."""
        with self._cond:
            self._pending.pop(digest, None)

    @property
    def pending(self) -> int:
        """Blobs still to fetch."""
        with self._cond:
            return len(self._pending)

    def start(self) -> None:
        """Run the worker in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="dist-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to stop and wait for it (an in-flight download is abandoned
        at its next chunk by the client timeout at worst)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    def _next(self) -> tuple[str, _Pending] | None:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                ready = [(p.next_at, d) for d, p in self._pending.items() if p.next_at <= now]
                if ready:
                    digest = min(ready)[1]
                    return digest, self._pending[digest]
                soonest = min((p.next_at for p in self._pending.values()), default=None)
                self._cond.wait(None if soonest is None else max(soonest - now, 0.01))
            return None

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while (item := self._next()) is not None:
                digest, pending = item
                try:
                    if self.store.size_of(digest) != pending.size:
                        fetch_blob(client, self.coordinator_url, self.store, digest, pending.size)
                        self.fetched += 1
                except MirrorError as exc:
                    pending.attempts += 1
                    delay = min(self.retry_max, 0.25 * 2**pending.attempts)
                    pending.next_at = time.monotonic() + delay
                    log.warning(
                        "mirror attempt %d failed, retrying in %.1f s: %s",
                        pending.attempts,
                        delay,
                        exc,
                    )
                    continue
                except OSError as exc:
                    pending.attempts += 1
                    pending.next_at = time.monotonic() + self.retry_max
                    log.error("cannot store sha256:%s…: %s", digest[:12], exc)
                    continue
                with self._cond:
                    self._pending.pop(digest, None)
                    left = len(self._pending)
                log.info("%d blob(s) left to mirror", left)
                self.on_stored(digest)
