"""A few seconds of catalog rows in process, so the gateway prices and converts a request
without a query (gateway/pricing.py's prices, gateway/exchange.py's rates).

The rows of a key are kept for KT_PRICE_CACHE_SECONDS (0: never kept) and the one in force is
picked by the caller in Python, so a change effective mid-month is still exact. A row saved in
another process takes effect here within that time; a save in this process clears the cache
(each user connects `clear` to its model's signals). Bounded: past `max_keys` keys it starts over.
"""

from time import monotonic

from django.conf import settings


class RowCache:
    def __init__(self, max_keys: int = 10_000):
        self._entries: dict[tuple, tuple[float, list]] = {}
        self._max_keys = max_keys

    def get(self, key: tuple, load) -> list:
        """The cached rows of `key`, else `load()`'s (kept for next time)."""
        now = monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        rows = load()
        ttl = getattr(settings, "KT_PRICE_CACHE_SECONDS", 5)
        if ttl > 0:
            if len(self._entries) >= self._max_keys:
                self._entries.clear()
            self._entries[key] = (now + ttl, rows)
        return rows

    def clear(self, **_signal_kwargs) -> None:
        self._entries.clear()
