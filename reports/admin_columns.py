"""Computed admin columns as SQL annotations, so a changelist page costs the same few queries
however many rows it shows. Spend follows gateway/selectors.py: the events of the
organization's month (periods.day_range in its time zone), summed at full precision in the
database and rounded once with money.to_cents when displayed.

The wallet status column uses wallets.selectors.wallet_status_expression, the SQL twin of
wallets.selectors.wallet_status (so the column can be sorted).
"""

from django.db.models import (
    Case,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, NullIf

from budgets.models import Budget
from chargeback.models import Organization
from chargeback.money import ZERO, AmountField
from chargeback.periods import day_range, local_today, month_end, month_start
from gateway.models import UsageEvent
from gateway.selectors import CACHE_SAVED_SUM
from wallets.models import LedgerEntry, Wallet
from wallets.selectors import LAST_FUNDING, wallet_status_expression

_PERCENT = DecimalField(max_digits=20, decimal_places=2)


def month_to_date_bounds(organization: Organization):
    """[start, end) of the organization's current month, as gateway/selectors.py counts days."""
    today = local_today(organization)
    return day_range(organization, month_start(today), month_end(today))


def _sum_subquery(qs, *, group_by: str, field: str = "amount", total=None):
    """A correlated SUM (full precision) for the outer row; NULL when there are no rows.
    `total`: another aggregate than Sum(field)."""
    return Subquery(
        qs.order_by()
        .values(group_by)
        .annotate(total=total if total is not None else Sum(field))
        .values("total")[:1],
        output_field=AmountField(),
    )


def _mtd_spend(organizations, total=None):
    """Month-to-date spend of the outer department, each in its organization's own month
    (`total`: another sum of its events, e.g. CACHE_SAVED_SUM)."""
    bounds = {}
    for organization in organizations:
        bounds.setdefault(organization.time_zone, month_to_date_bounds(organization))

    def spend_between(start, end):
        # organization first: it is the leading column of the event_dept_time index.
        events = UsageEvent.objects.filter(
            organization=OuterRef("organization"),
            department=OuterRef("pk"),
            created_at__gte=start,
            created_at__lt=end,
        )
        return Coalesce(
            _sum_subquery(events, group_by="department", field="cost", total=total),
            ZERO,
            output_field=AmountField(),
        )

    if len(bounds) == 1:
        ((start, end),) = bounds.values()
        return spend_between(start, end)
    return Case(
        *[
            When(organization__time_zone=tz, then=spend_between(start, end))
            for tz, (start, end) in bounds.items()
        ],
        default=Value(ZERO),
        output_field=AmountField(),
    )


def annotate_departments(qs, *, organizations):
    """mtd_spend, mtd_cache_saved, budget_amount, percent_used, wallet_available,
    wallet_status."""
    team_wallet = Wallet.objects.filter(department=OuterRef("pk"), scope=Wallet.Scope.TEAM)
    qs = qs.annotate(
        mtd_spend=_mtd_spend(organizations),
        mtd_cache_saved=_mtd_spend(organizations, total=CACHE_SAVED_SUM),
        budget_amount=Subquery(
            Budget.objects.filter(department=OuterRef("pk"), period=Budget.Period.MONTH).values(
                "amount"
            )[:1],
            output_field=AmountField(),
        ),
        wallet_available=Subquery(
            team_wallet.annotate(av=F("balance") - F("held")).values("av")[:1],
            output_field=AmountField(),
        ),
        wallet_threshold=Subquery(team_wallet.values("low_threshold_percent")[:1]),
        wallet_last_funding=Subquery(
            LedgerEntry.objects.filter(
                LAST_FUNDING,
                wallet__department=OuterRef("pk"),
                wallet__scope=Wallet.Scope.TEAM,
            )
            .order_by("-created_at", "-id")
            .values("amount")[:1],
            output_field=AmountField(),
        ),
    )
    return qs.annotate(
        percent_used=ExpressionWrapper(
            F("mtd_spend") * Value(100) / NullIf(F("budget_amount"), ZERO),
            output_field=_PERCENT,
        ),
        wallet_status=wallet_status_expression(
            available=F("wallet_available"),
            last_funding=F("wallet_last_funding"),
            threshold_percent=F("wallet_threshold"),
        ),
    )
