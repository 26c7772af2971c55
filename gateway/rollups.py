"""Spend figures from the daily rollups (gateway/rollup_models.py), for whole days of the
organization's calendar: the daily rows plus the deltas not folded yet, so exactly what summing
the raw events gives (tests/gateway/test_spend_rollups.py compares them), in a few milliseconds
whatever the month's size. Only what a rollup key can answer: the events' department, provider
and model; other groupings (user, tags) and filters (premium, provider-billed) sum the events.

The rollups are kept by PostgreSQL triggers (gateway/migrations/0007_spend_rollups.py). Other
databases (SQLite: the embedded demo, whose months are small) have none: there the same
figures are summed from the events.
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate

from chargeback.models import Department, Organization
from chargeback.money import ZERO
from chargeback.periods import day_range
from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily, SpendDelta

# spend_by's event fields -> the rollup's.
FIELDS = {
    "department__team_id": "department__team_id",
    "department_id": "department_id",
    "model_requested": "model",
    "provider": "provider",
}
FIGURES = ("cost", "requests", "prompt_tokens", "completion_tokens", "cache_hits", "cache_saved")
# Named apart from the fields they sum (an annotation may not shadow its own field).
_SUMS = {f"sum_{name}": Sum(name) for name in FIGURES}
# The same sums over the events, and the events' field for each rollup field.
_HIT = Q(status=UsageEvent.Status.CACHE_HIT)
_EVENT_SUMS = {
    "sum_cost": Sum("cost"),
    "sum_requests": Count("id"),
    "sum_prompt_tokens": Sum("prompt_tokens"),
    "sum_completion_tokens": Sum("completion_tokens"),
    "sum_cache_hits": Count("id", filter=_HIT),
    "sum_cache_saved": Sum(F("saved") - F("cost"), filter=_HIT),
}
_EVENT_FIELDS = {value: key for key, value in FIELDS.items()}
EXACT = Decimal("1e-8")  # the events' and rollups' precision (AmountField)


def rollups_in_use() -> bool:
    """True where triggers keep the rollups (PostgreSQL)."""
    return connection.vendor == "postgresql"


def rollup_figures(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    group_by: tuple[str, ...] = (),
    department: Department | None = None,
) -> dict[tuple, dict]:
    """{group key: {cost, requests, prompt_tokens, completion_tokens, cache_hits, cache_saved}}
    over the days [date_from, date_to], grouped by rollup fields (FIELDS' values; `day` too).
    Groups without any event (all their events deleted or moved) are left out, as a GROUP BY
    over the events would."""
    merged: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    if rollups_in_use():
        found = []
        for model in (SpendDaily, SpendDelta):
            rows = model.objects.filter(
                organization=organization, day__gte=date_from, day__lte=date_to
            )
            if department is not None:
                rows = rows.filter(department=department)
            found += _summed(rows.order_by(), group_by, _SUMS)
    else:
        found = _event_rows(organization, date_from, date_to, group_by, department)
    for row in found:
        figures = merged[tuple(row[f] for f in group_by)]
        for name in FIGURES:
            figures[name] += row[f"sum_{name}"] or 0
    return {
        key: {**f, "cost": _exact(f["cost"]), "cache_saved": _exact(f["cache_saved"])}
        for key, f in merged.items()
        if f["requests"]
    }


def _summed(rows, group_by: tuple[str, ...], sums: dict) -> list[dict]:
    return list(rows.values(*group_by).annotate(**sums)) if group_by else [rows.aggregate(**sums)]


def _event_rows(organization, date_from, date_to, group_by, department) -> list[dict]:
    """rollup_figures' rows summed from the events (no rollups on this database)."""
    start, end = day_range(organization, date_from, date_to)
    events = UsageEvent.objects.filter(
        organization=organization, created_at__gte=start, created_at__lt=end
    )
    if department is not None:
        events = events.filter(department=department)
    events = events.order_by()
    if not group_by:
        return [events.aggregate(**_EVENT_SUMS)]
    keys = {  # aliased: an annotation may not take a field's name
        f"key_{n}": TruncDate("created_at", tzinfo=organization.tz)
        if field == "day"
        else F(_EVENT_FIELDS[field])
        for n, field in enumerate(group_by)
    }
    rows = events.values(**keys).annotate(**_EVENT_SUMS)
    return [{**row, **{f: row[f"key_{n}"] for n, f in enumerate(group_by)}} for row in rows]


def _exact(amount) -> Decimal:
    """A sum at the events' 8 places at most: SQLite sums decimals as floats (52800.0000000002)."""
    if not amount:
        return ZERO
    if isinstance(amount, Decimal) and amount.as_tuple().exponent >= -8:
        return amount
    return Decimal(str(amount)).quantize(EXACT)


def rollup_total(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> dict:
    """The figures of the whole range (zeros when there are no events)."""
    totals = rollup_figures(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    return totals.get((), {**dict.fromkeys(FIGURES, 0), "cost": ZERO, "cache_saved": ZERO})


def rollups_fold() -> int:
    """Move the deltas into the daily rows (exactly once; see the migration's SQL). The beat
    task runs it every minute; readers are exact without it, only slower as deltas pile up."""
    if not rollups_in_use():
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_fold()")
        return cursor.fetchone()[0]


def rollups_rebuild(*, organization: Organization) -> None:
    """Recompute the organization's rollups from its events (exact even while it is serving)."""
    if not rollups_in_use():
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_rebuild(%s)", [organization.pk])
