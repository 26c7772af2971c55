"""The response cache's stores: bounded per organization and evicting (Redis and the embedded
SQLite store), one fill lock per key, and a gateway that steps aside while its store is away."""

import threading
import time

import pytest

from gateway.models import UsageEvent
from gateway.response_cache.store import response_store_reset
from gateway.response_cache.store_embedded import EmbeddedStore
from gateway.response_cache.store_redis import RedisStore
from tests.private_redis import PrivateRedis

from .conftest import cache_on, live_db

QUESTION = [{"role": "user", "content": "Is the cache still there?"}]


@pytest.fixture(params=["redis", "embedded"])
def small_store(request, tmp_path, settings):
    """A store that keeps at most 3,000 bytes per organization."""
    if request.param == "embedded":
        yield EmbeddedStore(str(tmp_path / "cache.sqlite3"), max_bytes=3000)
        return
    redis_server = PrivateRedis(tmp_path / "redis").start()
    yield RedisStore(redis_server.url(), timeout=1.0, max_bytes=3000)
    redis_server.stop()


def _get(store, key):
    found = store.lookup(key, token="t", lock_ms=1000, lock=False)
    return found if isinstance(found, bytes) else None


def test_an_organization_above_its_bound_loses_the_entries_closest_to_expiry(small_store):
    small_store.put("1:soon", b"a" * 1000, ttl_seconds=60)
    small_store.put("1:later", b"b" * 1000, ttl_seconds=600)
    small_store.put("2:other-org", b"c" * 2500, ttl_seconds=60)
    assert small_store.put("1:latest", b"d" * 1500, ttl_seconds=300) == 1
    assert _get(small_store, "1:soon") is None
    assert _get(small_store, "1:later") == b"b" * 1000
    assert _get(small_store, "1:latest") == b"d" * 1500
    assert _get(small_store, "2:other-org") == b"c" * 2500  # another organization's bound
    assert small_store.stored_bytes(1) == 2500
    assert small_store.stored_bytes(2) == 2500


def test_replacing_an_entry_books_its_new_size_only(small_store):
    small_store.put("1:k", b"x" * 2000, ttl_seconds=60)
    small_store.put("1:k", b"y" * 500, ttl_seconds=60)
    assert small_store.stored_bytes(1) == 500
    assert _get(small_store, "1:k") == b"y" * 500


def test_expired_entries_are_gone_and_leave_the_books(small_store):
    small_store.put("1:short", b"s" * 1000, ttl_seconds=1)
    deadline = time.monotonic() + 5
    while _get(small_store, "1:short") is not None:  # the store's own clock decides
        assert time.monotonic() < deadline
        time.sleep(0.05)
    small_store.put("1:next", b"n" * 100, ttl_seconds=60)
    assert small_store.stored_bytes(1) == 100


def test_one_caller_gets_a_keys_fill_lock_until_it_stores_or_releases(small_store, tmp_path):
    other = small_store
    if isinstance(small_store, EmbeddedStore):  # another process: its own connection
        other = EmbeddedStore(small_store.path, max_bytes=3000)
    assert small_store.lookup("1:q", token="first", lock_ms=5000, lock=True) is True
    assert other.lookup("1:q", token="second", lock_ms=5000, lock=True) is False
    assert other.poll("1:q") is True  # somebody fills it
    small_store.release("1:q", "second")  # not the holder's token: nothing happens
    assert other.poll("1:q") is True
    small_store.put("1:q", b"reply", ttl_seconds=60, token="first")
    assert other.poll("1:q") == b"reply"
    assert other.lookup("1:q", token="third", lock_ms=5000, lock=True) == b"reply"


def test_concurrent_lockers_of_the_embedded_store_get_one_lock(tmp_path):
    path = str(tmp_path / "cache.sqlite3")
    barrier = threading.Barrier(8)
    results = []

    def take(n):
        store = EmbeddedStore(path, max_bytes=10_000)
        barrier.wait()
        results.append(store.lookup("1:same", token=f"t{n}", lock_ms=5000, lock=True))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


@live_db
def test_the_gateway_caches_with_the_embedded_store_when_there_is_no_redis(
    gw, oai, settings, tmp_path
):
    settings.KT_RESPONSE_CACHE_URL = ""
    settings.KT_RESPONSE_CACHE_PATH = str(tmp_path / "demo-cache.sqlite3")
    response_store_reset()
    try:
        cache_on(gw.org)
        first = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=QUESTION)
        second = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=QUESTION)
    finally:
        response_store_reset()
    assert (first.headers["x-kt-cache"], second.headers["x-kt-cache"]) == ("miss", "hit")
    assert (tmp_path / "demo-cache.sqlite3").exists()


@live_db
def test_while_its_store_is_away_the_gateway_serves_every_request_uncached(
    gw, oai, settings, tmp_path
):
    redis_server = PrivateRedis(tmp_path / "redis").start()
    settings.KT_RESPONSE_CACHE_URL = redis_server.url()
    settings.KT_RESPONSE_CACHE_RETRY_SECONDS = 0  # try the store again at once, each request
    settings.KT_RESPONSE_CACHE_LOCAL_SECONDS = 0  # no copies in memory: every lookup asks Redis
    response_store_reset()

    def ask():
        return oai.chat.completions.with_raw_response.create(model="fake-chat", messages=QUESTION)

    try:
        cache_on(gw.org)
        assert ask().headers["x-kt-cache"] == "miss"
        assert ask().headers["x-kt-cache"] == "hit"
        redis_server.stop()
        away = ask()
        assert away.status_code == 200
        assert away.headers["x-kt-cache"] == "bypass"
        assert away.parse().choices[0].message.content
        redis_server.start()
        assert ask().headers["x-kt-cache"] == "miss"  # a restarted cache starts empty
        assert ask().headers["x-kt-cache"] == "hit"
    finally:
        redis_server.stop()
        response_store_reset()
    statuses = [e.status for e in UsageEvent.objects.order_by("id")]
    assert statuses == ["ok", "cache_hit", "ok", "ok", "cache_hit"]
    assert all(e.cost > 0 for e in UsageEvent.objects.filter(status="ok"))
