"""The capture of an answered call, made durable: `usage_capture` is what `Call.finish` runs
once the provider has answered, and it never loses the charge to a database outage.

1. The capture as always (gateway/fastpath.py on PostgreSQL, gateway/recording.py usage_record
   on SQLite). This is the whole success path: one statement, nothing added before or after.
2. Only when that raised because the database is unavailable (PostgreSQL restarting, a
   connection cut, no pooled connection in time): retries with backoff (50 ms doubling, at most
   1 s apart) until `KT_CAPTURE_RETRY_SECONDS` (2 s) after the capture started, each waiting for
   a pooled connection at most until then. A retry is the same statement, which resolves the hold
   only if still pending and writes the event only if the request has none, so a retry of an
   attempt that did commit (its outcome lost with the connection) writes nothing.
3. Still failing: the capture is written to the outbox (gateway/outbox.py; fsync'd before this
   returns) and replayed by this process's replayer once the database is back, or by any gateway
   process started on this host, the Celery task or `manage.py replay_captures`.

Either way this returns, and the reply goes out: a non-stream reply once the capture committed
or the outbox holds it, a stream's last event likewise; never a 500 for a call the provider
answered because the database was away. The reply waits at most the pool's own wait (which
every request has; DB_POOL_TIMEOUT) or KT_CAPTURE_RETRY_SECONDS, whichever is longer, plus one
file write. Why 2 s: a dropped connection or a failover's first seconds are absorbed and the
reply still carries `x-kt-wallet-available`; waiting longer would only hold a server thread per
call while the outbox, which is as safe, takes over.
"""

import logging
import time
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections

from chargeback.money import ZERO
from gateway import fastpath, outbox
from gateway.hooks import call_recorded
from gateway.recording import DATABASE_UNAVAILABLE, event_record, usage_record
from wallets.fastpath import enabled as on_postgresql

log = logging.getLogger(__name__)

FIRST_DELAY = 0.05
MAX_DELAY = 1.0


def usage_capture(hold, amount: Decimal, event_fields: dict, *, tracked: bool = True):
    """Capture `amount` against `hold` and write the call's event (usage_record's contract);
    with `tracked=False` (cost tracking off) only the event, no money. Returns the wallet's
    available funds after it, or None (no wallet, nothing written, or the capture was deferred
    to the outbox). Exactly once, however many retries and replays it takes. Then announces the
    call (gateway/hooks.py call_recorded: the metrics)."""
    available = _capture(hold, amount, event_fields, tracked)
    outcome = None
    if hold is not None and tracked:
        outcome = "captured" if amount > ZERO else "released"
    call_recorded(event_fields, outcome)
    return available


def _capture(hold, amount: Decimal, event_fields: dict, tracked: bool):
    started = time.monotonic()
    try:
        if not tracked:
            event_record(event_fields, announce=False)
            return None
        if on_postgresql():
            return fastpath.capture_and_record_fast(hold, amount, event_fields)
        return usage_record(hold, amount, event_fields)
    except DATABASE_UNAVAILABLE as exc:
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            raise  # the caller's transaction is lost anyway: nothing to retry inside it
        return _retry_or_defer(hold, amount, event_fields, tracked, started, exc)


def _retry_or_defer(hold, amount, event_fields, tracked, started, error):
    request_id = event_fields["request_id"]
    deadline = started + settings.KT_CAPTURE_RETRY_SECONDS
    delay, attempts = FIRST_DELAY, 1
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        attempts += 1
        try:
            return _attempt(hold, amount, event_fields, tracked, remaining)
        except DATABASE_UNAVAILABLE as exc:
            error = exc
    log.warning(
        "request %s: capture could not commit after %d attempts in %.1f s (%s: %s); "
        "deferred to the capture outbox",
        request_id,
        attempts,
        time.monotonic() - started,
        type(error).__name__,
        str(error).strip(),
    )
    try:
        outbox.outbox_write(
            hold=hold if tracked else None, amount=amount, event_fields=event_fields
        )
    except OSError:
        return None  # logged with the whole record; the reply still goes out
    outbox.replayer.wake()
    return None


def _attempt(hold, amount, event_fields, tracked, remaining: float):
    """One retry, waiting at most `remaining` seconds for a connection."""
    db = connections[DEFAULT_DB_ALIAS]
    db.close()  # a connection the failure broke goes back to the pool, which drops it
    if not on_postgresql():
        if not tracked:
            event_record(event_fields, announce=False)
            return None
        return usage_record(hold, amount, event_fields)
    try:
        if tracked:
            return fastpath.capture_and_record_fast(
                hold, amount, event_fields, pool_timeout=remaining
            )
        # Cost tracking off: the event alone (no hold, no wallet), as event_record writes it.
        fastpath.capture_and_record(None, ZERO, event_fields, pool_timeout=remaining)
    except IntegrityError:
        if hold is not None and tracked:
            raise
        # Without a hold the statement inserts the event unconditionally: it exists, written
        # by the attempt whose outcome was lost.
    return None
