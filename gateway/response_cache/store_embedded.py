"""The embedded store (no Redis: the demo): one SQLite file (KT_RESPONSE_CACHE_PATH) that every
gateway process on the host shares, with the Redis store's operations and bounds.

A cache, not a record: the file runs without fsync (`synchronous=OFF`) and may be deleted at
any time. Writers take SQLite's write lock (`BEGIN IMMEDIATE`), so a fill lock is taken by one
process only, and the size bound holds across processes. Time is the wall clock, which the
processes of one host share.
"""

import sqlite3
import threading
import time
from pathlib import Path

ERRORS = (sqlite3.Error, OSError)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, org INTEGER NOT NULL, value BLOB NOT NULL,
    size INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_org_expires ON entries (org, expires);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL);
"""


def _wal(db: sqlite3.Connection, wait: float = 5.0) -> None:
    """Put the file in WAL mode (a property of the file: the first connection sets it). Several
    connections opening a new file at once may find it being switched, an SQLITE_BUSY that the
    busy timeout does not cover: wait for whoever is switching it, like any other lock."""
    deadline = time.monotonic() + wait
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


class EmbeddedStore:
    def __init__(self, path: str, *, max_bytes: int):
        self.path = path
        self.max_bytes = max_bytes
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            _wal(db)
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(_SCHEMA)
            self._local.db = db
        return db

    def _get(self, db, key: str, now: float) -> bytes | None:
        row = db.execute(
            "SELECT value FROM entries WHERE key = ? AND expires > ?", (key, now)
        ).fetchone()
        return bytes(row[0]) if row else None

    def lookup(self, key: str, *, token: str, lock_ms: int, lock: bool) -> bytes | bool:
        db, now = self._db(), time.time()
        found = self._get(db, key, now)
        if found is not None or not lock:
            return found if found is not None else False
        with _immediate(db):
            db.execute("DELETE FROM locks WHERE key = ? AND expires <= ?", (key, now))
            taken = db.execute(
                "INSERT OR IGNORE INTO locks (key, token, expires) VALUES (?, ?, ?)",
                (key, token, now + lock_ms / 1000),
            ).rowcount
        return taken == 1

    def poll(self, key: str) -> bytes | bool:
        db, now = self._db(), time.time()
        found = self._get(db, key, now)
        if found is not None:
            return found
        row = db.execute("SELECT 1 FROM locks WHERE key = ? AND expires > ?", (key, now))
        return row.fetchone() is not None

    def put(self, key: str, value: bytes, *, ttl_seconds: int, token: str = "") -> int:
        db, now = self._db(), time.time()
        org = int(key.split(":", 1)[0])
        evicted = 0
        with _immediate(db):
            db.execute(
                "INSERT OR REPLACE INTO entries (key, org, value, size, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, org, value, len(value), now + ttl_seconds),
            )
            db.execute("DELETE FROM entries WHERE org = ? AND expires <= ?", (org, now))
            (total,) = db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM entries WHERE org = ?", (org,)
            ).fetchone()
            while total > self.max_bytes:
                row = db.execute(
                    "SELECT key, size FROM entries WHERE org = ? ORDER BY expires LIMIT 1", (org,)
                ).fetchone()
                if row is None:
                    break
                db.execute("DELETE FROM entries WHERE key = ?", (row[0],))
                total -= row[1]
                evicted += 1
            if token:
                db.execute("DELETE FROM locks WHERE key = ? AND token = ?", (key, token))
        return evicted

    def release(self, key: str, token: str) -> None:
        db = self._db()
        with _immediate(db):
            db.execute("DELETE FROM locks WHERE key = ? AND token = ?", (key, token))

    def stored_bytes(self, organization_id: int) -> int:
        row = self._db().execute(
            "SELECT COALESCE(SUM(size), 0) FROM entries WHERE org = ? AND expires > ?",
            (organization_id, time.time()),
        )
        return int(row.fetchone()[0])


class _immediate:
    """A write transaction that takes SQLite's write lock at once (no upgrade deadlocks)."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
