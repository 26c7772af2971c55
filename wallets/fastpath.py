"""PostgreSQL one-statement twins of the wallet writes on the gateway's hot path, next to the
rules they implement (wallets/services/holds.py, wallets/ledger.py); tests/pricing/
test_fastpath.py checks that both write the same rows.

- `hold_place_fast` (= hold_place): one statement. The conditional UPDATE of the wallet
  (`balance >= held + amount`) is re-checked by PostgreSQL after any concurrent writer commits
  (READ COMMITTED re-evaluation), so two holds can never both take the last funds; the hold row
  is inserted only when the UPDATE matched. `hold_place` chooses it on PostgreSQL.
- `hold_place_cascade_fast` (= hold_place tried on each wallet of a chain, wallets/cascade.py):
  one statement too: the same conditional UPDATE for each wallet in the chain's order, each
  run only if none before it matched (a wallet a concurrent writer drained is re-checked after
  its commit and left alone, the next one tried), so no wallet is overspent and exactly one is
  held on; the first wallet paying costs what the single-wallet statement costs.
- `capture_ctes`: the capture's wallet half (hold resolved if still pending, wallet moved, the
  capture entry appended with its `balance_after`) as data-modifying CTEs, for a statement
  that records the call in the same round trip (gateway/fastpath.py).

A statement is atomic by itself: in autocommit it is also its own transaction (one commit);
inside the caller's `transaction.atomic()` it joins that. The SQL is generated once per process
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

from chargeback.money import quantize
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.selectors import chain_refusal, hold_refusal


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


_TEXT_TYPES = {"CharField", "TextField", "SlugField", "EmailField", "URLField"}


def param_type(field) -> str | None:
    """The short SQL type a parameter for `field` is cast to; None for strings (text converts
    to varchar on assignment). Short type names keep the statements under psycopg's 4 KB limit
    for caching their parsed form."""
    if field.get_internal_type() in _TEXT_TYPES:
        return None
    db_type = field.db_type(connection).split("(")[0].strip()
    return {"timestamp with time zone": "timestamptz", "boolean": "bool"}.get(db_type, db_type)


def _cast(field, name: str) -> str:
    """A typed parameter. With server-side binding an untyped NULL in INSERT ... SELECT would be
    read as text; strings are left untyped."""
    db_type = param_type(field)
    return f"%({name})s" if db_type is None else f"CAST(%({name})s AS {db_type})"


# Only these need Django's preparation on PostgreSQL (JSON to Jsonb); every other value the
# gateway passes (ints, strings, bools, Decimals, aware datetimes) goes to psycopg as it is.
# Preparing all ~35 values through Django cost about 10 % of a request's CPU (docs/performance.md).
_PREPARED_TYPES = {"JSONField"}


def insert_columns(model, computed: dict[str, str], prefix: str, exclude=frozenset()):
    """Columns of `model` (all concrete fields but the primary key and the attnames in
    `exclude`, which must be nullable: the row gets NULL), the SQL expression of each (from
    `computed` by attname, else a typed parameter `<prefix><n>`) and, for the fields that take
    a parameter, (field, parameter name, whether the value needs Django's preparation)."""
    columns, expressions, param_fields = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in exclude:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in computed:
            expressions.append(computed[field.attname])
        else:
            name = f"{prefix}{len(param_fields)}"
            expressions.append(_cast(field, name))
            param_fields.append((field, name, field.get_internal_type() in _PREPARED_TYPES))
    return columns, expressions, param_fields


def param_name(param_fields, attname: str) -> str:
    return next(name for field, name, _prepare in param_fields if field.attname == attname)


def statement_params(param_fields, values: dict) -> dict:
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
            if isinstance(value, dict | list) and not value:
                value = _empty_json(field, type(value))  # no tags, no failover attempts: usual
            else:
                db = db or connections[DEFAULT_DB_ALIAS]
                value = field.get_db_prep_save(value, db)
        params[name] = value
    return params


@cache
def _empty_json(field, kind):
    """An empty JSON value prepared once per field: the adapter only holds the value, which is
    never changed, so every statement may pass the same one."""
    return field.get_db_prep_save(kind(), connections[DEFAULT_DB_ALIAS])


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
ASYNC_COMMIT_CTE = "cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS done), "


def async_commit() -> bool:
    return bool(getattr(settings, "KT_GATEWAY_ASYNC_COMMIT", False))


@cache
def _hold_place_sql(enforce: bool):
    q = connection.ops.quote_name
    wallet = Wallet._meta.db_table
    condition = f" AND {q('balance')} >= {q('held')} + %(amount)s" if enforce else ""
    columns, expressions, param_fields = insert_columns(
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
        f"WITH {ASYNC_COMMIT_CTE}"  # noqa: S608
        f"w AS (UPDATE {q(wallet)} SET {q('held')} = {q('held')} + %(amount)s "
        f"WHERE id = %(wallet_id)s{condition} RETURNING id, organization_id) "
        f"INSERT INTO {q(Hold._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM w, cfg "
        "RETURNING id, organization_id"
    )
    return sql, param_fields


@cache
def _hold_cascade_sql(length: int):
    """The cascade's hold for a chain of `length` wallets (parameters wallet_0, wallet_1, ...):
    one conditional UPDATE per wallet, each run only when every one before it matched nothing
    (`NOT EXISTS` over the earlier CTEs, evaluated before its scan), so the first wallet that
    can cover the amount is held and no other: on the common path (the first one pays) the
    statement does the single-wallet statement's work."""
    q = connection.ops.quote_name
    wallet = q(Wallet._meta.db_table)
    columns, expressions, param_fields = insert_columns(
        Hold,
        {
            "organization_id": "w.organization_id",
            "wallet_id": "w.id",
            "amount": "%(amount)s",
            "status": "'pending'",
        },
        "h",
    )
    # Only model metadata (table and column names) and CTE numbers are formatted in; values
    # are parameters.
    updates = []
    for n in range(length):
        earlier = "".join(f" AND NOT EXISTS (SELECT 1 FROM w{k})" for k in range(n))  # noqa: S608
        updates.append(
            f"w{n} AS (UPDATE {wallet} SET {q('held')} = {q('held')} + %(amount)s "  # noqa: S608
            f"WHERE id = %(wallet_{n})s AND {q('balance')} >= {q('held')} + %(amount)s"
            f"{earlier} RETURNING id, organization_id)"
        )
    chosen = " UNION ALL ".join(f"SELECT * FROM w{n}" for n in range(length))  # noqa: S608
    sql = (
        f"WITH {ASYNC_COMMIT_CTE}{', '.join(updates)} "  # noqa: S608
        f"INSERT INTO {q(Hold._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM ({chosen}) AS w, cfg "
        "RETURNING id, organization_id, wallet_id"
    )
    return sql, param_fields


@cache
def capture_ctes():
    """The capture's wallet half: CTEs `h` (the hold resolved, if still pending and this
    request's: captured, or released for a zero amount), `w` (the wallet: held back, balance
    down by the amount) and `e` (the capture entry, `balance_after` = the balance right after
    it: wallets/ledger.py's rule). Parameters: amount, now, hold_id, hold_request_id, and the
    ledger entry's own (the second value returned). `w` returns the wallet's balance, held and
    currency and the hold's id and request id, for what the caller records."""
    q = connection.ops.quote_name
    columns, expressions, param_fields = insert_columns(
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
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""h AS (
    UPDATE {q(Hold._meta.db_table)}
    SET status = CASE WHEN %(amount)s > 0 THEN 'captured' ELSE 'released' END,
        captured_amount = CASE WHEN %(amount)s > 0 THEN %(amount)s END,
        resolved_at = %(now)s
    WHERE id = CAST(%(hold_id)s AS bigint) AND request_id = %(hold_request_id)s
      AND status = 'pending'
    RETURNING id, wallet_id, amount, request_id
), w AS (
    UPDATE {q(Wallet._meta.db_table)} AS wa
    SET held = wa.held - h.amount, balance = wa.balance - %(amount)s
    FROM h WHERE wa.id = h.wallet_id
    RETURNING wa.id, wa.organization_id, wa.balance, wa.held, wa.currency,
              h.id AS hold_id, h.request_id
), e AS (
    INSERT INTO {q(LedgerEntry._meta.db_table)} ({", ".join(columns)})
    SELECT {", ".join(expressions)} FROM w WHERE %(amount)s > 0
    RETURNING id
)"""  # noqa: S608
    return sql, param_fields


def pooled() -> bool:
    """True outside a transaction with a pool: a statement borrows a pooled connection."""
    db = connections[DEFAULT_DB_ALIAS]  # once: `connection` is a proxy looked up per use
    if db.pool is None or db.connection is not None:
        return False
    db.pool.open()  # no-op once open
    return True


def execute_one(sql: str, params: dict, pool_timeout: float | None = None):
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
    if pooled():
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
    department_id: int | None = None,
) -> PlacedHold:
    """wallets.services.hold_place in one statement (PostgreSQL): reserve `amount` on the wallet.

    With `enforce`, refused (InsufficientFunds, nothing written) unless available >= amount; the
    check and the reservation are one conditional UPDATE, so concurrent holds cannot overspend.
    A duplicate `request_id` raises IntegrityError and reserves nothing (the statement is
    atomic). The hold expires after `ttl_seconds` (KT_HOLD_TTL_SECONDS).
    """
    amount = quantize(amount)
    values = _hold_values(request_id, ttl_seconds, department_id)
    sql, param_fields = _hold_place_sql(enforce)
    params = statement_params(param_fields, values)
    params.update(amount=amount, wallet_id=wallet.pk)
    row = execute_one(sql, params)
    if row is None:
        raise hold_refusal(wallet=wallet, amount=amount)
    return PlacedHold(
        pk=row[0],
        organization_id=row[1],
        wallet_id=wallet.pk,
        request_id=request_id,
        amount=amount,
    )


def _hold_values(request_id: str, ttl_seconds: int | None, department_id: int | None) -> dict:
    """The new hold row's fields besides its wallet and amount."""
    now = timezone.now()
    ttl = settings.KT_HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    return {
        "request_id": request_id,
        "expires_at": now + timedelta(seconds=ttl),
        "created_at": now,
        "captured_amount": None,
        "resolved_at": None,
        "department_id": department_id,
    }


def hold_place_cascade_fast(
    *,
    wallets,
    amount: Decimal,
    request_id: str,
    ttl_seconds: int | None = None,
    department_id: int | None = None,
) -> PlacedHold:
    """Hold `amount` on the first of `wallets` (a chain, wallets/cascade.py, in order) that can
    cover it, in one statement; InsufficientFunds (nothing written) when none can. The chain's
    wallets must be one organization's (wallet_chain makes it so)."""
    amount = quantize(amount)
    values = _hold_values(request_id, ttl_seconds, department_id)
    sql, param_fields = _hold_cascade_sql(len(wallets))
    params = statement_params(param_fields, values)
    params.update(amount=amount, **{f"wallet_{n}": w.pk for n, w in enumerate(wallets)})
    row = execute_one(sql, params)
    if row is None:
        raise chain_refusal(wallets=wallets, amount=amount)
    return PlacedHold(
        pk=row[0], organization_id=row[1], wallet_id=row[2], request_id=request_id, amount=amount
    )
