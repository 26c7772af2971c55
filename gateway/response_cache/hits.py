"""A cache hit: the stored reply served in the shape the request asked for, and its money.

Money: a hit places no hold and charges nothing, unless the organization set an internal cache
price (`hit_price`): then it reserves exactly that price and captures it at once, through the
same hold and capture as any call (402 when the wallet cannot cover it, with enforcement on).
Either way the hit's usage event has status `cache_hit`, the tokens the stored reply used,
`cost` = what was charged and `saved` = what the provider call would have cost at the price in
force now. A free hit's event moves no money: on PostgreSQL it is written in one statement
that does not wait for the WAL flush (a PostgreSQL crash may lose the last fraction of a second
of such events; never a charge), together with the other hits of its process that arrive
meanwhile (gateway/response_cache/hit_events.py), falling back to the capture's retries and
outbox (gateway/capture.py) when the database is away.
"""

from django.http import HttpResponse, StreamingHttpResponse

from chargeback.money import ZERO, storage_str
from gateway.capture import usage_capture
from gateway.models import UsageEvent
from gateway.pricing import cost_of
from gateway.response_cache.entry import Entry
from gateway.response_cache.hit_events import hit_event_record
from gateway.routing import wallet_of


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
    fields["saved"] = cost_of(call.price, entry.usage)
    call.done = True
    call.usage = entry.usage
    if call.hold is not None:
        call.available = usage_capture(call.hold, price, fields)
    elif not ctx.cost_tracking:
        usage_capture(None, ZERO, {**fields, "wallet_id": None}, tracked=False)
    else:
        call.available = hit_event_record(fields)
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
