"""A process's view of a store it can do without (the rate-limit store, the response cache's):
healthy, or down since a failure and left alone until a retry time, so an outage costs one
timeout per process and interval, not one per request. Logged when the store goes away (with
what that means for requests) and when it is back; what was done without it is counted."""

import logging
import threading
import time
from collections import Counter

from django.conf import settings

REPORT_SECONDS = 60.0


class StoreUnavailable(Exception):
    """The store failed just now, or failed recently and is being left alone."""


class StoreHealth:
    def __init__(self, *, name: str, retry_setting: str, meaning: str, log: logging.Logger):
        self.name, self.retry_setting, self.meaning, self.log = name, retry_setting, meaning, log
        self._lock = threading.Lock()
        self.down_since: float | None = None  # time.monotonic()
        self.retry_at = 0.0
        self.reported_at = 0.0
        self.counts: Counter = Counter()  # since the process started
        self.unreported: Counter = Counter()

    def check(self) -> None:
        """Raise StoreUnavailable while the store is being left alone."""
        if self.down_since is not None and time.monotonic() < self.retry_at:
            raise StoreUnavailable

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            self.retry_at = now + getattr(settings, self.retry_setting)
        if first:
            self.log.warning(
                "%s unavailable (%s: %s): %s", self.name, type(exc).__name__, exc, self.meaning
            )

    def succeeded(self) -> None:
        if self.down_since is None:  # the common case: no lock
            return
        with self._lock:
            if self.down_since is None:
                return
            seconds = time.monotonic() - self.down_since
            self.down_since = None
            counts, self.unreported = self.unreported, Counter()
        self.log.warning("%s available again after %.1f s (%s)", self.name, seconds, _text(counts))

    def count(self, what: str) -> None:
        """Count something done without the store; summarised at most once a minute."""
        now = time.monotonic()
        with self._lock:
            self.counts[what] += 1
            self.unreported[what] += 1
            due = now - self.reported_at >= REPORT_SECONDS
            if due:
                self.reported_at = now
                counts, self.unreported = self.unreported, Counter()
        if due:
            self.log.warning("%s unavailable: %s", self.name, _text(counts))


def _text(counts: Counter) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing affected"
