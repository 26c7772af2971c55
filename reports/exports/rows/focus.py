"""`focus`: the same events in FinOps FOCUS (1.0) column names, one row per event.

Mapping (also in docs/exports.md): prepaid wallets have no discounts or commitments, so
BilledCost = EffectiveCost = ListCost = ContractedCost = the event's cost. A request is a usage
charge (ChargeCategory "Usage", ChargeFrequency "Usage-Based") whose charge period is the UTC hour
it happened in; ConsumedQuantity is its tokens (prompt + completion). The department is the
sub-account, the request the resource, provider/model the SKU. Columns FOCUS has no name for
carry the `x_` prefix the specification reserves for extensions.
"""

from collections.abc import Iterator
from datetime import UTC, timedelta

from chargeback.periods import month_end, month_start
from reports.exports.cells import DECIMAL, INT, JSON, TEXT, Column, JsonCanon, RawJson, iso_utc
from reports.exports.rows import ExportContext, Totals, events

SERVICE_NAMES = {"openai": "OpenAI API", "anthropic": "Anthropic API", "fake": "Built-in fake"}
SERVICE_CATEGORY = "AI and Machine Learning"

COLUMNS = [
    Column("BilledCost", DECIMAL, "the event's cost"),
    Column("EffectiveCost", DECIMAL, "= BilledCost (no discounts on prepaid wallets)"),
    Column("ListCost", DECIMAL, "= BilledCost (priced from the catalog at the event's time)"),
    Column("ContractedCost", DECIMAL, "= BilledCost"),
    Column("BillingCurrency", TEXT),
    Column("BillingAccountId", TEXT, "organization slug"),
    Column("BillingAccountName", TEXT, "organization name"),
    Column("BillingPeriodStart", TEXT, "first instant of the event's month, organization time"),
    Column("BillingPeriodEnd", TEXT, "first instant of the next month (exclusive)"),
    Column("ChargePeriodStart", TEXT, "the UTC hour of the request"),
    Column("ChargePeriodEnd", TEXT, "one hour later (exclusive)"),
    Column("ChargeCategory", TEXT, "Usage"),
    Column("ChargeClass", TEXT, "empty (no corrections in this file)"),
    Column("ChargeDescription", TEXT),
    Column("ChargeFrequency", TEXT, "Usage-Based"),
    Column("ConsumedQuantity", INT, "prompt + completion tokens"),
    Column("ConsumedUnit", TEXT, "Tokens"),
    Column("PricingQuantity", INT, "= ConsumedQuantity"),
    Column("PricingUnit", TEXT, "Tokens"),
    Column("ProviderName", TEXT),
    Column("PublisherName", TEXT),
    Column("InvoiceIssuerName", TEXT),
    Column("ServiceCategory", TEXT, SERVICE_CATEGORY),
    Column("ServiceName", TEXT),
    Column("ResourceId", TEXT, "the request id"),
    Column("ResourceName", TEXT, "model served (else requested)"),
    Column("ResourceType", TEXT, "LLM Request"),
    Column("SkuId", TEXT, "provider/model"),
    Column("SubAccountId", TEXT, "department team_id"),
    Column("SubAccountName", TEXT, "department name"),
    Column("Tags", JSON, "the request's X-KT-Tags"),
    Column("x_EventId", INT),
    Column("x_ConsumerGroup", TEXT),
    Column("x_User", TEXT),
    Column("x_Endpoint", TEXT),
    Column("x_TargetId", TEXT),
    Column("x_ModelRequested", TEXT),
    Column("x_ModelServed", TEXT),
    Column("x_PromptTokens", INT),
    Column("x_CachedTokens", INT),
    Column("x_CacheWriteTokens", INT),
    Column("x_CompletionTokens", INT),
    Column("x_Status", TEXT),
    Column("x_ErrorCode", TEXT),
    Column("x_UsageSource", TEXT),
    Column("x_PromptFingerprint", TEXT),
    Column("x_CacheSaved", DECIMAL, "a cache hit (x_Status cache_hit): the cost it avoided"),
]

FIELDS = [
    "id",
    "created_at",
    "request_id",
    "department__team_id",
    "department__name",
    "consumer_group__name",
    "user",
    "tags_text",
    "endpoint",
    "provider",
    "target_id",
    "model_requested",
    "model_served",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "cost",
    "currency",
    "status",
    "error_code",
    "usage_source",
    "prompt_fingerprint",
    "saved",
]


def columns(ctx: ExportContext) -> list[Column]:
    return COLUMNS


def count(ctx: ExportContext) -> int:
    return events.count(ctx)


def rows(ctx: ExportContext, totals: Totals) -> Iterator[tuple]:
    org = ctx.organization
    tz = org.tz
    billing_periods = {}
    canon = JsonCanon()

    def billing_period(created_at):
        day = created_at.astimezone(tz).date()
        key = (day.year, day.month)
        if key not in billing_periods:
            start, end = _month_bounds(tz, day)
            billing_periods[key] = (iso_utc(start), iso_utc(end))
        return billing_periods[key]

    values = (
        events.queryset(ctx)
        .order_by("created_at", "id")
        .values_list(*FIELDS)
        .iterator(chunk_size=events.CHUNK_SIZE)
    )
    for (
        event_id,
        created_at,
        request_id,
        team_id,
        department,
        group,
        user,
        tags,
        endpoint,
        provider,
        target_id,
        model_requested,
        model_served,
        prompt_tokens,
        cached_tokens,
        cache_write_tokens,
        completion_tokens,
        cost,
        currency,
        status,
        error_code,
        usage_source,
        fingerprint,
        saved,
    ) in values:
        tokens = prompt_tokens + completion_tokens
        totals.add(currency, "BilledCost", cost)
        totals.add(currency, "x_CacheSaved", saved)
        totals.count(currency, "rows", 1)
        totals.count(currency, "ConsumedQuantity", tokens)
        hour = created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        model = model_served or model_requested
        service = SERVICE_NAMES.get(provider, provider)
        period_start, period_end = billing_period(created_at)
        yield (
            cost,
            cost,
            cost,
            cost,
            currency,
            org.slug,
            org.name,
            period_start,
            period_end,
            iso_utc(hour),
            iso_utc(hour + timedelta(hours=1)),
            "Usage",
            None,
            f"{model} {endpoint}".strip(),
            "Usage-Based",
            tokens,
            "Tokens",
            tokens,
            "Tokens",
            service,
            service,
            service,
            SERVICE_CATEGORY,
            service,
            request_id,
            model,
            "LLM Request",
            f"{provider}/{model}",
            team_id,
            department,
            canon(tags) or RawJson("{}"),
            event_id,
            group,
            user,
            endpoint,
            target_id,
            model_requested,
            model_served,
            prompt_tokens,
            cached_tokens,
            cache_write_tokens,
            completion_tokens,
            status,
            error_code,
            usage_source,
            fingerprint,
            saved,
        )


def _month_bounds(tz, day):
    from datetime import datetime, time

    start = datetime.combine(month_start(day), time.min, tzinfo=tz)
    end = datetime.combine(month_end(day) + timedelta(days=1), time.min, tzinfo=tz)
    return start, end
