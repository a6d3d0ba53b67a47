"""The cache is an optimization (config/cache.py): with its Redis down reads miss, writes are dropped, nothing
raises to the caller, and one failure stops further attempts for a moment; invalidations raise inside
``cache_errors_raise`` so the outbox retries them. Locks live in the database (config/locks.py)."""

import psycopg
import pytest
from django.core.cache import cache
from django.core.management.base import CommandError
from django.db import connection
from redis.exceptions import ConnectionError as RedisConnectionError

from config import cache as degrading
from config.cache import cache_errors_raise, cache_errors_total
from config.commands import exclusive
from config.locks import _file_lock, advisory_key

# Nothing listens on this port of the suite's range: a cache whose Redis is down.
DEAD_REDIS = "redis://127.0.0.1:8217/0"


def _cache_at(settings, location: str) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.DegradingRedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
        }
    }


@pytest.fixture
def fresh_health(monkeypatch):
    monkeypatch.setattr(degrading, "health", degrading._Health())


@pytest.fixture
def cache_down(settings, fresh_health):
    _cache_at(settings, DEAD_REDIS)


def test_reads_miss_and_writes_are_dropped_while_redis_is_down(cache_down):
    before = cache_errors_total()
    assert cache.get("k", "fallback") == "fallback"
    assert cache_errors_total() == before + 1
    # Within the retry interval nothing more is attempted, and nothing raises.
    cache.set("k", 1, 30)
    assert cache.add("k", 1) is False
    assert cache.get_many(["a", "b"]) == {}
    assert cache.delete("k") is False
    cache.delete_many(["a", "b"])
    assert cache.has_key("k") is False
    assert cache_errors_total() == before + 1


def test_each_call_tries_again_after_the_retry_interval(cache_down, monkeypatch):
    monkeypatch.setattr(degrading, "RETRY_AFTER_SECONDS", 0.0)
    before = cache_errors_total()
    cache.get("a")
    cache.set("a", 1)
    assert cache_errors_total() == before + 2


def test_invalidations_raise_so_that_the_outbox_retries_them(cache_down):
    cache.get("warm-the-breaker")
    with pytest.raises(RedisConnectionError), cache_errors_raise():
        cache.delete("k")  # tried even though the breaker is open


def test_a_live_redis_is_used_as_usual(settings, fresh_health):
    import os

    _cache_at(settings, os.environ.get("REDIS_URL") or pytest.skip("REDIS_URL is not set"))
    cache.set("degrading-live", {"n": 1}, 30)
    assert cache.get("degrading-live") == {"n": 1}
    with cache_errors_raise():
        assert cache.delete("degrading-live") is True


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_command_lock_is_a_postgresql_advisory_lock_and_needs_no_cache(cache_down):
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [advisory_key("dossier-command:held-elsewhere")])
        with pytest.raises(CommandError), exclusive("held-elsewhere"):
            pass
        other.execute("SELECT pg_advisory_unlock(%s)", [advisory_key("dossier-command:held-elsewhere")])
    with exclusive("held-elsewhere"):
        pass


def test_without_postgresql_a_file_lock_stands_in(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with _file_lock("job") as held:
        assert held
        with _file_lock("job") as again:
            assert not again
        with _file_lock("other-job") as other:
            assert other
    with _file_lock("job") as held:
        assert held
