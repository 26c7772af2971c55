"""`events`: one row per usage event, every attribution field, ordered by (created_at, id)."""

from collections.abc import Iterator

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from gateway.models import UsageEvent
from gateway.selectors import events_in_range
from reports.exports.cells import (
    BOOL,
    DATETIME,
    DECIMAL,
    INT,
    JSON,
    TEXT,
    Column,
    JsonCanon,
    iso_utc,
)
from reports.exports.rows import CHUNK_SIZE, ExportContext, Totals, utc_text

# (column, kind, queryset field or None when computed, description)
FIELDS = [
    ("created_at", DATETIME, "created_at", "when the gateway recorded the request, ISO 8601 UTC"),
    ("event_id", INT, "id", "the event's database id"),
    ("request_id", TEXT, "request_id", "the gateway's request id (response header)"),
    ("organization", TEXT, None, "organization slug"),
    ("team_id", TEXT, "department__team_id", "the department charged"),
    ("department", TEXT, "department__name", ""),
    ("consumer_group", TEXT, "consumer_group__name", "the key's consumer group"),
    ("user", TEXT, "user", "end user (`user` field or X-KT-User)"),
    ("tags", JSON, "tags_text", "X-KT-Tags as a JSON object"),
    ("endpoint", TEXT, "endpoint", ""),
    ("provider", TEXT, "provider", ""),
    ("target", TEXT, "target_id", "the provider target that served it"),
    ("model_requested", TEXT, "model_requested", ""),
    ("model_served", TEXT, "model_served", ""),
    ("stream", BOOL, "stream", ""),
    ("prompt_tokens", INT, "prompt_tokens", "all input tokens, cached ones included"),
    ("cached_tokens", INT, "cached_tokens", "input tokens read from the provider's cache"),
    ("cache_write_tokens", INT, "cache_write_tokens", ""),
    ("completion_tokens", INT, "completion_tokens", ""),
    ("total_tokens", INT, None, "prompt_tokens + completion_tokens"),
    ("cost", DECIMAL, "cost", "charged cost at full precision (8 places)"),
    ("currency", TEXT, "currency", ""),
    ("price_id", INT, "price_id", "the catalog row that priced it (a mid-month change shows here)"),
    ("usage_source", TEXT, "usage_source", "provider, estimated or none"),
    ("status", TEXT, "status", ""),
    ("http_status", INT, "http_status", ""),
    ("error_code", TEXT, "error_code", ""),
    ("latency_ms", INT, "latency_ms", ""),
    ("ttft_ms", INT, "ttft_ms", "time to first token (streams)"),
    ("prompt_fingerprint", TEXT, "prompt_fingerprint", "hash of the prompt, never the text"),
    ("above_hold", BOOL, "above_hold", "the provider billed more than the hold reserved"),
    (
        "saved",
        DECIMAL,
        "saved",
        "status cache_hit: what the provider call would have cost (its cost is the cache price)",
    ),
    ("policy", TEXT, "policy", "the routing policy and rule that changed the model (name:rule)"),
    ("policy_saved", DECIMAL, "policy_saved", "what that policy saved against the model asked for"),
    ("attempts", JSON, "attempts", "failover: targets tried or skipped before the one that served"),
    # Priced in another currency than the wallet's (docs/pricing.md, "Currencies"); empty when
    # priced in the wallet's. `cost` is always the wallet's figure: every total sums `cost`.
    ("price_currency", TEXT, "price_currency", "the price's currency, when converted"),
    ("price_cost", DECIMAL, "price_cost", "the cost in the price's currency, when converted"),
    ("exchange_rate", DECIMAL, "exchange_rate", "cost = price_cost x exchange_rate (8 places)"),
]

QUERY_FIELDS = [f for _, _, f, _ in FIELDS if f]
_I = {f: i for i, f in enumerate(QUERY_FIELDS)}


def columns(ctx: ExportContext) -> list[Column]:
    return [Column(name, kind, desc) for name, kind, _, desc in FIELDS]


def queryset(ctx: ExportContext) -> QuerySet[UsageEvent]:
    """The events of the export's scope; `focus` reads the same rows."""
    qs = events_in_range(
        organization=ctx.organization,
        date_from=ctx.date_from,
        date_to=ctx.date_to,
        department=ctx.department,
    )
    if ctx.filters.get("provider"):
        qs = qs.filter(provider=ctx.filters["provider"])
    # Tags as the database's text: canonicalised once per distinct value (cells.JsonCanon)
    # instead of a JSON parse and dump per row.
    qs = qs.annotate(tags_text=Cast("tags", output_field=TextField()))
    created_text = utc_text("created_at")
    if created_text is not None:
        qs = qs.annotate(created_text=created_text)
    return qs


def count(ctx: ExportContext) -> int:
    return queryset(ctx).count()


def rows(ctx: ExportContext, totals: Totals) -> Iterator[tuple]:
    slug = (ctx.organization.slug,)
    ic, icur, ip, io = _I["cost"], _I["currency"], _I["prompt_tokens"], _I["completion_tokens"]
    isaved = _I["saved"]
    # The two computed columns sit at fixed places: organization after request_id, total_tokens
    # before cost; slicing the fetched tuple keeps the per-row work small (1M rows in seconds).
    a, t, b = _I["request_id"] + 1, _I["tags_text"], _I["cost"]
    canon = JsonCanon()
    qs = queryset(ctx)
    fields = list(QUERY_FIELDS)
    as_text = "created_text" in qs.query.annotations
    if as_text:
        fields[0] = "created_text"
    values = qs.order_by("created_at", "id").values_list(*fields).iterator(chunk_size=CHUNK_SIZE)
    iso = str if as_text else iso_utc
    amounts, counts = totals.amounts, totals.counts
    for v in values:
        currency = v[icur]
        total_tokens = v[ip] + v[io]
        amounts[currency]["cost"] += v[ic]
        amounts[currency]["saved"] += v[isaved]
        by_currency = counts[currency]
        by_currency["rows"] += 1
        by_currency["tokens"] += total_tokens
        yield (
            iso(v[0]),
            *v[1:a],
            *slug,
            *v[a:t],
            canon(v[t]),
            *v[t + 1 : b],
            total_tokens,
            *v[b:],
        )
