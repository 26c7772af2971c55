"""PostgreSQL single-statement versions of the gateway's two money writes.

Same semantics and guarantees as the ORM path (wallets.services.hold_place, and
wallets.services.hold_capture + UsageEvent create in one transaction), in one round trip each:

- `hold_place_fast`: one statement. The conditional UPDATE of the wallet (`balance >= held +
  amount`) is re-checked by PostgreSQL after any concurrent writer commits (READ COMMITTED
  re-evaluation), so two holds can never both take the last funds; the hold row is inserted only
  when the UPDATE matched.
- `capture_and_record_fast` (= gateway.recording.usage_record): one statement of data-modifying
  CTEs. The hold is resolved only if still pending (exactly once, even against a concurrent
  capture, release or the expiry sweeper), and only then are the wallet updated and the capture
  entry (with `balance_after`) inserted. The usage event is inserted in the same statement; for
  a hold resolved elsewhere it records cost 0, as on the ORM path.

A statement is atomic by itself: in autocommit it is also its own transaction (one commit),
except that captures on one wallet arriving together commit in one transaction
(gateway/groupcommit.py, KT_GATEWAY_GROUP_COMMIT); inside the caller's `transaction.atomic()`
it joins that. The SQL is generated once per process
from the models' metadata, so a field added to a model with a default is filled like the ORM
would. Parameters are bound server-side and the statements prepared by psycopg after a few uses
(PERF-NOTES: client-side quoting and per-request planning showed up in requests/s).
SQLite keeps the ORM services; `enabled()` says which path applies.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cache

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from chargeback.money import ZERO, quantize
from gateway.groupcommit import GroupCommit
from gateway.hooks import spend_recorded_after_commit
from gateway.models import UsageEvent
from gateway.recording import usage_settle
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.services.holds import insufficient_funds


@dataclass(frozen=True, slots=True)
class PlacedHold:
    """A hold the fast path placed: the fields its resolution reads (the fast capture, a
    stream's keep-alive, the ORM capture and release), without a Hold model instance, whose
    construction cost about 5 % of a request's CPU. Its status and expiry live in the row."""

    pk: int
    organization_id: int
    wallet_id: int
    request_id: str
    amount: Decimal


@cache
def enabled() -> bool:
    """True when the default database is PostgreSQL (the fast path's SQL is PostgreSQL only).
    Once per process: the engine is settled at startup."""
    return connection.vendor == "postgresql"


@dataclass(frozen=True)
class CaptureResult:
    """What one capture-and-record statement did (`capture_and_record_fast` returns only
    `available` like gateway.recording.usage_record; tests and benchmarks read the rest).

    `resolved`: this call resolved the hold. `entry_id`: the capture ledger entry (None for a
    zero amount, which releases the hold, or when nothing was charged). `event_id`: None when the
    hold was already resolved and the request already had its event (nothing written).
    `available`: the wallet's balance minus held after the statement (None without a wallet).
    """

    resolved: bool
    entry_id: int | None
    event_id: int | None
    available: Decimal | None


_TEXT_TYPES = {"CharField", "TextField", "SlugField", "EmailField", "URLField"}


def _cast(field, name: str) -> str:
    """A typed parameter. With server-side binding an untyped NULL in INSERT ... SELECT would be
    read as text; strings are left untyped (text converts to varchar on assignment). Short type
    names keep the statement under psycopg's 4 KB limit for caching its parsed form."""
    if field.get_internal_type() in _TEXT_TYPES:
        return f"%({name})s"
    db_type = field.db_type(connection).split("(")[0].strip()
    db_type = {"timestamp with time zone": "timestamptz", "boolean": "bool"}.get(db_type, db_type)
    return f"CAST(%({name})s AS {db_type})"


# Only these need Django's preparation on PostgreSQL (JSON to Jsonb); every other value the
# gateway passes (ints, strings, bools, Decimals, aware datetimes) goes to psycopg as it is.
# Preparing all ~35 values through Django cost about 10 % of a request's CPU (docs/performance.md).
_PREPARED_TYPES = {"JSONField"}


def _insert_columns(model, computed: dict[str, str], prefix: str):
    """Columns of `model` (all concrete fields but the primary key), the SQL expression of each
    (from `computed` by attname, else a typed parameter `<prefix><n>`) and, for the fields that
    take a parameter, (field, parameter name, whether the value needs Django's preparation)."""
    columns, expressions, param_fields = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in computed:
            expressions.append(computed[field.attname])
        else:
            name = f"{prefix}{len(param_fields)}"
            expressions.append(_cast(field, name))
            param_fields.append((field, name, field.get_internal_type() in _PREPARED_TYPES))
    return columns, expressions, param_fields


def _param_name(param_fields, attname: str) -> str:
    return next(name for field, name, _prepare in param_fields if field.attname == attname)


def _params(param_fields, values: dict) -> dict:
    """Parameters for the fields not computed in SQL: the given value, else the field default,
    prepared like the ORM prepares it where that changes anything (JSON)."""
    params = {}
    db = None
    for field, name, prepare in param_fields:
        if field.attname in values:
            value = values[field.attname]
        elif field.name in values:
            value = values[field.name]
            if field.is_relation and value is not None and hasattr(value, "pk"):
                value = value.pk
        else:
            value = field.get_default()
        if prepare:
            db = db or connections[DEFAULT_DB_ALIAS]
            value = field.get_db_prep_save(value, db)
        params[name] = value
    return params


# A hold commits without waiting for the WAL flush, always: it moves no money (only `held` and
# the hold row, atomically), and the capture's flush, which follows it in the WAL, makes it
# durable too. A PostgreSQL crash before that can only lose reservations of requests then in
# flight, which a crash leaves uncharged anyway (their capture fails, or the sweeper releases
# the hold). One flush per request instead of two: about 0.4 ms of latency and 0.2 ms of
# PostgreSQL CPU here (docs/performance.md).
# KT_GATEWAY_ASYNC_COMMIT extends that to the capture: a crash may then lose the last fraction
# of a second of captures, atomically: a lost capture leaves its hold pending until the sweeper
# releases it (nothing charged, never charged twice); the ledger stays consistent. Off by
# default. Either way set_config(..., true) applies to the statement's own transaction only.
_ASYNC_COMMIT = "cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS done), "


def _async_commit() -> bool:
    return bool(getattr(settings, "KT_GATEWAY_ASYNC_COMMIT", False))


@cache
def _hold_place_sql(enforce: bool):
    q = connection.ops.quote_name
    wallet = Wallet._meta.db_table
    condition = f" AND {q('balance')} >= {q('held')} + %(amount)s" if enforce else ""
    columns, expressions, param_fields = _insert_columns(
        Hold,
        {
            "organization_id": "w.organization_id",
            "wallet_id": "w.id",
            "amount": "%(amount)s",
            "status": "'pending'",
        },
        "h",
    )
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = (
        f"WITH {_ASYNC_COMMIT}"  # noqa: S608
        f"w AS (UPDATE {q(wallet)} SET {q('held')} = {q('held')} + %(amount)s "
        f"WHERE id = %(wallet_id)s{condition} RETURNING id, organization_id) "
        f"INSERT INTO {q(Hold._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM w, cfg "
        "RETURNING id, organization_id"
    )
    return sql, param_fields


@cache
def _capture_sql(async_commit: bool):
    q = connection.ops.quote_name
    event_table = q(UsageEvent._meta.db_table)
    ledger_columns, ledger_expressions, ledger_fields = _insert_columns(
        LedgerEntry,
        {
            "organization_id": "w.organization_id",
            "wallet_id": "w.id",
            "kind": "'capture'",
            "amount": "-%(amount)s",
            "balance_after": "w.balance",
            "currency": "w.currency",
            "hold_id": "w.hold_id",
            "reference": "w.request_id",
        },
        "l",
    )
    event_columns, event_expressions, event_fields = _insert_columns(UsageEvent, {}, "e")
    error_code = _param_name(event_fields, "error_code")
    wallet_id = _param_name(event_fields, "wallet_id")
    request_id = _param_name(event_fields, "request_id")
    # A hold resolved elsewhere: the event records cost 0 and says why, as usage_record does.
    unresolved = {
        "cost": "0",
        "above_hold": "false",
        "error_code": f"COALESCE(NULLIF(CAST(%({error_code})s AS text), ''), "
        "'hold_already_resolved')",
    }
    event_attnames = [f.attname for f in UsageEvent._meta.concrete_fields if not f.primary_key]
    unresolved_expressions = [
        unresolved.get(attname, expression)
        for attname, expression in zip(event_attnames, event_expressions, strict=True)
    ]
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""
WITH {_ASYNC_COMMIT if async_commit else ""}h AS (
    UPDATE {q(Hold._meta.db_table)}
    SET status = CASE WHEN %(amount)s > 0 THEN 'captured' ELSE 'released' END,
        captured_amount = CASE WHEN %(amount)s > 0 THEN %(amount)s END,
        resolved_at = %(now)s
    WHERE id = CAST(%(hold_id)s AS bigint) AND request_id = %({request_id})s
      AND status = 'pending'
    RETURNING id, wallet_id, amount, request_id
), w AS (
    UPDATE {q(Wallet._meta.db_table)} AS wa
    SET held = wa.held - h.amount, balance = wa.balance - %(amount)s
    FROM h WHERE wa.id = h.wallet_id
    RETURNING wa.id, wa.organization_id, wa.balance, wa.held, wa.currency,
              h.id AS hold_id, h.request_id
), e AS (
    INSERT INTO {q(LedgerEntry._meta.db_table)} ({", ".join(ledger_columns)})
    SELECT {", ".join(ledger_expressions)} FROM w WHERE %(amount)s > 0
    RETURNING id
), r AS (
    SELECT (SELECT count(*) FROM h) = 1 OR NOT %(has_hold)s AS charged{
        " FROM cfg" if async_commit else ""
    }
), ev AS (
    INSERT INTO {event_table} ({", ".join(event_columns)})
    SELECT {", ".join(event_expressions)} FROM r WHERE r.charged
    RETURNING id
), ev_unresolved AS (
    INSERT INTO {event_table} ({", ".join(event_columns)})
    SELECT {", ".join(unresolved_expressions)} FROM r WHERE NOT r.charged
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM h), (SELECT id FROM e),
       COALESCE((SELECT id FROM ev), (SELECT id FROM ev_unresolved)),
       CASE WHEN CAST(%({wallet_id})s AS bigint) IS NOT NULL THEN COALESCE(
           (SELECT balance - held FROM w),
           (SELECT balance - held FROM {q(Wallet._meta.db_table)}
            WHERE id = CAST(%({wallet_id})s AS bigint))) END
"""  # noqa: S608
    return sql, ledger_fields, event_fields


def _pooled() -> bool:
    """True outside a transaction with a pool: a statement borrows a pooled connection."""
    db = connections[DEFAULT_DB_ALIAS]  # once: `connection` is a proxy looked up per use
    if db.pool is None or db.connection is not None:
        return False
    db.pool.open()  # no-op once open
    return True


def _execute_one(sql: str, params: dict, pool_timeout: float | None = None):
    """Run one statement with server-side binding; the first row.

    Outside a transaction (the gateway's case) the statement borrows a connection from the pool
    for itself: cheaper than opening and closing Django's connection around it (its connect
    runs signals and state checks), and nothing else in the request needs that connection.
    Inside `transaction.atomic()` it runs on Django's connection and joins the transaction.
    Django's cursor binds client-side (quoting every value into the text); this cursor sends
    the parameters apart so that psycopg can prepare the statement. Errors come out as Django's
    (IntegrityError, ...). `pool_timeout` bounds the wait for a pooled connection (a capture's
    retry, gateway/capture.py); else the pool's own timeout applies.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if _pooled():
        with (
            db.wrap_database_errors,
            db.pool.connection(timeout=pool_timeout) as conn,
            psycopg.Cursor(conn) as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchone()
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def hold_place_fast(
    *,
    wallet: Wallet,
    amount: Decimal,
    request_id: str,
    enforce: bool = True,
    ttl_seconds: int | None = None,
) -> PlacedHold:
    """wallets.services.hold_place in one statement (PostgreSQL): reserve `amount` on the wallet.

    With `enforce`, refused (InsufficientFunds, nothing written) unless available >= amount; the
    check and the reservation are one conditional UPDATE, so concurrent holds cannot overspend.
    A duplicate `request_id` raises IntegrityError and reserves nothing (the statement is
    atomic). The hold expires after `ttl_seconds` (KT_HOLD_TTL_SECONDS).
    """
    amount = quantize(amount)
    ttl = settings.KT_HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    now = timezone.now()
    values = {
        "request_id": request_id,
        "expires_at": now + timedelta(seconds=ttl),
        "created_at": now,
        "captured_amount": None,
        "resolved_at": None,
    }
    sql, param_fields = _hold_place_sql(enforce)
    params = _params(param_fields, values)
    params.update(amount=amount, wallet_id=wallet.pk)
    row = _execute_one(sql, params)
    if row is None:
        raise insufficient_funds(wallet, amount)
    return PlacedHold(
        pk=row[0],
        organization_id=row[1],
        wallet_id=wallet.pk,
        request_id=request_id,
        amount=amount,
    )


# Concurrent captures share a transaction (gateway/groupcommit.py); KT_GATEWAY_GROUP_COMMIT.
capture_group = GroupCommit(_execute_one)


def capture_and_record(
    hold: PlacedHold | None,
    amount: Decimal,
    event_fields: dict,
    *,
    pool_timeout: float | None = None,
) -> CaptureResult:
    """`capture_and_record_fast` with the details of what it did (see CaptureResult); the
    statement alone (a hold the sweeper expired is not captured here). With `pool_timeout` (a
    retry) the statement runs alone, never in a group-commit batch."""
    # usage_record captures only a positive amount; the ORM capture quantizes it first.
    amount = quantize(amount) if amount > ZERO else ZERO
    now = timezone.now()
    sql, ledger_fields, event_param_fields = _capture_sql(_async_commit())
    params = _params(
        ledger_fields,
        {
            "description": "",
            "idempotency_key": None,
            "request_hash": "",
            "actor": "",
            "created_at": now,
        },
    )
    params.update(_params(event_param_fields, event_fields))
    params.update(
        amount=amount,
        now=now,
        hold_id=hold.pk if hold is not None else None,
        has_hold=hold is not None,
    )
    if pool_timeout is None and settings.KT_GATEWAY_GROUP_COMMIT and _pooled():
        row = capture_group.execute(
            sql,
            params,
            hold_id=hold.pk if hold is not None else None,
            wallet_id=hold.wallet_id if hold is not None else None,
        )
    else:
        row = _execute_one(sql, params, pool_timeout)
    resolved, entry_id, event_id, available = row
    return CaptureResult(
        resolved=bool(resolved), entry_id=entry_id, event_id=event_id, available=available
    )


def capture_and_record_fast(
    hold: PlacedHold | None,
    amount: Decimal,
    event_fields: dict,
    *,
    pool_timeout: float | None = None,
):
    """gateway.recording.usage_record in one statement (PostgreSQL): charge `amount` against
    `hold` (capture, releasing the rest; zero releases it all) and write the request's one
    UsageEvent, atomically. Returns the wallet's available funds after it (None without a
    wallet, or when nothing was written).

    Exactly once: the hold is resolved only if still pending, even against a concurrent capture,
    release or the expiry sweeper. It is matched by id and request id: after a database crash
    lost an unflushed hold, its id may be reissued, and the request that still holds the old id
    must not capture the new owner's hold. When somebody else resolved it first, nothing is
    charged and the event records cost 0 with `error_code="hold_already_resolved"`, unless the
    request already has its event (then nothing is written). A hold the sweeper expired first is
    captured late, once (gateway.recording.usage_settle, a second transaction: only on that
    rare path). The ledger entry's `balance_after` is the
    balance right after this capture. A duplicate event for a hold this call resolves raises
    IntegrityError and nothing at all is written (one statement). Like usage_record, the budgets
    hook (gateway/hooks.py) runs once the statement has committed.
    """
    result = capture_and_record(hold, amount, event_fields, pool_timeout=pool_timeout)
    if hold is not None and not result.resolved:
        # Not pending any more: captured or released before (nothing to do), or expired by the
        # sweeper, which usage_settle captures late (its hook runs on its own commit).
        settled = usage_settle(hold, amount, event_fields)
        if settled.outcome == "late":
            return settled.available
    if result.event_id is None:
        return None
    charged = result.resolved or hold is None
    if hold is not None or (charged and event_fields.get("cost")):
        spend_recorded_after_commit(event_fields)
    return result.available
