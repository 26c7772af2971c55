"""Reads behind the dashboard pages. Spend comes from `gateway.selectors` (sum at full precision,
round once with `to_cents`), so every figure equals what the admin and the exports show."""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, Max, QuerySet

from budgets.models import Budget
from chargeback.errors import ApplicationError, NotFound
from chargeback.models import Department, Membership, Organization
from chargeback.money import ZERO, to_cents
from chargeback.periods import local_today, month_end, month_start
from gateway.models import UsageEvent
from gateway.rollups import rollup_figures
from gateway.selectors import (
    COST_SUM,
    cache_saved_total,
    events_in_range,
    spend_by,
    spend_total,
)

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# --- who sees what ------------------------------------------------------------------------------


def dashboard_organization(*, user, slug: str | None = None) -> Organization:
    """The organization a signed-in user may look at: their membership's; a superuser picks one
    with `slug` (else the first). Anything else is NotFound, never a hint that it exists."""
    if user.is_superuser:
        orgs = Organization.objects.order_by("name", "id")
        org = orgs.filter(slug=slug).first() if slug else orgs.first()
        if org is None:
            raise NotFound("no such organization")
        return org
    membership = Membership.objects.select_related("organization").filter(user=user).first()
    if membership is None or (slug and membership.organization.slug != slug):
        raise NotFound("no such organization")
    return membership.organization


def dashboard_departments(*, organization: Organization, user) -> QuerySet[Department]:
    """Departments the user may see: budget owners only their own, everyone else all of them."""
    qs = Department.objects.filter(organization=organization).order_by("name")
    if user.is_superuser:
        return qs
    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None:
        return qs.none()
    if membership.role == Membership.Role.BUDGET_OWNER:
        return qs.filter(pk__in=membership.departments.values("pk"))
    return qs


def dashboard_department(*, organization: Organization, user, team_id: str) -> Department:
    dept = dashboard_departments(organization=organization, user=user).filter(team_id=team_id)
    found = dept.first()
    if found is None:
        raise NotFound("no such department")
    return found


# --- months -------------------------------------------------------------------------------------


def month_parse(value: str) -> date:
    match = _MONTH.match(value or "")
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise ApplicationError("month must look like YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_latest_with_events(*, organization: Organization) -> date:
    """The most recent month (organization's time zone) that has events; this month if none."""
    last = UsageEvent.objects.filter(organization=organization).aggregate(at=Max("created_at"))
    if last["at"] is None:
        return month_start(local_today(organization))
    return month_start(last["at"].astimezone(organization.tz).date())


def month_previous(month: date) -> date:
    return month_start(month - timedelta(days=1))


def months_back(month: date, count: int) -> list[date]:
    """`count` month starts ending with `month`, oldest first."""
    months = [month]
    for _ in range(count - 1):
        months.append(month_previous(months[-1]))
    return months[::-1]


# --- building blocks ----------------------------------------------------------------------------


def budgets_by_department(*, organization: Organization) -> dict[int, Decimal]:
    """Monthly budget amount per department id (departments without one are absent)."""
    rows = Budget.objects.filter(organization=organization, period=Budget.Period.MONTH)
    return dict(rows.values_list("department_id", "amount"))


def premium_spend_by_department(
    *, organization: Organization, date_from: date, date_to: date, department=None
) -> dict[int | None, Decimal]:
    """Unrounded spend on models the catalog marks premium, per department id."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    ).filter(price__premium=True)
    return {
        r["department_id"]: r["cost"] for r in qs.values("department_id").annotate(cost=COST_SUM)
    }


def premium_models(
    *, organization: Organization, date_from: date, date_to: date, department=None
) -> list[str]:
    """Names of the premium models used in the scope, costliest first."""
    qs = events_in_range(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    ).filter(price__premium=True)
    rows = qs.values("model_requested").annotate(cost=COST_SUM).order_by("-cost", "model_requested")
    return [r["model_requested"] for r in rows]


@dataclass
class Repeats:
    """Successful requests whose prompt fingerprint was already seen earlier in the same
    department and month; caching would have answered them, saving their cost."""

    requests: int = 0
    repeated: int = 0
    repeated_cost: Decimal = ZERO

    @property
    def rate(self) -> Decimal:
        return Decimal(self.repeated) / self.requests if self.requests else ZERO

    @property
    def savings(self) -> Decimal:
        return to_cents(self.repeated_cost)


def repeats_by_department(
    *, organization: Organization, date_from: date, date_to: date, department=None
) -> dict[int | None, Repeats]:
    return repeats_by(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        department=department,
        field="department_id",
    )


def repeats_by(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    field: str | tuple,
    department=None,
) -> dict:
    """Repeats (a prompt fingerprint seen earlier in the same department and range) counted
    under each value of an event field (department_id, model_requested, provider, user, ...;
    a tuple of fields: keyed by their values' tuple): what caching would still save. Requests the response cache answered are not among them
    (their status is `cache_hit`): what the cache did save is CACHE_SAVED_SUM."""
    qs = (
        events_in_range(
            organization=organization, date_from=date_from, date_to=date_to, department=department
        )
        .filter(status=UsageEvent.Status.OK)
        .exclude(prompt_fingerprint="")
        .order_by("created_at", "id")
        .values_list(
            "department_id",
            "prompt_fingerprint",
            "cost",
            *(field if isinstance(field, tuple) else (field,)),
        )
    )
    result = defaultdict(Repeats)
    seen = set()
    for dept_id, fingerprint, cost, *key in qs.iterator(chunk_size=5000):
        stats = result[tuple(key) if isinstance(field, tuple) else key[0]]
        stats.requests += 1
        if (dept_id, fingerprint) in seen:
            stats.repeated += 1
            stats.repeated_cost += cost
        else:
            seen.add((dept_id, fingerprint))
    return dict(result)


def top_repeated_prompts(
    *, organization: Organization, date_from: date, date_to: date, department, limit: int = 10
) -> list[dict]:
    """The prompts asked most often: fingerprint, times asked, total cost, cost beyond the first."""
    qs = (
        events_in_range(
            organization=organization, date_from=date_from, date_to=date_to, department=department
        )
        .filter(status=UsageEvent.Status.OK)
        .exclude(prompt_fingerprint="")
    )
    groups = (
        qs.values("prompt_fingerprint")
        .annotate(requests=Count("id"), cost=COST_SUM)
        .filter(requests__gt=1)
        .order_by("-requests", "-cost", "prompt_fingerprint")[:limit]
    )
    rows = []
    for group in groups:
        first = (
            qs.filter(prompt_fingerprint=group["prompt_fingerprint"])
            .order_by("created_at", "id")
            .values_list("cost", flat=True)
            .first()
        )
        rows.append(
            {
                "fingerprint": group["prompt_fingerprint"],
                "requests": group["requests"],
                "cost": to_cents(group["cost"]),
                "savings": to_cents(group["cost"] - first),
            }
        )
    return rows


def daily_spend(
    *, organization: Organization, date_from: date, date_to: date, department=None
) -> list[tuple[date, Decimal]]:
    """Unrounded spend per day of the organization's calendar, every day present (zero if idle),
    from the daily rollups (gateway/rollups.py)."""
    rows = rollup_figures(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        group_by=("day",),
        department=department,
    )
    by_day = {day: figures["cost"] for (day,), figures in rows.items()}
    days, day = [], date_from
    while day <= date_to:
        days.append((day, by_day.get(day, ZERO)))
        day += timedelta(days=1)
    return days


def forecast_month_end(*, spend_to_date: Decimal, elapsed_days: int, days_in_month: int) -> Decimal:
    """Linear run-rate projection: spend so far / days elapsed x days in the month, in cents."""
    if elapsed_days <= 0:
        return ZERO
    return to_cents(Decimal(spend_to_date) * days_in_month / elapsed_days)


def share(part: Decimal, whole: Decimal) -> Decimal:
    """A fraction 0..1 of two unrounded amounts (zero when there is nothing)."""
    return Decimal(part) / Decimal(whole) if whole else ZERO


def spend_by_department_months(
    *, organization: Organization, months: list[date], departments
) -> dict[date, dict[str, Decimal]]:
    """{month: {team_id: unrounded spend}} for the given departments."""
    team_ids = {d.team_id for d in departments}
    result = {}
    for month in months:
        rows = spend_by(
            organization=organization,
            date_from=month,
            date_to=month_end(month),
            field="department__team_id",
        )
        result[month] = {r["key"]: r["cost"] for r in rows if r["key"] in team_ids}
    return result


__all__ = [
    "Repeats",
    "budgets_by_department",
    "cache_saved_total",
    "daily_spend",
    "dashboard_department",
    "dashboard_departments",
    "dashboard_organization",
    "forecast_month_end",
    "month_latest_with_events",
    "month_parse",
    "months_back",
    "premium_models",
    "premium_spend_by_department",
    "repeats_by",
    "repeats_by_department",
    "share",
    "spend_by",
    "spend_by_department_months",
    "spend_total",
    "top_repeated_prompts",
]
