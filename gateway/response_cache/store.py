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
import time
from collections.abc import Callable

from django.conf import settings

from gateway.response_cache import store_embedded, store_redis

log = logging.getLogger(__name__)

_ERRORS = store_redis.ERRORS + store_embedded.ERRORS


class StoreUnavailable(Exception):
    """The store failed just now, or failed recently and is being left alone."""


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.store = None
        self.down_since: float | None = None
        self.retry_at = 0.0


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
    state = _state
    if state.down_since is not None and time.monotonic() < state.retry_at:
        raise StoreUnavailable
    try:
        result = call(response_store())
    except _ERRORS as exc:
        now = time.monotonic()
        with state.lock:
            first = state.down_since is None
            if first:
                state.down_since = now
            state.retry_at = now + settings.KT_RESPONSE_CACHE_RETRY_SECONDS
        if first:
            log.warning(
                "response cache store unavailable (%s: %s): requests go to their provider "
                "uncached until it is back",
                type(exc).__name__,
                exc,
            )
        raise StoreUnavailable from exc
    if state.down_since is not None:
        with state.lock:
            since, state.down_since = state.down_since, None
        if since is not None:
            log.warning(
                "response cache store available again after %.1f s", time.monotonic() - since
            )
    return result
