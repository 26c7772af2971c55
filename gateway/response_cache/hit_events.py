"""A free cache hit's usage event (status `cache_hit`): written before the hit is answered, and
written together with the other hits of its process that arrive meanwhile.

One hit alone is one statement: the event inserted and the wallet's available funds read (for
`x-kt-wallet-available`). While PARALLEL such statements run (KT_RESPONSE_CACHE_HIT_PARALLEL,
1), hits that arrive queue, and the first of them then writes all of their events in one
multi-row INSERT (`unnest` of one array per column: the same statement text whatever the
batch's size, so PostgreSQL plans it once), one transaction, one round trip:
gateway/groupcommit.py's mechanism, with every caller returning only once the transaction
holding its event has committed (KT_GATEWAY_GROUP_COMMIT, as the captures). What that saves is
mostly PostgreSQL's work per event: a transaction, a round trip, and the spend rollups'
statement trigger (one delta row per statement, not per hit; docs/performance.md).

Durability is what a free hit's event had alone, no less: the transaction commits without
waiting for the WAL flush (gateway/response_cache/hits.py says why a free hit may;
KT_RESPONSE_CACHE_HIT_SYNC_COMMIT waits for it, one flush per batch), and a database that is
away is handled per hit by the capture's retries and outbox (gateway/capture.py). A batch that
fails otherwise (a duplicate request id) is rolled back whole and its events are written again
one by one, so each hit gets its own outcome: its event, or the error (the request fails:
never an answer without its event).
"""

from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections

from chargeback.money import ZERO
from gateway.capture import usage_capture
from gateway.fastpath import CONVERSION_FIELDS
from gateway.groupcommit import GroupCommit
from gateway.hooks import call_recorded
from gateway.models import UsageEvent
from gateway.recording import DATABASE_UNAVAILABLE
from wallets.fastpath import (
    ASYNC_COMMIT_CTE,
    execute_one,
    insert_columns,
    param_name,
    param_type,
    pooled,
    statement_params,
)
from wallets.fastpath import (
    enabled as on_postgresql,
)
from wallets.models import Wallet


def _commit_cte(sync: bool) -> tuple[str, str]:
    """The statement's commit mode: without the WAL flush (a free hit's default), or with it
    (KT_RESPONSE_CACHE_HIT_SYNC_COMMIT): the CTE, and the row source that makes it run."""
    return ("", "") if sync else (ASYNC_COMMIT_CTE, "cfg")


@cache
def _one_sql(sync: bool = False):
    """One event: its id and the wallet's available funds (NULL without a wallet)."""
    q = connection.ops.quote_name
    # A hit is never converted (the hit price is in the wallet's currency): no conversion columns.
    columns, expressions, param_fields = insert_columns(
        UsageEvent, {}, "e", exclude=CONVERSION_FIELDS
    )
    wallet_id = param_name(param_fields, "wallet_id")
    cte, source = _commit_cte(sync)
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""
WITH {cte}ev AS (
    INSERT INTO {q(UsageEvent._meta.db_table)} ({", ".join(columns)})
    SELECT {", ".join(expressions)}{f" FROM {source}" if source else ""}
    RETURNING id
)
SELECT (SELECT id FROM ev),
       (SELECT balance - held FROM {q(Wallet._meta.db_table)}
        WHERE id = CAST(%({wallet_id})s AS bigint))
"""  # noqa: S608
    return sql, param_fields


@cache
def _batch_sql(sync: bool = False):
    """Many events, each parameter of `_one_sql` an array of their values (same names): each
    event's request id, id and its wallet's available funds."""
    q = connection.ops.quote_name
    columns, _expressions, param_fields = insert_columns(
        UsageEvent, {}, "e", exclude=CONVERSION_FIELDS
    )
    arrays = [
        f"CAST(%({name})s AS {param_type(field) or 'text'}[])" for field, name, _ in param_fields
    ]
    names = [f"c{n}" for n in range(len(param_fields))]
    wallet = q(Wallet._meta.db_table)
    cte, source = _commit_cte(sync)
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""
WITH {cte}ev AS (
    INSERT INTO {q(UsageEvent._meta.db_table)} ({", ".join(columns)})
    SELECT {", ".join(names)} FROM {f"{source}, " if source else ""}unnest({", ".join(arrays)}) AS r({", ".join(names)})
    RETURNING id, request_id, wallet_id
)
SELECT ev.request_id, ev.id, w.balance - w.held FROM ev LEFT JOIN {wallet} AS w ON w.id = ev.wallet_id
"""  # noqa: S608
    request_id = param_name(param_fields, "request_id")
    return sql, [name for _field, name, _prepare in param_fields], request_id


def _together(batch) -> list:
    """The batch's events in one statement (one transaction); each one's row, in order."""
    sql, names, request_id = _batch_sql(settings.KT_RESPONSE_CACHE_HIT_SYNC_COMMIT)
    rows = [hit.params for hit in batch]
    params = {name: [row[name] for row in rows] for name in names}
    db = connections[DEFAULT_DB_ALIAS]
    with db.wrap_database_errors, db.pool.connection() as conn:
        found = {
            rid: (event_id, available) for rid, event_id, available in conn.execute(sql, params)
        }
    return [found[row[request_id]] for row in rows]


# Events being written at once per process before hits queue (KT_RESPONSE_CACHE_HIT_PARALLEL):
# an event written alone is the shortest wait, but each takes a pooled connection (DB_POOL_MAX)
# and a statement of its own, and the fewer run at once, the larger the batches (one rollup
# delta row per batch, not per hit: gateway/migrations/0008). docs/performance.md has both.
PARALLEL = settings.KT_RESPONSE_CACHE_HIT_PARALLEL

# The hits of this process that arrive together share one transaction.
hit_group = GroupCommit(execute_one, _together, parallel=PARALLEL)


def hit_event_record(fields: dict):
    """Write a free hit's event (`fields`: usage_record's event fields) and announce it; the
    wallet's available funds (None without a wallet or when the event went to the outbox)."""
    if not on_postgresql():
        return usage_capture(None, ZERO, fields)
    sql, param_fields = _one_sql(settings.KT_RESPONSE_CACHE_HIT_SYNC_COMMIT)
    params = statement_params(param_fields, fields)
    try:
        if settings.KT_GATEWAY_GROUP_COMMIT and pooled():
            row = hit_group.execute(sql, params, hold_id=None, wallet_id=None)
        else:
            row = execute_one(sql, params)
    except DATABASE_UNAVAILABLE:
        try:
            return usage_capture(None, ZERO, fields)  # retried, else kept in the outbox
        except IntegrityError:
            return None  # the first attempt committed after all: the event is there
    call_recorded(fields)
    return row[1]
