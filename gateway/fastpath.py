"""The gateway's capture in one PostgreSQL statement: the wallet half (wallets/fastpath.py
`capture_ctes`: hold, wallet, capture entry) and the call's usage event, in one round trip.

Same semantics and guarantees as the ORM path (gateway.recording.usage_record: hold_capture +
UsageEvent create in one transaction). The hold is resolved only if still pending (exactly once,
even against a concurrent capture, release or the expiry sweeper), and only then are the wallet
updated and the capture entry inserted. The usage event is inserted in the same statement; for a
hold resolved elsewhere it records cost 0, as on the ORM path. Captures on one wallet arriving
together commit in one transaction (gateway/groupcommit.py, KT_GATEWAY_GROUP_COMMIT).
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chargeback.money import ZERO, quantize
from gateway.groupcommit import GroupCommit
from gateway.hooks import spend_recorded_after_commit
from gateway.models import UsageEvent
from gateway.recording import usage_settle
from wallets.fastpath import (
    ASYNC_COMMIT_CTE,
    PlacedHold,
    async_commit,
    capture_ctes,
    execute_one,
    insert_columns,
    param_name,
    pooled,
    statement_params,
)
from wallets.models import Wallet

__all__ = [
    "CONVERSION_FIELDS",
    "CaptureResult",
    "capture_and_record",
    "capture_and_record_fast",
    "capture_group",
]


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


# An event priced in the wallet's currency (the common path) leaves these NULL: its statement
# is the one of before, 3,976 bytes and 44 parameters, under psycopg's 4,096 bytes / 50
# parameters for caching its placeholder conversion (tests/pricing/test_conversion.py checks).
# A converted cost uses a second statement with them (docs/pricing.md, "Currencies").
CONVERSION_FIELDS = frozenset({"price_currency", "price_cost", "exchange_rate"})


def converted(event_fields: dict) -> bool:
    return event_fields.get("exchange_rate") is not None


@cache
def _capture_sql(async_commit: bool, with_conversion: bool = False):
    q = connection.ops.quote_name
    event_table = q(UsageEvent._meta.db_table)
    wallet_ctes, ledger_fields = capture_ctes()
    event_columns, event_expressions, event_fields = insert_columns(
        UsageEvent, {}, "e", exclude=frozenset() if with_conversion else CONVERSION_FIELDS
    )
    error_code = param_name(event_fields, "error_code")
    wallet_id = param_name(event_fields, "wallet_id")
    # A hold resolved elsewhere: the event records cost 0 and says why, as usage_record does.
    unresolved = {
        "cost": "0",
        "above_hold": "false",
        "price_cost": "0",
        "error_code": f"COALESCE(NULLIF(CAST(%({error_code})s AS text), ''), "
        "'hold_already_resolved')",
    }
    event_attnames = [
        f.attname
        for f in UsageEvent._meta.concrete_fields
        if not f.primary_key and (with_conversion or f.attname not in CONVERSION_FIELDS)
    ]
    unresolved_expressions = [
        unresolved.get(attname, expression)
        for attname, expression in zip(event_attnames, event_expressions, strict=True)
    ]
    # Unless the request has its event. On PostgreSQL the events are partitioned by month and
    # one event per request id is kept by a table of request ids (gateway migration 0013), which
    # an ON CONFLICT on the events cannot name: gateway_event_new() reads it with a fresh
    # snapshot, so it sees an event committed while this statement waited for the hold's lock.
    unless_evented = f" AND gateway_event_new(%({param_name(event_fields, 'request_id')})s)"
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""
WITH {ASYNC_COMMIT_CTE if async_commit else ""}{wallet_ctes}, r AS (
    SELECT (SELECT count(*) FROM h) = 1 OR NOT %(has_hold)s AS charged{
        " FROM cfg" if async_commit else ""
    }
), ev AS (
    INSERT INTO {event_table} ({", ".join(event_columns)})
    SELECT {", ".join(event_expressions)} FROM r WHERE r.charged
    RETURNING id
), ev_unresolved AS (
    INSERT INTO {event_table} ({", ".join(event_columns)})
    SELECT {", ".join(unresolved_expressions)} FROM r WHERE NOT r.charged{unless_evented}
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


# Concurrent captures share a transaction (gateway/groupcommit.py); KT_GATEWAY_GROUP_COMMIT.
capture_group = GroupCommit(execute_one)


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
    sql, ledger_fields, event_param_fields = _capture_sql(async_commit(), converted(event_fields))
    params = statement_params(
        ledger_fields,
        {
            "description": "",
            "idempotency_key": None,
            "request_hash": "",
            "actor": "",
            "created_at": now,
        },
    )
    params.update(statement_params(event_param_fields, event_fields))
    params.update(
        amount=amount,
        now=now,
        hold_id=hold.pk if hold is not None else None,
        hold_request_id=event_fields["request_id"],
        has_hold=hold is not None,
    )
    if pool_timeout is None and settings.KT_GATEWAY_GROUP_COMMIT and pooled():
        row = capture_group.execute(
            sql,
            params,
            hold_id=hold.pk if hold is not None else None,
            wallet_id=hold.wallet_id if hold is not None else None,
        )
    else:
        row = execute_one(sql, params, pool_timeout)
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
