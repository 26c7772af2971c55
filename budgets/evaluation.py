"""Deciding that an alert is due. Exactly once comes from the database, not from timing: every
alert is a row with a unique key (budget, period_start, kind, threshold) or (wallet, funding
entry, state), created with get_or_create, and only the request that created the row enqueues
its email (with transaction.on_commit, so the worker never reads a row that is not there yet).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alert_channels.services.deliveries import deliveries_resend_stale
from budgets import selectors
from budgets.delivery import send_budget_alerts, send_wallet_alert
from budgets.models import Budget, BudgetAlert, WalletAlert
from chargeback.models import Organization
from wallets.models import Wallet
from wallets.selectors import wallet_status

logger = logging.getLogger(__name__)
Kind = BudgetAlert.Kind


def _send_after_commit(task, *args) -> None:
    """Enqueue `task` once the alert rows are committed. A broker that is down (or an eager
    send that fails) must not fail the caller: the row stays pending/failed and the hourly
    evaluation enqueues it again."""

    def send():
        try:
            task.delay(*args)
        except Exception:
            logger.exception("could not send %s%s now; the hourly run will retry", task.name, args)

    transaction.on_commit(send)


def _enqueue_budget_alerts(alert_ids: list[int]) -> None:
    _send_after_commit(send_budget_alerts, alert_ids)


def _enqueue_wallet_alert(alert_id: int) -> None:
    _send_after_commit(send_wallet_alert, alert_id)


def budget_evaluate(
    *,
    budget: Budget,
    now: datetime | None = None,
    with_forecast: bool = False,
    fast: bool = False,
    status: selectors.BudgetStatus | None = None,
    existing: set[tuple] | None = None,
) -> list[BudgetAlert]:
    """Create the alerts now due for the budget's current period and enqueue their emails.

    Thresholds crossed together (a big request, a budget lowered below spend) become one row
    each but ONE email listing them. The forecast alert is created only when `with_forecast`
    (the hourly run): once per period, when the linear period-end projection exceeds the budget
    while spend is still below it, and not before KT_BUDGET_FORECAST_MIN_DAYS have elapsed.
    `fast` (the per-request hook) reads spend through selectors.budget_spend_fast.
    Returns the alerts this call created (none when another caller created them first).
    The hourly run passes the budget's `status` and the `existing` alert keys (budget id,
    period start, kind, threshold) it read for the whole organization at once: then a budget
    whose due alerts all exist costs no query.
    """
    if fast:
        status = None
        period_start, spend = selectors.budget_spend_fast(budget=budget, now=now)
    else:
        status = status or selectors.budget_status(budget=budget, now=now)
        period_start, spend = status.period_start, status.spend
    crossed = [t for t in sorted(budget.thresholds) if spend * 100 >= budget.amount * t]
    if existing is not None:
        crossed = [
            t for t in crossed if (budget.pk, period_start, Kind.THRESHOLD, t) not in existing
        ]
        if (budget.pk, period_start, Kind.FORECAST, 0) in existing:
            with_forecast = False
    forecast_due = (
        with_forecast
        and status is not None
        and status.forecast is not None
        and status.forecast > budget.amount > status.spend
        and status.days_elapsed >= settings.KT_BUDGET_FORECAST_MIN_DAYS
    )
    if not crossed and not forecast_due:
        return []  # the common case: nothing to write, no transaction
    created: list[BudgetAlert] = []
    # One timestamp for the alerts of one evaluation: the retry sweep regroups them by it.
    stamp = timezone.now()
    with transaction.atomic():
        if crossed:
            done = set(
                BudgetAlert.objects.filter(
                    budget=budget, period_start=period_start, kind=Kind.THRESHOLD
                ).values_list("threshold", flat=True)
            )
            for threshold in crossed:
                if threshold in done:
                    continue
                alert, is_new = BudgetAlert.objects.get_or_create(
                    budget=budget,
                    period_start=period_start,
                    kind=Kind.THRESHOLD,
                    threshold=threshold,
                    defaults={
                        "organization_id": budget.organization_id,
                        "spend": spend,
                        "created_at": stamp,
                    },
                )
                if is_new:
                    created.append(alert)
            if created:
                _enqueue_budget_alerts([a.pk for a in created])
        if forecast_due:
            alert, is_new = BudgetAlert.objects.get_or_create(
                budget=budget,
                period_start=status.period_start,
                kind=Kind.FORECAST,
                threshold=0,
                defaults={
                    "organization_id": budget.organization_id,
                    "spend": status.spend,
                    "forecast": status.forecast,
                    "created_at": stamp,
                },
            )
            if is_new:
                created.append(alert)
                _enqueue_budget_alerts([alert.pk])
    return created


def wallet_evaluate(*, wallet: Wallet) -> WalletAlert | None:
    """Alert once when the wallet turns low or depleted under its latest funding.

    The key (wallet, funding entry, state) lets each allocation turn its wallet low once and
    depleted once; a new allocation starts over. Returns the alert this call created.
    """
    funding = selectors.wallet_last_funding(wallet=wallet)
    if funding is None:
        return None
    return _wallet_alert(wallet=wallet, funding_id=funding.pk, funding_amount=funding.amount)


def _wallet_alert(
    *, wallet: Wallet, funding_id: int, funding_amount, existing: set[tuple] | None = None
) -> WalletAlert | None:
    """wallet_evaluate once the last funding is known; `existing`: the organization's alert
    keys (wallet id, funding entry id, state) read at once by the hourly run."""
    state = wallet_status(wallet=wallet, last_allocation=funding_amount)
    if state == WalletAlert.State.HEALTHY:
        return None
    if existing is not None and (wallet.pk, funding_id, state) in existing:
        return None
    with transaction.atomic():
        alert, is_new = WalletAlert.objects.get_or_create(
            wallet=wallet,
            funding_entry_id=funding_id,
            state=state,
            defaults={"organization_id": wallet.organization_id, "available": wallet.available},
        )
        if not is_new:
            return None
        _enqueue_wallet_alert(alert.pk)
    return alert


def department_spend_recorded(*, organization_id: int, department_id: int) -> list[BudgetAlert]:
    """The per-request check: one query for the department's budgets, then per budget the
    recent-spend aggregate (selectors.budget_spend_fast) and, only when a threshold is crossed,
    a look at this period's alerts; rows only for thresholds not alerted yet."""
    created = []
    for budget in Budget.objects.filter(
        organization_id=organization_id, department_id=department_id
    ).select_related("organization", "department"):
        created += budget_evaluate(budget=budget, fast=True)
    return created


def wallet_spend_recorded(*, wallet_id: int) -> WalletAlert | None:
    wallet = Wallet.objects.select_related("organization", "department").filter(pk=wallet_id)
    wallet = wallet.first()
    return None if wallet is None else wallet_evaluate(wallet=wallet)


def budgets_evaluate_all(*, now: datetime | None = None) -> dict:
    """The hourly safety net: re-evaluate every budget (thresholds and forecast), every funded
    wallet, and re-enqueue alerts whose email never went out (pending for over ten minutes, or
    failed) within the last 35 days. Sending is idempotent, so re-enqueueing is always safe.

    Batched per organization (organization_evaluate): a handful of queries each, however many
    departments and wallets it has, plus one write per alert that is due and new."""
    now = now or timezone.now()
    counts = {"budgets": 0, "alerts": 0, "wallet_alerts": 0, "resent": 0}
    for organization in Organization.objects.order_by("id"):
        try:
            for key, value in organization_evaluate(organization=organization, now=now).items():
                counts[key] += value
        except Exception:  # one broken organization must not stop the others
            logger.exception("organization %s evaluation failed", organization.pk)
    stale = Q(status=BudgetAlert.Status.FAILED) | Q(
        status=BudgetAlert.Status.PENDING,
        created_at__lt=now - timedelta(minutes=10),
    )
    since = selectors.recent_cutoff(now)
    # Alerts that were one email stay one email: group them as they were created.
    groups: dict[tuple, list[int]] = {}
    for alert in BudgetAlert.objects.filter(stale, created_at__gte=since).order_by("pk"):
        key = (alert.budget_id, alert.period_start, alert.kind, alert.created_at)
        groups.setdefault(key, []).append(alert.pk)
    for alert_ids in groups.values():
        _enqueue_budget_alerts(alert_ids)
        counts["resent"] += 1
    for alert_id in WalletAlert.objects.filter(stale, created_at__gte=since).values_list(
        "pk", flat=True
    ):
        _enqueue_wallet_alert(alert_id)
        counts["resent"] += 1
    # The alert channels' deliveries that are still failed or pending get their retry here too.
    counts["channel_deliveries_resent"] = deliveries_resend_stale(now=now)
    return counts


def organization_evaluate(*, organization: Organization, now: datetime) -> dict:
    """Every budget and wallet of one organization: its budgets (1 query), their spend (2 per
    kind of period, selectors.budget_statuses: the daily rollups), their alerts of the current periods (1), its
    wallets with their last funding (1) and those fundings' alerts (1); then only the alerts
    that are due and do not exist yet are written, each as budget_evaluate / wallet_evaluate
    would (get_or_create on the unique key, so a concurrent per-request check is harmless)."""
    counts = {"budgets": 0, "alerts": 0, "wallet_alerts": 0}
    budgets = list(Budget.objects.filter(organization=organization).select_related("department"))
    for budget in budgets:
        budget.organization = organization
    statuses = selectors.budget_statuses(organization=organization, budgets=budgets, now=now)
    existing = set(
        BudgetAlert.objects.filter(
            budget__in=budgets, period_start__in={s.period_start for s in statuses.values()}
        ).values_list("budget_id", "period_start", "kind", "threshold")
    )
    for budget in budgets:
        try:
            counts["alerts"] += len(
                budget_evaluate(
                    budget=budget,
                    now=now,
                    with_forecast=True,
                    status=statuses[budget.pk],
                    existing=existing,
                )
            )
        except Exception:  # one broken budget must not stop the others
            logger.exception("budget %s evaluation failed", budget.pk)
        counts["budgets"] += 1
    wallets = [
        w
        for w in selectors.wallets_with_last_funding(organization=organization)
        if w.funding_id is not None
    ]
    existing = set(
        WalletAlert.objects.filter(
            organization=organization, funding_entry_id__in=[w.funding_id for w in wallets]
        ).values_list("wallet_id", "funding_entry_id", "state")
    )
    for wallet in wallets:
        wallet.organization = organization
        alert = _wallet_alert(
            wallet=wallet,
            funding_id=wallet.funding_id,
            funding_amount=wallet.funding_amount,
            existing=existing,
        )
        counts["wallet_alerts"] += alert is not None
    return counts
