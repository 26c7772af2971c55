"""The replies this process read from or wrote to Redis lately, kept in its memory: a request
repeated within KT_RESPONSE_CACHE_LOCAL_SECONDS is answered without the store's round trip.

A local copy never outlives its entry (its expiry is the entry's remaining TTL when shorter),
so what it can serve that Redis no longer would is only an entry that Redis evicted for size or
that a `Cache-Control: no-cache` request in another process replaced, for at most
KT_RESPONSE_CACHE_LOCAL_SECONDS. The copies are bounded by KT_RESPONSE_CACHE_LOCAL_MAX_BYTES per
process, the least recently used going first. Keys are the store's (organization and digest),
so a copy is only ever served to the scope that stored it.
"""

import threading
import time
from collections import OrderedDict


class RecentEntries:
    def __init__(self, *, seconds: float, max_bytes: int):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[1] <= time.monotonic():
                self._forget(key)
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: str, value: bytes, *, ttl_ms: int) -> None:
        """Keep `value` for the shorter of its remaining TTL and `seconds`."""
        keep = min(self.seconds, ttl_ms / 1000)
        if keep <= 0 or len(value) > self.max_bytes:
            return
        with self._lock:
            self._forget(key)
            self._entries[key] = (value, time.monotonic() + keep)
            self._bytes += len(value)
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._entries)))

    def forget(self, key: str) -> None:
        with self._lock:
            self._forget(key)

    def _forget(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= len(found[0])
