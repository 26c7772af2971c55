"""A tiny in-process TTL cache for the hot path (keys, targets, wallets; prices and exchange
rates with their own setting).

Per process, no locks: a dict get/set is atomic under the GIL and a lost race only means one
extra database read. Entries live the seconds of `ttl_setting` (`KT_KEY_CACHE_SECONDS` unless
given; 0: nothing kept), so a revoked key, a new target or a price change is seen within seconds
without a database round trip per request.
"""

import time

from django.conf import settings

_MISSING = object()


class TTLCache:
    def __init__(self, max_entries: int = 10_000, ttl_setting: str = "KT_KEY_CACHE_SECONDS"):
        self._data: dict = {}
        self._max = max_entries
        self._ttl_setting = ttl_setting

    def get(self, key, loader):
        """The cached value for `key`, else `loader()` (cached too, None included)."""
        hit = self._data.get(key, _MISSING)
        now = time.monotonic()
        if hit is not _MISSING and hit[0] > now:
            return hit[1]
        value = loader()
        ttl = getattr(settings, self._ttl_setting)
        if ttl > 0:
            if len(self._data) >= self._max:
                self._data.clear()  # crude but bounded: a flood of bad keys cannot grow memory
            self._data[key] = (now + ttl, value)
        return value

    def clear(self):
        self._data.clear()


_caches: list[TTLCache] = []


def ttl_cache(max_entries: int = 10_000) -> TTLCache:
    cache = TTLCache(max_entries)
    _caches.append(cache)
    return cache


def clear_all():
    """Forget everything cached (tests; after a config apply in the same process)."""
    for cache in _caches:
        cache.clear()
