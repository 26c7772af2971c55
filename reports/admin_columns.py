"""Computed admin columns as SQL annotations, so a changelist page costs the same few queries
however many rows it shows. Spend follows gateway/selectors.py: the organization's month (in
its time zone) from the daily rollups, summed at full precision in the database and rounded
once with money.to_cents when displayed.

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
from chargeback.money import ZERO, AmountField
from chargeback.periods import local_today, month_end, month_start
from gateway.rollup_models import SpendDaily, SpendDelta
from wallets.models import Wallet
from wallets.selectors import last_funding_subquery, wallet_status_expression

_PERCENT = DecimalField(max_digits=20, decimal_places=2)


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


def _mtd_spend(organizations, field: str = "cost", month=None):
    """Month-to-date `field` (cost, cache_saved) of the outer department, each in its
    organization's own month (or in `month`, a month start, when given), from the daily rollups
    (gateway/rollups.py: the daily rows plus the deltas not folded yet, the same sum as over the
    month's events)."""
    months = {}
    for organization in organizations:
        today = month or local_today(organization)
        months.setdefault(organization.time_zone, (month_start(today), month_end(today)))

    def rollup_sum(model, date_from, date_to):
        rows = model.objects.filter(
            organization=OuterRef("organization"),
            department=OuterRef("pk"),
            day__gte=date_from,
            day__lte=date_to,
        )
        return Coalesce(
            _sum_subquery(rows, group_by="department", field=field),
            ZERO,
            output_field=AmountField(),
        )

    def spend_between(date_from, date_to):
        return ExpressionWrapper(
            rollup_sum(SpendDaily, date_from, date_to) + rollup_sum(SpendDelta, date_from, date_to),
            output_field=AmountField(),
        )

    if len(months) == 1:
        ((date_from, date_to),) = months.values()
        return spend_between(date_from, date_to)
    return Case(
        *[
            When(organization__time_zone=tz, then=spend_between(date_from, date_to))
            for tz, (date_from, date_to) in months.items()
        ],
        default=Value(ZERO),
        output_field=AmountField(),
    )


def annotate_departments(qs, *, organizations, month=None):
    """mtd_spend, mtd_cache_saved (of `month`, a month start; default the current month),
    budget_amount, percent_used, wallet_available, wallet_status (now)."""
    team_wallet = Wallet.objects.filter(
        organization=OuterRef("organization"), department=OuterRef("pk"), scope=Wallet.Scope.TEAM
    )
    qs = qs.annotate(
        mtd_spend=_mtd_spend(organizations, month=month),
        mtd_cache_saved=_mtd_spend(organizations, field="cache_saved", month=month),
        budget_amount=Subquery(
            Budget.objects.filter(department=OuterRef("pk"), period=Budget.Period.MONTH).values(
                "amount"
            )[:1],
            output_field=AmountField(),
        ),
        wallet_available=Subquery(
            team_wallet.annotate(
                av=ExpressionWrapper(F("balance") - F("held"), output_field=AmountField())
            ).values("av")[:1],
            output_field=AmountField(),
        ),
        wallet_threshold=Subquery(team_wallet.values("low_threshold_percent")[:1]),
        # By the team wallet's id, so the ledger_wallet_funding index answers it (a join on
        # the wallet would walk the whole ledger by time, every organization's).
        wallet_last_funding=last_funding_subquery(
            Subquery(
                Wallet.objects.filter(
                    organization=OuterRef(OuterRef("organization")),
                    department=OuterRef(OuterRef("pk")),
                    scope=Wallet.Scope.TEAM,
                ).values("pk")[:1]
            )
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
