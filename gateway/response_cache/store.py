"""The store behind the response cache, chosen once per process, and what happens without it.

Redis when KT_RESPONSE_CACHE_URL is set (by default REDIS_URL), else the embedded SQLite file
(KT_RESPONSE_CACHE_PATH). Both bound each organization's entries to KT_RESPONSE_CACHE_MAX_BYTES.

Without its store (Redis down, or slower than KT_RESPONSE_CACHE_TIMEOUT) the cache steps aside:
the request goes to the provider as if the group had no cache (`x-kt-cache: bypass`), never a
500. After a failure this process leaves the store alone for KT_RESPONSE_CACHE_RETRY_SECONDS,
so an outage costs one timeout per process and interval; a warning is logged when the store
goes away and when it is back.
"""

import logging
import threading
from collections.abc import Callable

from django.conf import settings

from gateway.response_cache import store_embedded, store_redis
from gateway.store_health import StoreHealth, StoreUnavailable

log = logging.getLogger(__name__)

_ERRORS = store_redis.ERRORS + store_embedded.ERRORS


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.store = None
        self.health = StoreHealth(
            name="response cache store",
            retry_setting="KT_RESPONSE_CACHE_RETRY_SECONDS",
            meaning="requests go to their provider uncached until it is back",
            log=log,
        )


_state = _State()


def response_store():
    """This process's store (created on first use)."""
    store = _state.store
    if store is None:
        with _state.lock:
            if _state.store is None:
                _state.store = _make_store()
            store = _state.store
    return store


def _make_store():
    max_bytes = settings.KT_RESPONSE_CACHE_MAX_BYTES
    if settings.KT_RESPONSE_CACHE_URL:
        return store_redis.RedisStore(
            settings.KT_RESPONSE_CACHE_URL,
            timeout=settings.KT_RESPONSE_CACHE_TIMEOUT,
            max_bytes=max_bytes,
        )
    return store_embedded.EmbeddedStore(settings.KT_RESPONSE_CACHE_PATH, max_bytes=max_bytes)


def response_store_reset() -> None:
    """Forget the store and its health (tests; after the settings changed)."""
    global _state
    _state = _State()


def store_call(call: Callable):
    """`call(store)`, or StoreUnavailable."""
    health = _state.health
    health.check()
    try:
        result = call(response_store())
    except _ERRORS as exc:
        health.failed(exc)
        raise StoreUnavailable from exc
    health.succeeded()
    return result
