"""Wallet, budget, hold and pending cost-ticket gauges: a snapshot, not a query per scrape per
department.

The Celery task `observability.refresh_gauges` (every KT_METRICS_GAUGE_SECONDS) computes the
snapshot with a few aggregate queries and keeps it in the cache (Redis in production, so every
web process serves the same one); a scrape reads that one key. A scrape that finds no snapshot,
or one older than twice the interval (no beat running, e.g. the demo), computes it once itself,
one process at a time. User wallets are left out: one series per end user is too many.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Sum
from prometheus_client.core import GaugeMetricFamily

from budgets.models import Budget
from budgets.selectors import budget_spend_fast
from wallets.models import Hold, Wallet
from wallets.models_tickets import CostTicket

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "kt:metrics:gauges"
LOCK_KEY = "kt:metrics:gauges:lock"


def snapshot_compute() -> dict:
    wallets = [
        [
            w.organization.slug,
            w.department.team_id if w.department else "",
            w.scope,
            w.currency,
            float(w.balance - w.held),
            float(w.balance),
        ]
        for w in Wallet.objects.exclude(scope=Wallet.Scope.USER).select_related(
            "organization", "department"
        )
    ]
    budgets = []
    for budget in Budget.objects.select_related("organization", "department"):
        _start, spend = budget_spend_fast(budget=budget)
        ratio = float(spend / budget.amount) if budget.amount else 0.0
        budgets.append(
            [
                budget.organization.slug,
                budget.department.team_id,
                budget.period,
                budget.currency,
                ratio,
                float(spend),
            ]
        )
    holds = [
        [row["organization__slug"], row["n"], float(row["amount"] or 0)]
        for row in Hold.objects.filter(status=Hold.Status.PENDING)
        .values("organization__slug")
        .annotate(n=Count("id"), amount=Sum("amount"))
    ]
    tickets = [
        [row["organization__slug"], row["currency"], row["n"], float(row["amount"] or 0)]
        for row in CostTicket.objects.filter(status=CostTicket.Status.PENDING)
        .values("organization__slug", "currency")
        .annotate(n=Count("id"), amount=Sum("estimate"))
    ]
    return {
        "at": time.time(),
        "wallets": wallets,
        "budgets": budgets,
        "holds": holds,
        "tickets": tickets,
    }


def snapshot_refresh() -> dict:
    data = snapshot_compute()
    cache.set(SNAPSHOT_KEY, data, timeout=int(settings.KT_METRICS_GAUGE_SECONDS * 10) + 60)
    return data


def snapshot() -> dict | None:
    try:
        data = cache.get(SNAPSHOT_KEY)
        stale = data is None or time.time() - data["at"] > 2 * settings.KT_METRICS_GAUGE_SECONDS
        if stale and cache.add(LOCK_KEY, 1, timeout=30):
            try:
                data = snapshot_refresh()
            finally:
                cache.delete(LOCK_KEY)
    except Exception:  # the scrape still serves the counters
        log.exception("metrics: the gauge snapshot could not be read or computed")
        return None
    return data


class SnapshotCollector:
    """Serves the snapshot as gauges (a prometheus_client custom collector)."""

    def collect(self):
        data = snapshot()
        if data is None:
            return
        available = GaugeMetricFamily(
            "kt_wallet_available",
            "Wallet balance minus holds, in the wallet's currency.",
            labels=["organization", "department", "scope", "currency"],
        )
        balance = GaugeMetricFamily(
            "kt_wallet_balance",
            "Wallet balance, in the wallet's currency.",
            labels=["organization", "department", "scope", "currency"],
        )
        for org, dept, scope, currency, free, total in data["wallets"]:
            available.add_metric([org, dept, scope, currency], free)
            balance.add_metric([org, dept, scope, currency], total)
        used = GaugeMetricFamily(
            "kt_budget_used_ratio",
            "Spend in the budget's current period over its amount (1 = all of it).",
            labels=["organization", "department", "period", "currency"],
        )
        for org, dept, period, currency, ratio, _spend in data["budgets"]:
            used.add_metric([org, dept, period, currency], ratio)
        holds = GaugeMetricFamily(
            "kt_holds_open", "Pending wallet holds (calls in flight).", labels=["organization"]
        )
        held = GaugeMetricFamily(
            "kt_holds_open_amount", "What the pending holds reserve.", labels=["organization"]
        )
        for org, count, amount in data["holds"]:
            holds.add_metric([org], count)
            held.add_metric([org], amount)
        pending = GaugeMetricFamily(
            "kt_cost_tickets_pending",
            "Cost tickets waiting for a decision.",
            labels=["organization", "currency"],
        )
        pending_amount = GaugeMetricFamily(
            "kt_cost_tickets_pending_amount",
            "What the pending cost tickets would allow (their estimates).",
            labels=["organization", "currency"],
        )
        for org, currency, count, amount in data.get("tickets", []):  # older snapshots: none
            pending.add_metric([org, currency], count)
            pending_amount.add_metric([org, currency], amount)
        age = GaugeMetricFamily(
            "kt_metrics_snapshot_age_seconds", "How old the wallet and budget gauges are."
        )
        age.add_metric([], max(0.0, time.time() - data["at"]))
        yield from (available, balance, used, holds, held, pending, pending_amount, age)
