"""Spend read from usage events. Every screen, file and alert that shows spend goes through
here, so the admin, dashboards, exports and budget emails agree to the cent: sum at full
precision (`COST_SUM`), round once for display (chargeback.money.to_cents)."""

from datetime import date
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from chargeback.models import ConsumerGroup, Department, Organization
from chargeback.money import ZERO, AmountField
from chargeback.periods import day_range
from gateway.models import UsageEvent
from gateway.rollups import FIELDS as ROLLUP_FIELDS
from gateway.rollups import rollup_figures, rollup_total

# The one sum of event costs (full precision, 0 for no events).
COST_SUM = Coalesce(Sum("cost"), ZERO, output_field=AmountField())
# Requests that were answered: by the provider, or from the response cache.
SERVED = (UsageEvent.Status.OK, UsageEvent.Status.CACHE_HIT)
# Realised savings of the response cache: what its hits would have cost at the price in force,
# less what they did cost (the organization's cache price, if any). Full precision. Annotate it
# before an annotation named `cost`, which F("cost") would mean once it exists.
_HIT = Q(status=UsageEvent.Status.CACHE_HIT)
CACHE_SAVED_SUM = Coalesce(
    Sum(F("saved") - F("cost"), filter=_HIT), ZERO, output_field=AmountField()
)
CACHE_HITS = Count("id", filter=_HIT)
# spend_by's consumer-group grouping: by the group's name, read as its id from the rollups.
GROUP_NAME = "consumer_group__name"
# The last day a range "from a day on" reaches (day_range adds one day to it).
_OPEN_END = date(9999, 12, 30)


def events_in_range(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> QuerySet[UsageEvent]:
    start, end = day_range(organization, date_from, date_to)
    qs = UsageEvent.objects.filter(
        organization=organization, created_at__gte=start, created_at__lt=end
    )
    if department is not None:
        qs = qs.filter(department=department)
    return qs


def spend_total(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> Decimal:
    """Unrounded total cost; round with money.to_cents for display. From the daily rollups
    (gateway/rollups.py): the same sum as over the events, without reading them."""
    return rollup_total(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )["cost"]


def spend_per_department(
    *, organization: Organization, date_from: date, date_to: date
) -> dict[int | None, Decimal]:
    """Unrounded cost per department id (None: events without one), from the daily rollups:
    spend_total of each department in one query."""
    groups = rollup_figures(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        group_by=("department_id",),
    )
    return {department_id: figures["cost"] for (department_id,), figures in groups.items()}


def spend_by(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    field: str,
    department: Department | None = None,
) -> list[dict]:
    """Spend grouped by one event field (department__team_id, model_requested, provider, user, ...),
    largest first: [{key, cost, requests, prompt_tokens, completion_tokens, cache_hits,
    cache_saved}]. Department, model, provider, user and consumer group (GROUP_NAME) come from
    the daily rollups (gateway/rollups.py), the rest from events."""
    if field in ROLLUP_FIELDS or field == GROUP_NAME:
        groups = rollup_figures(
            organization=organization,
            date_from=date_from,
            date_to=date_to,
            group_by=("consumer_group_id" if field == GROUP_NAME else ROLLUP_FIELDS[field],),
            department=department,
        )
        ids = [key for (key,) in groups]
        names = group_names(organization=organization, ids=ids) if field == GROUP_NAME else {}
        rows = [
            {"key": names.get(key, key), **{k: figures[k] for k in SPEND_FIGURES}}
            for (key,), figures in groups.items()
        ]
        # The events' ORDER BY -cost, field (NULL last), ties by key.
        rows.sort(key=lambda r: (-r["cost"], r["key"] is None, r["key"] or ""))
        return rows
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    rows = (
        qs.values(field)
        .annotate(
            cache_saved=CACHE_SAVED_SUM,
            cache_hits=CACHE_HITS,
            cost=COST_SUM,
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by("-cost", field)
    )
    return [{"key": r[field], **{k: r[k] for k in SPEND_FIGURES}} for r in rows]


def provider_billed(
    *, organization: Organization, date_from: date, date_to: date
) -> dict[str, Decimal]:
    """Unrounded cost per provider of what the providers billed (every event but the cache
    hits, whose cost is the organization's own cache price), for reconciling against their
    invoices; from the daily rollups. Providers with nothing but cache hits are left out."""
    groups = rollup_figures(
        organization=organization, date_from=date_from, date_to=date_to, group_by=("provider",)
    )
    return {
        provider: figures["cost"] - figures["cache_cost"]
        for (provider,), figures in groups.items()
        if figures["requests"] > figures["cache_hits"]
    }


SPEND_FIGURES = (
    "cost",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cache_hits",
    "cache_saved",
)


def group_names(*, organization: Organization, ids) -> dict:
    """Consumer group id -> name (unique in an organization, so no two rows merge)."""
    ids = [key for key in ids if key is not None]
    if not ids:
        return {}
    rows = ConsumerGroup.objects.filter(organization=organization, pk__in=ids)
    return dict(rows.values_list("pk", "name"))


def cache_saved_total(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> Decimal:
    """Unrounded realised savings of the response cache in the range (CACHE_SAVED_SUM), from
    the daily rollups."""
    return rollup_total(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )["cache_saved"]


# --- exports ---


def spend_grouped(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    fields: list[str],
    department: Department | None = None,
) -> list[dict]:
    """Unrounded cost, requests (failed ones: neither answered nor a cache hit), tokens and cache
    hits and their realised savings grouped by several event fields,
    ordered by those fields: the chargeback export sums these at full precision and rounds once."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    return list(
        qs.values(*fields)
        .annotate(
            cache_saved=CACHE_SAVED_SUM,
            cache_hits=CACHE_HITS,
            cost=COST_SUM,
            requests=Count("id"),
            failed_requests=Count("id", filter=~Q(status__in=SERVED)),
            prompt_tokens=Sum("prompt_tokens"),
            cached_tokens=Sum("cached_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by(*fields)
    )


def premium_spend_share(*, organization: Organization, department_id: int, month: date) -> Decimal:
    """A department's spend on premium models (the catalog's flag on the price that priced each
    event) as a fraction of its spend, from `month`'s first day on; 0 without spend. From the
    daily rollups: the routing policy's share cap reads it on the request path."""
    totals = rollup_total(
        organization=organization,
        date_from=month,
        date_to=_OPEN_END,
        department=department_id,
    )
    return totals["premium_cost"] / totals["cost"] if totals["cost"] else ZERO


POLICY_SAVED_SUM = Coalesce(Sum("policy_saved"), ZERO, output_field=AmountField())


def savings_by_policy(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> list[dict]:
    """What each routing policy rule changed and saved (gateway/policies.py), largest saving
    first: [{policy, requests, cost, saved}], unrounded; `policy` is "name:rule"."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    ).exclude(policy="")
    rows = (
        qs.values("policy")
        .annotate(requests=Count("id"), cost=COST_SUM, saved=POLICY_SAVED_SUM)
        .order_by("-saved", "policy")
    )
    return list(rows)
