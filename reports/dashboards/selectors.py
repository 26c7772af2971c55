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
from chargeback.periods import day_range, local_today, month_end, month_start
from gateway.models import UsageEvent
from gateway.rollup_models import PromptMonth
from gateway.rollups import FIELDS, rollup_figures, rollups_in_use
from gateway.selectors import (
    COST_SUM,
    GROUP_NAME,
    cache_saved_total,
    events_in_range,
    group_names,
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
        raise ApplicationError(f"{value!r} is not a month: it must look like YYYY-MM (01 to 12)")
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
    """Unrounded spend on models the catalog marks premium, per department id (departments with
    premium requests only), from the daily rollups."""
    rows = rollup_figures(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        group_by=("department_id",),
        department=department,
    )
    return {key: f["premium_cost"] for (key,), f in rows.items() if f["premium_requests"]}


def premium_models(
    *, organization: Organization, date_from: date, date_to: date, department=None
) -> list[str]:
    """Names of the premium models used in the scope, costliest first (daily rollups)."""
    rows = rollup_figures(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        group_by=("model",),
        department=department,
    )
    used = [(f["premium_cost"], key) for (key,), f in rows.items() if f["premium_requests"]]
    return [model for _, model in sorted(used, key=lambda r: (-r[0], r[1]))]


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
    a tuple of fields: keyed by their values' tuple): what caching would still save. Requests
    the response cache answered are not among them (their status is `cache_hit`): what the
    cache did save is CACHE_SAVED_SUM.

    A range within one calendar month that starts on its first day (every page's) comes from
    the rollups, which count repeats per month at write time (gateway/rollup_models.py
    PromptMonth): the first of a fingerprint in such a range is its first in the month. Other
    ranges and fields (currency) read the range's events."""
    if field == GROUP_NAME and _month_prefix(date_from, date_to) and rollups_in_use():
        by_id = repeats_by(
            organization=organization,
            date_from=date_from,
            date_to=date_to,
            field="consumer_group_id",
            department=department,
        )
        names = group_names(organization=organization, ids=by_id)
        return {names.get(key, key): repeats for key, repeats in by_id.items()}
    fields = field if isinstance(field, tuple) else (field,)
    if _month_prefix(date_from, date_to) and rollups_in_use() and set(fields) <= set(FIELDS):
        rows = rollup_figures(
            organization=organization,
            date_from=date_from,
            date_to=date_to,
            group_by=tuple(FIELDS[f] for f in fields),
            department=department,
        )
        return {
            (key if isinstance(field, tuple) else key[0]): Repeats(
                requests=f["fingerprinted"],
                repeated=f["fingerprinted"] - f["firsts"],
                repeated_cost=f["fingerprinted_cost"] - f["first_cost"],
            )
            for key, f in rows.items()
            if f["fingerprinted"]
        }
    return _repeats_from_events(
        organization=organization,
        date_from=date_from,
        date_to=date_to,
        fields=fields,
        keyed_by_tuple=isinstance(field, tuple),
        department=department,
    )


def _month_prefix(date_from: date, date_to: date) -> bool:
    return date_from.day == 1 and date_from <= date_to <= month_end(date_from)


def _repeats_from_events(
    *, organization, date_from, date_to, fields, keyed_by_tuple, department
) -> dict:
    """repeats_by from the range's events, in time order (no rollups, or another range)."""
    qs = (
        events_in_range(
            organization=organization, date_from=date_from, date_to=date_to, department=department
        )
        .filter(status=UsageEvent.Status.OK)
        .exclude(prompt_fingerprint="")
        .order_by("created_at", "id")
        .values_list("department_id", "prompt_fingerprint", "cost", *fields)
    )
    result = defaultdict(Repeats)
    seen = set()
    for dept_id, fingerprint, cost, *key in qs.iterator(chunk_size=5000):
        stats = result[tuple(key) if keyed_by_tuple else key[0]]
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
    """The prompts asked most often: fingerprint, times asked, total cost, cost beyond the first.
    A month (or its first days, when no event of the department comes later in it) reads the
    fingerprints' month rows (PromptMonth), only the repeated ones; other ranges the events."""
    if _month_prefix(date_from, date_to) and rollups_in_use():
        _, end = day_range(organization, date_from, date_to)
        _, month_stop = day_range(organization, date_from, month_end(date_from))
        later = events_in_range(
            organization=organization, date_from=date_from, date_to=month_end(date_from)
        ).filter(department=department, created_at__gte=end, created_at__lt=month_stop)
        if end >= month_stop or not later.exists():
            prompts = PromptMonth.objects.filter(
                organization=organization,
                department=department,
                month=date_from,
                requests__gt=1,
            ).order_by("-requests", "-cost", "fingerprint")[:limit]
            return [
                {
                    "fingerprint": p.fingerprint,
                    "requests": p.requests,
                    "cost": to_cents(p.cost),
                    "savings": to_cents(p.cost - p.first_cost),
                }
                for p in prompts
            ]
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
