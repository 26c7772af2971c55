"""Spend figures from the daily rollups (gateway/rollup_models.py), for whole days of the
organization's calendar: the daily rows plus the deltas not folded yet, so exactly what summing
the raw events gives (tests/gateway/test_spend_rollups.py compares them), in a few milliseconds
whatever the month's size. Only what a rollup key can answer: the events' department, provider
and model; other groupings (user, tags) and filters (premium, provider-billed) sum the events.
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum

from chargeback.models import Department, Organization
from chargeback.money import ZERO
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
    for model in (SpendDaily, SpendDelta):
        rows = model.objects.filter(organization=organization, day__gte=date_from, day__lte=date_to)
        if department is not None:
            rows = rows.filter(department=department)
        rows = rows.order_by()
        found = rows.values(*group_by).annotate(**_SUMS) if group_by else [rows.aggregate(**_SUMS)]
        for row in found:
            figures = merged[tuple(row[f] for f in group_by)]
            for name in FIGURES:
                figures[name] += row[f"sum_{name}"] or 0
    return {
        key: {**f, "cost": Decimal(f["cost"]), "cache_saved": Decimal(f["cache_saved"])}
        for key, f in merged.items()
        if f["requests"]
    }


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
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_fold()")
        return cursor.fetchone()[0]


def rollups_rebuild(*, organization: Organization) -> None:
    """Recompute the organization's rollups from its events (exact even while it is serving)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_rebuild(%s)", [organization.pk])
