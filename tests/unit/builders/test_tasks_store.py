"""Storing a finished build's result while Redis is away (:func:`builders.tasks.store_result`).

A build that ended while the broker restarted keeps its result: the store is tried
again until Redis answers, within a bound; past the bound the caller still gets to
deliver (None). A result another attempt stored first wins. Fake Redis client.
"""

from __future__ import annotations

import redis

from builders.tasks import completions_key, result_key, store_result


class FlakyRedis:
    """Refuses ``failures`` calls with ConnectionError, then behaves like Redis SET NX."""

    def __init__(self, failures: int = 0, stored: dict[str, str] | None = None) -> None:
        self.failures = failures
        self.data: dict[str, str] = dict(stored or {})
        self.counts: dict[str, int] = {}

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise redis.ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool:
        self._maybe_fail()
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    def get(self, key: str) -> bytes | None:
        self._maybe_fail()
        value = self.data.get(key)
        return value.encode() if value is not None else None

    def incr(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def expire(self, key: str, seconds: int) -> bool:
        return True


def test_the_result_is_stored_once_redis_answers_again() -> None:
    client = FlakyRedis(failures=3)
    got = store_result(client, "build-1", "b" * 64, '{"r": 1}', within=5, pause=0.01)  # type: ignore[arg-type]
    assert got == '{"r": 1}'
    assert client.data[result_key("build-1", "b" * 64)] == '{"r": 1}'
    assert client.counts[completions_key("build-1", "b" * 64)] == 1


def test_past_the_bound_the_caller_is_told_nothing_was_stored() -> None:
    client = FlakyRedis(failures=10**6)
    got = store_result(client, "build-1", "b" * 64, '{"r": 1}', within=0.05, pause=0.01)  # type: ignore[arg-type]
    assert got is None and client.data == {}


def test_a_result_stored_first_by_another_attempt_wins() -> None:
    key = result_key("build-1", "b" * 64)
    client = FlakyRedis(failures=1, stored={key: '{"r": 0}'})
    got = store_result(client, "build-1", "b" * 64, '{"r": 1}', within=5, pause=0.01)  # type: ignore[arg-type]
    assert got == '{"r": 0}' and client.counts == {}
