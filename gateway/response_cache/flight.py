"""Single flight: identical requests that miss together reach the provider once.

Within a process, the first request for a key leads and the others wait on it (a thread event,
no store traffic). Across processes and instances, the leader asks the store for the entry and,
if there is none, for the key's fill lock in the same round trip: the process that gets it
calls the provider and stores the reply (which releases the lock); a leader that finds the lock
taken polls the store until the entry appears (5 ms, growing to 50 ms between polls) and shares
it with its own waiters. Nobody waits longer than KT_RESPONSE_CACHE_FILL_SECONDS, the lock's
lifetime too (a leader that died cannot block a key for longer).

When the filling request ends without a storable reply (a provider error, a client that went
away, a reply above `max_entry_bytes`), the waiters go to the provider each on their own,
uncoalesced: a failure is not retried in a queue, one request at a time.
"""

import secrets
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from gateway.response_cache.store import StoreUnavailable, store_call

FIRST_POLL = 0.005
MAX_POLL = 0.05


class _Flight:
    __slots__ = ("blob", "done")

    def __init__(self):
        self.done = threading.Event()
        self.blob: bytes | None = None


_flights: dict[str, _Flight] = {}
_lock = threading.Lock()


def _land(key: str, flight: _Flight, blob: bytes | None) -> None:
    """End this process's flight for `key`, handing `blob` (or nothing) to its waiters."""
    with _lock:
        if _flights.get(key) is flight:
            del _flights[key]
    flight.blob = blob
    flight.done.set()


@dataclass
class Lead:
    """This request fills the key: it holds the fill lock (`token`, empty when it fills
    uncoalesced) and, when it leads its process's flight, must land it (`flight`)."""

    key: str
    token: str = ""
    flight: _Flight | None = None

    def complete(self, blob: bytes | None, ttl_seconds: int) -> None:
        """Store `blob` (None: nothing storable) and wake the waiters. Never raises."""
        key, token = self.key, self.token
        try:
            if blob is not None:
                store_call(lambda s: s.put(key, blob, ttl_seconds=ttl_seconds, token=token))
            elif token:
                store_call(lambda s: s.release(key, token))
        except StoreUnavailable:
            pass  # not stored; this process's waiters still get the reply below
        finally:
            if self.flight is not None:
                _land(self.key, self.flight, blob)
                self.flight = None


def flight_join(key: str) -> tuple[bytes | None, Lead | None]:
    """The stored reply for `key` (bytes), or the Lead this request must fill, or neither
    (`(None, None)`: fill it uncoalesced, the leader's fill failed). Raises StoreUnavailable
    (this process's waiters then fill uncoalesced)."""
    wait = settings.KT_RESPONSE_CACHE_FILL_SECONDS
    with _lock:
        flight = _flights.get(key)
        leads = flight is None
        if leads:
            flight = _flights[key] = _Flight()
    if not leads:
        flight.done.wait(wait)
        return flight.blob, (None if flight.blob is not None else Lead(key))
    token = secrets.token_hex(8)
    try:
        found = store_call(
            lambda s: s.lookup(key, token=token, lock_ms=int(wait * 1000), lock=True)
        )
        if found is True:
            return None, Lead(key, token=token, flight=flight)
        blob = found if isinstance(found, bytes) else _poll(key, wait)
    except BaseException:
        _land(key, flight, None)
        raise
    _land(key, flight, blob)
    return blob, (None if blob is not None else Lead(key))


def _poll(key: str, wait: float) -> bytes | None:
    """Another process fills `key`: its entry once stored, None if it gave up (or took too
    long)."""
    deadline = time.monotonic() + wait
    delay = FIRST_POLL
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, MAX_POLL)
        found = store_call(lambda s: s.poll(key))
        if isinstance(found, bytes):
            return found
        if not found:
            return None
    return None
