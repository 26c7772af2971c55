"""Metric updates off the request thread: a queue per process and one thread that drains it.

In prometheus-client's multiprocess mode every update of a labelled child takes a lock and
writes a memory-mapped file, and finding the child takes another lock; a gateway call makes
about ten of them (requests, spend, tokens, the hold, two or three histograms): 12.6 us warm,
50-70 us inside a real request, 5-7 % of the c=1 benchmark (docs/performance.md). So the request
thread only appends a tuple to a deque (atomic under the GIL: no lock, no wake-up), and one
daemon thread per process wakes every KT_METRICS_FLUSH_SECONDS and applies the batch: labelled
children cached per label tuple, counter increments of the batch summed per child first.

What a scrape sees (docs/operations.md "Metrics"): the process answering /metrics applies its
own queue before it reads, so its counts are complete to that moment; every other gunicorn
worker's are applied within one flush interval (plus the time to apply one batch, about 10 us a
call). A call that ended less than KT_METRICS_FLUSH_SECONDS before a scrape may thus show only
at the next scrape, like a call still in flight: late, never lost, never counted twice. A process
that exits normally (gunicorn's graceful stop or restart, a Celery pool process) applies its
queue on the way out; one killed outright (SIGKILL, the OOM killer) loses what it had queued: at
most its last KT_METRICS_FLUSH_SECONDS of calls.
"""

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

_queue: deque = deque()  # (apply, item): apply(item, batch) runs in flush()
_lock = threading.RLock()  # one flush at a time: the thread, a scrape, the exit
_thread: threading.Thread | None = None
_children: dict = {}


def submit(apply: Callable, item: tuple) -> None:
    """Queue `apply(item, batch)` for this process's flush thread (started on first use, so
    after gunicorn's fork: a thread does not survive a fork)."""
    _queue.append((apply, item))
    if _thread is None:
        _start()


def child(metric, labels: tuple):
    """`metric.labels(*labels)`, cached: prometheus-client's own lookup validates and locks."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


class Batch:
    """Counter increments of one flush, summed per child (one file write each)."""

    def __init__(self):
        self.counts: dict = {}

    def inc(self, counter_child, amount=1) -> None:
        self.counts[counter_child] = self.counts.get(counter_child, 0) + amount

    def apply(self) -> None:
        for counter_child, amount in self.counts.items():
            counter_child.inc(float(amount))


def flush() -> int:
    """Apply everything queued in this process; returns how many items."""
    with _lock:
        batch, done = Batch(), 0
        while True:
            try:
                apply, item = _queue.popleft()
            except IndexError:
                break
            try:
                apply(item, batch)
            except Exception:  # one bad item must not stop the others, nor the thread
                log.exception("metrics: an update failed (%s)", getattr(apply, "__name__", apply))
            done += 1
        batch.apply()
        return done


def _run() -> None:
    interval = settings.KT_METRICS_FLUSH_SECONDS
    while True:
        time.sleep(interval)
        if _queue:
            try:
                flush()
            finally:  # a label lookup may have opened this thread's own database connection
                connections.close_all()


def _start() -> None:
    global _thread
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="kt-metrics-flush", daemon=True)
            _thread.start()


def _after_fork() -> None:
    """A forked child starts empty: what the parent queued is the parent's to apply."""
    global _thread, _lock, _start_lock
    _thread, _lock, _start_lock = None, threading.RLock(), threading.Lock()
    _queue.clear()


_start_lock = threading.Lock()
os.register_at_fork(after_in_child=_after_fork)
atexit.register(flush)  # a normal exit applies the rest (see the module's docstring)
