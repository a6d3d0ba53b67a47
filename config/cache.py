"""The cache is an optimization: with its Redis down every path still works, only slower (docs/operations.md,
"Cache down").

``DegradingRedisCache`` is Django's Redis backend whose reads miss and whose writes are dropped when Redis cannot
be reached: the error is logged (at most once per ``LOG_EVERY_SECONDS`` per process, with the count since) and
counted, never raised to the request. After a failure the backend stops trying for ``RETRY_AFTER_SECONDS``, so an
outage costs one connection attempt per process and interval, not one per cache call.

An invalidation must not be dropped: it is sent through the transactional outbox (governance/services/outbox.py),
whose handlers run inside :func:`cache_errors_raise`, where the backend raises as usual and the outbox retries the
invalidation until Redis answers. Locks and counters that matter live in the database (config/locks.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2.0
LOG_EVERY_SECONDS = 30.0
# What an unreachable, timing-out or refusing (read-only replica, out of memory) Redis raises.
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

_raise_errors: ContextVar[bool] = ContextVar("dossier_cache_errors_raise", default=False)
T = TypeVar("T")


@contextmanager
def cache_errors_raise() -> Iterator[None]:
    """Within this block the cache raises its errors instead of degrading: for invalidations that are retried."""
    token = _raise_errors.set(True)
    try:
        yield
    finally:
        _raise_errors.reset(token)


class _Health:
    """Per-process record of cache failures: when to try again, and how many to report in the next log line."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.errors_total = 0
        self.unlogged = 0
        self.logged_at = 0.0

    def skipping(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self.lock:
            self.down_until = now + RETRY_AFTER_SECONDS
            self.errors_total += 1
            self.unlogged += 1
            if now - self.logged_at < LOG_EVERY_SECONDS:
                return
            count, self.unlogged, self.logged_at = self.unlogged, 0, now
        logger.warning(
            "cache unavailable, degrading (%s: %s); %d cache error(s) since the last report",
            operation,
            exc.__class__.__name__,
            count,
            extra={"cache_operation": operation, "cache_errors": count},
        )


health = _Health()


def cache_errors_total() -> int:
    """Cache errors this process has absorbed since it started."""
    return health.errors_total


class DegradingRedisCache(RedisCache):
    """``RedisCache`` that misses and drops instead of failing while Redis is unreachable."""

    def _degrade(self, operation: str, call: Callable[[], T], fallback: T) -> T:
        strict = _raise_errors.get()
        if not strict and health.skipping():
            return fallback
        try:
            return call()
        except CACHE_ERRORS as exc:
            health.failed(operation, exc)
            if strict:
                raise
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._degrade("add", lambda: super(DegradingRedisCache, self).add(key, value, timeout, version), False)

    def get(self, key, default=None, version=None) -> Any:
        return self._degrade("get", lambda: super(DegradingRedisCache, self).get(key, default, version), default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        self._degrade("set", lambda: super(DegradingRedisCache, self).set(key, value, timeout, version), None)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._degrade("touch", lambda: super(DegradingRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key, version=None) -> bool:
        return self._degrade("delete", lambda: super(DegradingRedisCache, self).delete(key, version), False)

    def get_many(self, keys, version=None) -> dict[str, Any]:
        return self._degrade("get_many", lambda: super(DegradingRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None) -> bool:
        return self._degrade("has_key", lambda: super(DegradingRedisCache, self).has_key(key, version), False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None) -> list:
        return self._degrade(
            "set_many", lambda: super(DegradingRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def delete_many(self, keys, version=None) -> None:
        self._degrade("delete_many", lambda: super(DegradingRedisCache, self).delete_many(keys, version), None)

    def clear(self) -> None:
        self._degrade("clear", lambda: super(DegradingRedisCache, self).clear(), None)
