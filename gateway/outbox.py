"""The capture outbox: captures of answered calls that could not commit (the database was
away), kept on the gateway host until they can, then replayed exactly once.

Why a spool directory on the gateway host, not Redis or the database: the database is what is
down, and Redis is a second network service that fails with the same partition or blip (and its
default persistence, AOF every second, may lose the last second on a crash). A local file
written to a temporary name, fsync'd, renamed into place and its directory fsync'd survives the
process being killed (kill -9) and the host losing power; writing it needs no network. The
price: only processes that see the directory replay it (the gateway processes of the host, and
a Celery worker or `manage.py replay_captures` that mounts the same volume). `KT_CAPTURE_OUTBOX_DIR`.

One file per capture, named by its request id (`req_....json`): a capture is deferred at most
once (Call.finish runs once), a torn write is never visible (rename is atomic), and a record is
deleted only after its replay committed. A record is JSON: the hold (id, request id, wallet,
organization, amount), the amount to charge and the usage event's fields, the event dated when
the call was answered.

Replay is gateway.recording.usage_settle: under a lock on the hold row it captures a pending
hold, captures late a hold the sweeper expired (replacing the $0 placeholder event), and writes
nothing for a hold already captured, which is what a replay of a capture whose commit outcome
was lost finds. So a record replayed twice (two processes, or a crash between the commit and
the delete) still charges once; processes also take an exclusive lock on the file while they
replay it, so that they rarely do the work twice. A record whose replay fails for another
reason than the database being away is renamed `*.failed` and logged (an operator looks at it;
`manage.py replay_captures --failed` retries those).
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone

from gateway.models import UsageEvent
from gateway.recording import DATABASE_UNAVAILABLE, usage_settle
from wallets.fastpath import PlacedHold

log = logging.getLogger(__name__)

VERSION = 1
SUFFIX = ".json"
FAILED = ".failed"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def outbox_dir() -> Path:
    return Path(settings.KT_CAPTURE_OUTBOX_DIR)


def _path_for(request_id: str) -> Path:
    return outbox_dir() / (_SAFE_NAME.sub("_", request_id) + SUFFIX)


# --- the record ---------------------------------------------------------------------------------

_EVENT_FIELDS = {f.attname: f for f in UsageEvent._meta.concrete_fields}


def _encode_fields(fields: dict) -> dict:
    """Event fields as JSON values, by each field's type (tags stay a JSON object)."""
    out = {}
    for name, value in fields.items():
        field = _EVENT_FIELDS.get(name)
        if isinstance(field, models.DecimalField) and value is not None:
            value = str(value)
        elif isinstance(field, models.DateTimeField) and value is not None:
            value = value.isoformat()
        out[name] = value
    return out


def _decode_fields(data: dict) -> dict:
    out = {}
    for name, value in data.items():
        field = _EVENT_FIELDS.get(name)
        if isinstance(field, models.DecimalField) and value is not None:
            value = Decimal(value)
        elif isinstance(field, models.DateTimeField) and value is not None:
            value = datetime.fromisoformat(value)
        out[name] = value
    return out


@dataclass(frozen=True)
class PendingCapture:
    hold: PlacedHold | None
    amount: Decimal
    event_fields: dict

    @property
    def request_id(self) -> str:
        return self.event_fields["request_id"]

    def to_json(self) -> bytes:
        hold = self.hold
        return json.dumps(
            {
                "version": VERSION,
                "hold": None
                if hold is None
                else {
                    "pk": hold.pk,
                    "organization_id": hold.organization_id,
                    "wallet_id": hold.wallet_id,
                    "request_id": hold.request_id,
                    "amount": str(hold.amount),
                },
                "amount": str(self.amount),
                "event": _encode_fields(self.event_fields),
                "written_at": timezone.now().isoformat(),
                "pid": os.getpid(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "PendingCapture":
        data = json.loads(raw)
        if data.get("version") != VERSION:
            raise ValueError(f"unknown outbox record version {data.get('version')!r}")
        hold = data["hold"]
        if hold is not None:
            hold = PlacedHold(**{**hold, "amount": Decimal(hold["amount"])})
        return cls(hold, Decimal(data["amount"]), _decode_fields(data["event"]))


def outbox_write(*, hold, amount: Decimal, event_fields: dict) -> Path:
    """Keep a capture that could not commit, durably: when this returns, the record is on disk
    (fsync'd, renamed into place, the directory fsync'd) and survives the process being killed.
    The event is dated now (when the call was answered), not when the replay commits. If the disk
    refuses, the capture is logged in full (an operator can replay it) and OSError is raised."""
    if hold is not None:
        hold = PlacedHold(
            pk=hold.pk,
            organization_id=hold.organization_id,
            wallet_id=hold.wallet_id,
            request_id=hold.request_id,
            amount=hold.amount,
        )
    fields = {**event_fields, "created_at": event_fields.get("created_at") or timezone.now()}
    record = PendingCapture(hold, amount, fields)
    raw = record.to_json()
    path = _path_for(record.request_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError:
        log.exception("request %s: CAPTURE LOST, outbox write failed: %s", record.request_id, raw)
        raise
    return path


def _fsync_dir(directory: Path):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def outbox_pending(*, failed: bool = False) -> list[Path]:
    """Records waiting for their replay, oldest first (`failed`: those set aside too)."""
    directory = outbox_dir()
    if not directory.is_dir():
        return []
    suffixes = (SUFFIX, FAILED) if failed else (SUFFIX,)
    paths = [p for p in directory.iterdir() if p.suffix in suffixes and not p.name.startswith(".")]
    return sorted(paths, key=lambda p: p.stat().st_mtime if p.exists() else 0)


# --- the replay ---------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    replayed: int = 0  # records settled and deleted
    outcomes: dict | None = None  # usage_settle outcome -> count
    remaining: int = 0  # records still waiting (the database is still away)
    failed: int = 0  # records set aside (*.failed)


def outbox_replay(*, failed: bool = False) -> ReplayReport:
    """Replay every waiting record (usage_settle), deleting each once its settlement committed.
    Stops at the first sign that the database is still away (the rest wait for the next pass).
    Safe to run in several processes at once and to repeat: exactly once is the database's."""
    report = ReplayReport(outcomes={})
    paths = outbox_pending(failed=failed)
    for index, path in enumerate(paths):
        try:
            outcome = _replay_one(path)
        except DATABASE_UNAVAILABLE as exc:
            report.remaining = len(paths) - index
            log.info("capture outbox: database still unavailable (%s), %d waiting", exc, len(paths))
            _drop_connection()
            break
        except Exception:
            log.exception("capture outbox: replay of %s failed; set aside as %s", path, FAILED)
            _set_aside(path)
            report.failed += 1
            continue
        if outcome is not None:
            report.replayed += 1
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    return report


def _replay_one(path: Path) -> str | None:
    """Settle one record under an exclusive lock on its file; its outcome, or None when another
    process has it (or had it: the file is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if os.fstat(fd).st_nlink == 0:  # replayed and deleted while we waited to open it
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            record = PendingCapture.from_json(f.read())
        settled = usage_settle(record.hold, record.amount, record.event_fields)
        path.unlink(missing_ok=True)
        log.info(
            "request %s: capture replayed from the outbox (%s, wallet available %s)",
            record.request_id,
            settled.outcome,
            settled.available,
        )
        return settled.outcome
    finally:
        os.close(fd)  # releases the lock


def _set_aside(path: Path):
    with contextlib.suppress(OSError):
        path.rename(path.with_suffix(FAILED))


def _drop_connection():
    db = connections[DEFAULT_DB_ALIAS]
    if not db.in_atomic_block:
        db.close()


class Replayer:
    """One per process: a daemon thread that replays the outbox until it is empty, backing off
    (0.5 s doubling to 5 s) while the database is away, then ends. `wake()` after a write starts
    it (or cuts its wait short); `start_if_pending()` at process start picks up what a killed
    process left."""

    FIRST_WAIT, MAX_WAIT = 0.5, 5.0

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._woken = threading.Event()

    def wake(self):
        with self._lock:
            if self._thread is not None:
                self._woken.set()
                return
            self._thread = threading.Thread(target=self._run, name="kt-capture-outbox", daemon=True)
            self._thread.start()

    def start_if_pending(self):
        try:
            pending = bool(outbox_pending())
        except OSError:
            log.exception("capture outbox: %s cannot be read", outbox_dir())
            return
        if pending:
            self.wake()

    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _run(self):
        wait = self.FIRST_WAIT
        try:
            while True:
                self._woken.clear()
                try:
                    report = outbox_replay()
                except Exception:
                    log.exception("capture outbox: replay pass failed")
                    report = ReplayReport(remaining=1)
                with self._lock:
                    if not report.remaining and not outbox_pending():
                        self._thread = None  # a write after this starts a new thread
                        return
                if report.replayed:
                    wait = self.FIRST_WAIT
                self._woken.wait(wait)
                wait = min(wait * 2, self.MAX_WAIT)
        except BaseException:
            with self._lock:
                self._thread = None
            raise
        finally:
            _drop_connection()


replayer = Replayer()
