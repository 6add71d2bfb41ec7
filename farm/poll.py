"""Waiting for a condition with a deadline, polling with backoff: never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["poll"]

T = TypeVar("T")


def poll(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    *,
    first: float = 0.05,
    most: float = 0.5,
) -> T:
    """The first truthy value ``probe`` returns, polled from ``first`` s apart up to ``most``.

    Raises:
        TimeoutError: ``timeout`` seconds passed first; the message names ``what``.
    """
    deadline = time.monotonic() + timeout
    delay = first
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(delay)
        delay = min(delay * 1.5, most)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
