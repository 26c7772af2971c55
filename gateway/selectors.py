"""Spend read from usage events. Every screen, file and alert that shows spend goes through
here, so the admin, dashboards, exports and budget emails agree to the cent: sum at full
precision (`COST_SUM`), round once for display (chargeback.money.to_cents)."""

from datetime import date
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField
from chargeback.periods import day_range
from gateway.models import UsageEvent

# The one sum of event costs (full precision, 0 for no events).
COST_SUM = Coalesce(Sum("cost"), ZERO, output_field=AmountField())


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
    """Unrounded total cost; round with money.to_cents for display."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    return qs.aggregate(total=COST_SUM)["total"]


def spend_by(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    field: str,
    department: Department | None = None,
) -> list[dict]:
    """Spend grouped by one event field (department__team_id, model_requested, provider, user, ...),
    largest first: [{key, cost, requests, prompt_tokens, completion_tokens}]."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    rows = (
        qs.values(field)
        .annotate(
            cost=COST_SUM,
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by("-cost", field)
    )
    return [
        {
            "key": r[field],
            **{k: r[k] for k in ("cost", "requests", "prompt_tokens", "completion_tokens")},
        }
        for r in rows
    ]


# --- exports ---


def spend_grouped(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    fields: list[str],
    department: Department | None = None,
) -> list[dict]:
    """Unrounded cost, requests (and failed ones) and tokens grouped by several event fields,
    ordered by those fields: the chargeback export sums these at full precision and rounds once."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    return list(
        qs.values(*fields)
        .annotate(
            cost=COST_SUM,
            requests=Count("id"),
            failed_requests=Count("id", filter=~Q(status=UsageEvent.Status.OK)),
            prompt_tokens=Sum("prompt_tokens"),
            cached_tokens=Sum("cached_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by(*fields)
    )
