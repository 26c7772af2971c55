"""Reads for budgets and wallet alerts. Spend always comes from gateway.selectors, so the numbers
in an alert email are the numbers on the dashboard."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from budgets.models import Budget
from chargeback import display
from chargeback.errors import NotFound
from chargeback.models import Department, Organization
from chargeback.money import ZERO
from chargeback.periods import (
    day_range,
    local_today,
    month_end,
    month_start,
    quarter_end,
    quarter_start,
)
from gateway.selectors import (
    COST_SUM,
    events_in_range,
    spend_by,
    spend_per_department,
    spend_total,
)
from wallets.models import LedgerEntry, Wallet
from wallets.selectors import LAST_FUNDING

SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True)
class BudgetStatus:
    """Where a budget stands at one moment of its current period."""

    period_start: date
    period_end: date
    spend: Decimal  # unrounded, as summed by gateway.selectors
    days_elapsed: Decimal  # fractional days since the period began (organization's time zone)
    days_in_period: Decimal
    days_left: int  # calendar days left including today
    forecast: Decimal | None  # linear period-end projection; None before any time has passed

    def percent_of(self, amount: Decimal) -> Decimal:
        if amount <= ZERO:
            return Decimal(0)
        return (self.spend * 100 / amount).quantize(Decimal("0.1"))


def budget_period(*, budget: Budget, today: date) -> tuple[date, date]:
    """The calendar period (first and last day, inclusive) that contains `today`."""
    if budget.period == Budget.Period.QUARTER:
        return quarter_start(today), quarter_end(today)
    return month_start(today), month_end(today)


def budget_period_label(*, budget: Budget, period_start: date) -> str:
    if budget.period == Budget.Period.QUARTER:
        return f"Q{(period_start.month - 1) // 3 + 1} {period_start.year}"
    return period_start.strftime("%B %Y")


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Spend so far in the current period and the linear forecast for its end.

    Forecast = spend / days_elapsed * days_in_period, where both are measured between the
    period's local midnights in the organization's time zone (so a DST month has its true length)
    and days_elapsed is fractional: at noon on the 10th, 9.5 days have elapsed.
    """
    organization = budget.organization
    now = now or timezone.now()
    start, end = budget_period(budget=budget, today=local_today(organization, now))
    spend = spend_total(
        organization=organization, date_from=start, date_to=end, department=budget.department
    )
    return _status(organization=organization, start=start, end=end, spend=spend, now=now)


def budget_statuses(
    *, organization: Organization, budgets: list[Budget], now: datetime | None = None
) -> dict[int, BudgetStatus]:
    """budget_status of each of the organization's `budgets` ({budget id: status}), with one
    grouped read per kind of period (month, quarter) instead of one per budget: the same
    rollups as spend_total, so the same figures to the cent."""
    now = now or timezone.now()
    today = local_today(organization, now)
    periods: dict[tuple[date, date], list[Budget]] = {}
    for budget in budgets:
        periods.setdefault(budget_period(budget=budget, today=today), []).append(budget)
    statuses = {}
    for (start, end), members in periods.items():
        spend = spend_per_department(organization=organization, date_from=start, date_to=end)
        for budget in members:
            statuses[budget.pk] = _status(
                organization=organization,
                start=start,
                end=end,
                spend=spend.get(budget.department_id, ZERO),
                now=now,
            )
    return statuses


def _status(
    *, organization: Organization, start: date, end: date, spend: Decimal, now: datetime
) -> BudgetStatus:
    today = local_today(organization, now)
    start_at, end_at = day_range(organization, start, end)
    # Subtract in UTC: two datetimes sharing one tzinfo subtract as wall-clock times.
    start_utc, end_utc = start_at.astimezone(UTC), end_at.astimezone(UTC)
    elapsed = Decimal(int((now - start_utc).total_seconds()))
    length = Decimal(int((end_utc - start_utc).total_seconds()))
    forecast = spend * length / elapsed if elapsed > 0 else None
    return BudgetStatus(
        period_start=start,
        period_end=end,
        spend=spend,
        days_elapsed=elapsed / SECONDS_PER_DAY,
        days_in_period=length / SECONDS_PER_DAY,
        days_left=(end - today).days + 1,
        forecast=forecast,
    )


def budget_spend_fast(*, budget: Budget, now: datetime | None = None) -> tuple[date, Decimal]:
    """(period start, spend so far) for the per-request check, without summing the whole period.

    spend = base + recent, where `base` is the period's spend before a checkpoint (cached, and
    recomputed at most every KT_BUDGET_SPEND_REFRESH_SECONDS) and `recent` is summed live from the
    checkpoint on. The checkpoint trails the refresh by KT_BUDGET_SPEND_MARGIN_SECONDS (a hold's
    lifetime and a minute) because an event may commit that long after its `created_at`; so
    `recent` covers minutes of events, not a month. The sum is exact (Decimal at full precision);
    the hourly run and every email and screen use the plain spend_total anyway.
    """
    organization = budget.organization
    now = now or timezone.now()
    start, end = budget_period(budget=budget, today=local_today(organization, now))
    events = events_in_range(
        organization=organization, date_from=start, date_to=end, department=budget.department
    )
    key = f"kt:budget-spend:{budget.pk}:{budget.created_at.timestamp()}:{start.isoformat()}"
    cached = cache.get(key)
    refresh = timedelta(seconds=settings.KT_BUDGET_SPEND_REFRESH_SECONDS)
    if cached is None or not (
        timedelta(0) <= now - datetime.fromisoformat(cached["at"]) <= refresh
    ):
        checkpoint = now - timedelta(seconds=settings.KT_BUDGET_SPEND_MARGIN_SECONDS)
        base = events.filter(created_at__lt=checkpoint).aggregate(total=COST_SUM)["total"]
        cached = {"at": now.isoformat(), "checkpoint": checkpoint.isoformat(), "base": str(base)}
        cache.set(key, cached, timeout=40 * 86400)
    checkpoint = datetime.fromisoformat(cached["checkpoint"])
    recent = events.filter(created_at__gte=checkpoint).aggregate(total=COST_SUM)["total"]
    return start, Decimal(cached["base"]) + recent


def budget_top_models(
    *, budget: Budget, period_start: date, period_end: date, limit: int = 3
) -> list[dict]:
    """The department's largest models by spend in the period: [{key, cost, requests, ...}]."""
    rows = spend_by(
        organization=budget.organization,
        date_from=period_start,
        date_to=period_end,
        field="model_requested",
        department=budget.department,
    )
    return rows[:limit]


def budget_list(*, organization: Organization, team_id: str = "") -> QuerySet[Budget]:
    qs = Budget.objects.filter(organization=organization).select_related(
        "department", "organization"
    )
    if team_id:
        qs = qs.filter(department__team_id=team_id)
    return qs.order_by("department__team_id", "period", "id")


def budget_get(*, organization: Organization, budget_id: int) -> Budget:
    """A budget of this organization; anybody else's is indistinguishable from a missing one."""
    budget = budget_list(organization=organization).filter(pk=budget_id).first()
    if budget is None:
        raise NotFound(f"no budget {budget_id}")
    return budget


def department_get(*, organization: Organization, team_id: str) -> Department:
    department = Department.objects.filter(organization=organization, team_id=team_id).first()
    if department is None:
        raise NotFound(f"no department {team_id}")
    return department


def department_budget_owners(*, department: Department) -> list[str]:
    """Who hears about a department: its budgets' owners, else the department's owner emails."""
    emails: list[str] = []
    for budget in Budget.objects.filter(department=department).order_by("id"):
        emails.extend(e for e in budget.owner_emails if e not in emails)
    return emails or list(department.owner_emails)


# --- wallet state --------------------------------------------------------------------------------
# The status rule is wallets.selectors.wallet_status; the alerts take it against the wallet's
# last positive allocation (or credit, for the organization's wallet). A wallet never funded has
# no state to alert on.


def _last_funding(**wallet) -> QuerySet[LedgerEntry]:
    # LAST_FUNDING: a positive allocation or credit, not an auto_fund credit (wallets/selectors).
    return LedgerEntry.objects.filter(LAST_FUNDING, **wallet).order_by("-created_at", "-id")


def wallet_last_funding(*, wallet: Wallet) -> LedgerEntry | None:
    """The wallet's latest positive allocation or credit: a few steps down the
    ledger_wallet_funding index (wallets/models.py), not a walk through its captures."""
    return _last_funding(organization_id=wallet.organization_id, wallet=wallet).first()


def wallets_with_last_funding(*, organization: Organization) -> QuerySet[Wallet]:
    """The organization's wallets, each with `funding_id` and `funding_amount` (its
    wallet_last_funding, NULL for none), in one query: one index step per wallet."""
    last = _last_funding(organization_id=organization.pk, wallet=OuterRef("pk"))
    return (
        Wallet.objects.filter(organization=organization)
        .annotate(
            funding_id=Subquery(last.values("pk")[:1]),
            funding_amount=Subquery(last.values("amount")[:1]),
        )
        .order_by("id")
    )


def wallet_alert_recipients(*, wallet: Wallet) -> list[str]:
    if wallet.department_id is not None:
        return department_budget_owners(department=wallet.department)
    return list(wallet.organization.finance_emails)


def dashboard_url(*, department: Department) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/dashboard/departments/{department.team_id}/"


def money(value) -> str:
    """An amount as people read it in an email: 12,345.67 (chargeback/display.py)."""
    return display.money(value)


def recent_cutoff(now: datetime | None = None, days: int = 35) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)
