"""The Redis store keeps the replies its process read or wrote lately in memory: a repeated
request skips the round trip, but never past the entry's TTL nor the local bound, and this
process forgets its copies of entries it evicted."""

import time

import pytest
import redis

from gateway.response_cache.store_redis import RedisStore
from tests.private_redis import PrivateRedis


@pytest.fixture
def redis_server(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def _store(server, settings, *, seconds, max_bytes=16_000, org_bytes=100_000):
    settings.KT_RESPONSE_CACHE_LOCAL_SECONDS = seconds
    settings.KT_RESPONSE_CACHE_LOCAL_MAX_BYTES = max_bytes
    return RedisStore(server.url(), timeout=1.0, max_bytes=org_bytes)


def _get(store, key):
    found = store.lookup(key, token="t", lock_ms=1000, lock=False)
    return found if isinstance(found, bytes) else None


def test_a_reply_read_lately_is_answered_without_redis_until_its_local_time_is_up(
    redis_server, settings
):
    writer = _store(redis_server, settings, seconds=0)  # another process: no local copies
    writer.put("1:q", b"reply", ttl_seconds=60)
    reader = _store(redis_server, settings, seconds=0.5)
    assert _get(reader, "1:q") == b"reply"  # from Redis, and kept
    redis_server.stop()
    assert _get(reader, "1:q") == b"reply"  # no round trip: Redis is gone
    time.sleep(0.6)
    with pytest.raises(redis.RedisError):
        _get(reader, "1:q")


def test_without_local_time_every_lookup_asks_redis(redis_server, settings):
    store = _store(redis_server, settings, seconds=0)
    store.put("1:q", b"reply", ttl_seconds=60)
    assert _get(store, "1:q") == b"reply"
    redis_server.stop()
    with pytest.raises(redis.RedisError):
        _get(store, "1:q")


def test_a_local_copy_never_outlives_its_entry(redis_server, settings):
    writer = _store(redis_server, settings, seconds=0)
    writer.put("1:short", b"s" * 10, ttl_seconds=1)
    reader = _store(redis_server, settings, seconds=30)
    assert _get(reader, "1:short") == b"s" * 10  # kept for what is left of its TTL only
    time.sleep(1.1)
    assert _get(reader, "1:short") is None


def test_local_copies_are_bounded_the_least_recently_used_going_first(redis_server, settings):
    store = _store(redis_server, settings, seconds=30, max_bytes=2500)
    store.put("1:a", b"a" * 1000, ttl_seconds=60)
    store.put("1:b", b"b" * 1000, ttl_seconds=60)
    assert _get(store, "1:a") == b"a" * 1000  # a used last: b goes when c comes
    store.put("1:c", b"c" * 1000, ttl_seconds=60)
    redis_server.stop()
    assert _get(store, "1:a") == b"a" * 1000
    assert _get(store, "1:c") == b"c" * 1000
    with pytest.raises(redis.RedisError):
        _get(store, "1:b")


def test_entries_this_process_evicts_are_not_served_from_its_memory(redis_server, settings):
    store = _store(redis_server, settings, seconds=30, org_bytes=2500)
    store.put("1:soon", b"a" * 1000, ttl_seconds=60)
    store.put("1:later", b"b" * 1000, ttl_seconds=600)
    assert store.put("1:latest", b"d" * 1000, ttl_seconds=300) == 1
    assert _get(store, "1:soon") is None
    assert _get(store, "1:later") == b"b" * 1000
