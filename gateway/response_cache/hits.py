"""A cache hit: the stored reply served in the shape the request asked for, and its money.

Money: a hit places no hold and charges nothing, unless the organization set an internal cache
price (`hit_price`): then it reserves exactly that price and captures it at once, through the
same hold and capture as any call (402 when the wallet cannot cover it, with enforcement on).
Either way the hit's usage event has status `cache_hit`, the tokens the stored reply used,
`cost` = what was charged and `saved` = what the provider call would have cost at the price in
force now. A free hit's event moves no money: on PostgreSQL it is written in one statement
that does not wait for the WAL flush (a PostgreSQL crash may lose the last fraction of a second
of such events; never a charge), falling back to the capture's retries and outbox
(gateway/capture.py) when the database is away.
"""

from functools import cache

from django.db import IntegrityError, connection
from django.http import HttpResponse, StreamingHttpResponse

from chargeback.money import ZERO, storage_str
from gateway.capture import usage_capture
from gateway.fastpath import CONVERSION_FIELDS
from gateway.hooks import call_recorded
from gateway.models import UsageEvent
from gateway.pricing import cost_of
from gateway.recording import DATABASE_UNAVAILABLE
from gateway.response_cache.entry import Entry
from gateway.routing import wallet_of
from wallets.fastpath import (
    ASYNC_COMMIT_CTE,
    execute_one,
    insert_columns,
    param_name,
    statement_params,
)
from wallets.fastpath import (
    enabled as on_postgresql,
)
from wallets.models import Wallet


def hit_serve(call, entry: Entry) -> HttpResponse:
    """Answer `call` from `entry`: charge it (nothing, or the cache price), write its event,
    and return the reply with `x-kt-cache: hit`."""
    rule, ctx = call.ctx.cache, call.ctx
    call.model_served = entry.model_served
    price = rule.hit_price if ctx.cost_tracking else ZERO
    if price > ZERO:
        call._hold(price)  # a 402 (and its `rejected` event) when the wallet cannot cover it
    elif ctx.cost_tracking:
        call.wallet = wallet_of(ctx, call.user)  # attribution: the wallet that would have paid
    call.cost = price
    fields = call._event_fields(
        status=UsageEvent.Status.CACHE_HIT,
        http_status=200,
        usage=entry.usage,
        usage_source=entry.usage_source,
    )
    fields["saved"] = call.to_wallet(cost_of(call.price, entry.usage), call.price)
    call.done = True
    call.usage = entry.usage
    if call.hold is not None:
        call.available = usage_capture(call.hold, price, fields)
    elif not ctx.cost_tracking:
        usage_capture(None, ZERO, {**fields, "wallet_id": None}, tracked=False)
    else:
        call.available = _hit_record(fields)
    if entry.stream:
        response = StreamingHttpResponse(
            _replay(call, entry), content_type=entry.content_type or "text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    else:
        response = HttpResponse(entry.body, content_type=entry.content_type)
    response["x-kt-cache"] = "hit"
    return call._respond(response)


def _replay(call, entry: Entry):
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    yield from entry.stream_events(include_usage=include_usage)
    available = storage_str(call.available)
    yield (
        f": x-kt-request-id={call.request_id} x-kt-cost={storage_str(call.cost)}"
        f" x-kt-wallet-available={available}\n\n"
    ).encode()


@cache
def _hit_sql():
    q = connection.ops.quote_name
    # Never converted (the hit price is in the wallet's currency): the conversion columns NULL.
    columns, expressions, param_fields = insert_columns(
        UsageEvent, {}, "e", exclude=CONVERSION_FIELDS
    )
    wallet_id = param_name(param_fields, "wallet_id")
    # Only model metadata (table and column names) is formatted in; values are parameters.
    sql = f"""
WITH {ASYNC_COMMIT_CTE}ev AS (
    INSERT INTO {q(UsageEvent._meta.db_table)} ({", ".join(columns)})
    SELECT {", ".join(expressions)} FROM cfg
    RETURNING id
)
SELECT (SELECT id FROM ev),
       (SELECT balance - held FROM {q(Wallet._meta.db_table)}
        WHERE id = CAST(%({wallet_id})s AS bigint))
"""  # noqa: S608
    return sql, param_fields


def _hit_record(fields: dict):
    """Write a free hit's event; the wallet's available funds (None without a wallet)."""
    if not on_postgresql():
        return usage_capture(None, ZERO, fields)
    sql, param_fields = _hit_sql()
    try:
        available = execute_one(sql, statement_params(param_fields, fields))[1]
    except DATABASE_UNAVAILABLE:
        try:
            return usage_capture(None, ZERO, fields)  # retried, else kept in the outbox
        except IntegrityError:
            return None  # the first attempt committed after all: the event is there
    call_recorded(fields)
    return available
