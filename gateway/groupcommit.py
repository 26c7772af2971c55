"""Group commit of the gateway's captures: captures on one wallet that arrive together share
one transaction.

The capture is the one statement of a request that waits for the WAL flush, and while it waits
it keeps its wallet's row locked, so concurrent captures on a wallet queue behind each other's
flush. Here the first capture on a wallet (the leader) runs at once, alone, exactly as without
group commit. Captures on that wallet that arrive while it runs wait; when it is done, the first
of them leads the next batch: all of them in one transaction, sent in one round trip (psycopg's
pipeline), one commit, one flush. Every caller returns only once the transaction holding its
capture has committed, so nothing is acknowledged that a crash could lose (docs/performance.md).
Batches are per wallet: a capture never waits behind another wallet's, whose row may be locked
for reasons of its own (a funding operation, the sweeper).

Locks: a batch first locks the holds it resolves, in id order, and then its statements take the
wallet's row. Every other writer of a hold locks the hold before its wallet (the ORM capture,
release and expiry, a capture alone), so no two transactions can wait for each other.

A batch that fails (a duplicate usage event, an unexpected error) is rolled back whole, and its
captures run again one by one, each in its own transaction: each caller gets the result or the
error it would have had alone. Except when the database is away (no connection, or it broke):
one by one, each capture would wait for the pool again in turn, so the last caller of a batch
of n would wait n pool timeouts; every caller gets the error at once instead, and retries or
defers its own capture (gateway/capture.py), which also finds a batch whose commit outcome was
lost already done.
"""

import threading
from collections.abc import Callable

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

from gateway.recording import DATABASE_UNAVAILABLE
from wallets.models import Hold

MAX_BATCH = 64  # captures per transaction: bounds how long one transaction keeps its rows


class _Capture:
    __slots__ = ("batch", "done", "error", "hold_id", "params", "row", "sql")

    def __init__(self, sql, params, hold_id):
        self.sql, self.params, self.hold_id = sql, params, hold_id
        self.row = self.error = None
        self.batch = None  # woken to lead this batch (itself first), not with a result
        self.done = threading.Event()

    def result(self):
        if self.error is not None:
            raise self.error
        if self.row is None:  # the leader died mid-batch (its transaction rolled back)
            raise RuntimeError("the capture's batch was interrupted; nothing was written")
        return self.row


class GroupCommit:
    """One per process (and kind of statement). `execute` runs a capture statement and returns
    its first row; `run_one(sql, params)` runs a statement alone in its own transaction
    (autocommit); `together(batch)` runs a batch in one transaction and returns each one's row,
    in order (by default each statement in one pipelined round trip; the response cache's hit
    events pass one multi-row statement: gateway/response_cache/hit_events.py). `parallel`:
    how many batches of one key may run at once (1 for captures: a wallet's row is locked by
    each); a statement arriving while fewer run starts at once, alone."""

    def __init__(self, run_one: Callable, together: Callable | None = None, parallel: int = 1):
        self._run_one = run_one
        self._together = together or _together
        self._parallel = parallel
        self._lock = threading.Lock()
        # Per key (a wallet) with batches running: how many, and the captures waiting.
        self._running: dict = {}
        self._waiting: dict[int | None, list[_Capture]] = {}
        # Read by tests and benchmarks: batches run, the largest, and those rolled back and run
        # again one by one.
        self.batches = self.largest = self.fallbacks = 0

    def execute(self, sql: str, params: dict, *, hold_id: int | None, wallet_id: int | None):
        mine = _Capture(sql, params, hold_id)
        with self._lock:
            running = self._running.get(wallet_id, 0)
            if running < self._parallel:
                # Nobody waits (waiters exist only while every slot is taken): lead, alone.
                self._running[wallet_id] = running + 1
                batch = [mine]
            else:
                self._waiting.setdefault(wallet_id, []).append(mine)
                batch = None
        if batch is None:
            mine.done.wait()
            if mine.batch is None:
                return mine.result()
            batch = mine.batch
        self._lead(wallet_id, batch)
        return mine.result()

    def waiting(self, wallet_id: int | None) -> int:
        """How many captures on this wallet wait for a running batch to end (tests)."""
        with self._lock:
            return len(self._waiting.get(wallet_id, ()))

    def _lead(self, wallet_id, batch: list[_Capture]):
        try:
            self._run(batch)
            with self._lock:
                self.batches += 1
                self.largest = max(self.largest, len(batch))
        finally:
            following = None
            with self._lock:
                queue = self._waiting.get(wallet_id)
                if queue:  # hand over the slot: the next leader runs what queued meanwhile
                    following = queue[:MAX_BATCH]
                    del queue[:MAX_BATCH]
                    if not queue:
                        del self._waiting[wallet_id]
                    following[0].batch = following
                elif self._running[wallet_id] == 1:
                    del self._running[wallet_id]
                else:
                    self._running[wallet_id] -= 1
            if following is not None:
                following[0].done.set()
            for capture in batch:
                capture.done.set()

    def _run(self, batch: list[_Capture]):
        """Run the batch; each capture gets its row or its error."""
        if len(batch) > 1:
            try:
                rows = self._together(batch)
            except DATABASE_UNAVAILABLE as exc:
                for capture in batch:  # one error each: they are raised in separate threads
                    capture.error = type(exc)(*exc.args)
                    capture.error.__cause__ = exc
                return
            except Exception:  # noqa: BLE001 - rolled back whole; one by one tells who failed
                with self._lock:
                    self.fallbacks += 1
            else:
                for capture, row in zip(batch, rows, strict=True):
                    capture.row = row
                return
        for capture in batch:
            try:
                capture.row = self._run_one(capture.sql, capture.params)
            except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
                capture.error = exc


def _together(batch: list[_Capture]) -> list:
    """All captures of `batch` in one transaction and one round trip; their rows, in order."""
    db = connections[DEFAULT_DB_ALIAS]
    holds = sorted({c.hold_id for c in batch if c.hold_id is not None})
    lock_holds = (
        f"SELECT id FROM {db.ops.quote_name(Hold._meta.db_table)} "  # noqa: S608 - a table name
        "WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    )
    with db.wrap_database_errors, db.pool.connection() as conn, conn.transaction():
        with conn.pipeline():
            if holds:
                conn.execute(lock_holds, [holds])
            cursors = [psycopg.Cursor(conn) for _ in batch]
            for capture, cursor in zip(batch, cursors, strict=True):
                cursor.execute(capture.sql, capture.params)
        rows = [cursor.fetchone() for cursor in cursors]
        for cursor in cursors:
            cursor.close()
        return rows
