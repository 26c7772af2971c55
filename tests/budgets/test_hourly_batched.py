"""The hourly evaluation batched per organization: the same figures and alerts as one budget
and one wallet at a time, in a number of queries that does not grow with the departments."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from budgets import selectors
from budgets import services as budget_services
from budgets.models import Budget, BudgetAlert, WalletAlert
from tests.budgets.helpers import record_spend
from tests.factories import DepartmentFactory
from wallets import services as wallet_services

pytestmark = pytest.mark.django_db

MID_MONTH = datetime(2026, 5, 14, 9, 30, tzinfo=UTC)


def add_departments(org, first: int, count: int) -> list:
    """Departments with a monthly budget (every other one also a quarterly one), a funded
    wallet and spend: some under every threshold, some over a few, some with a low wallet."""
    departments = []
    for n in range(first, first + count):
        department = DepartmentFactory(organization=org, team_id=f"team_{n}", name=f"Team {n}")
        wallet_services.wallet_allocate(
            department=department, amount=Decimal("100"), currency="USD"
        )
        budget_services.budget_create(
            organization=org,
            team_id=department.team_id,
            amount=Decimal("50"),
            owner_emails=[f"lead{n}@example.com"],
        )
        if n % 2:
            budget_services.budget_create(
                organization=org,
                team_id=department.team_id,
                amount=Decimal("300"),
                period=Budget.Period.QUARTER,
                owner_emails=[f"lead{n}@example.com"],
            )
        for cost in ("0.12345678", f"{n * 23 % 99}.5", "0.00000001"):
            record_spend(department=department, amount=cost)
        if n % 3 == 0:  # what is left goes back to the organization: depleted
            wallet_services.wallet_reclaim(department=department)
        departments.append(department)
    return departments


def queries_of(run) -> int:
    with CaptureQueriesContext(connection) as queries:
        run()
    return len(queries)


def test_batched_statuses_equal_one_budget_at_a_time(org, outsider_org):
    with time_machine.travel(MID_MONTH, tick=False):
        add_departments(org, 1, 5)
        add_departments(outsider_org, 1, 2)
        for organization in (org, outsider_org):
            budgets = list(Budget.objects.filter(organization=organization))
            batched = selectors.budget_statuses(organization=organization, budgets=budgets)
            assert set(batched) == {b.pk for b in budgets}
            for budget in budgets:
                assert batched[budget.pk] == selectors.budget_status(budget=budget), budget


def test_the_hourly_run_costs_the_same_queries_for_3_or_12_departments(
    org, outsider_org, run_hourly
):
    with time_machine.travel(MID_MONTH, tick=False):
        add_departments(outsider_org, 1, 2)
        add_departments(org, 1, 3)
        first = run_hourly()
        assert first["alerts"] > 0
        assert first["wallet_alerts"] > 0
        steady_small = queries_of(run_hourly)
        add_departments(org, 4, 9)
        run_hourly()
        steady_big = queries_of(run_hourly)
    assert steady_big == steady_small
    # Per organization: budgets, spend per kind of period (month, quarter: the daily rollups and
    # their deltas, 2 each), their alerts, wallets with their last funding, those alerts; plus
    # the organizations and the three resend sweeps (budget alerts, wallet alerts, the alert
    # channels' deliveries).
    assert steady_big <= 1 + 2 * 8 + 3


def test_the_batched_run_creates_each_due_alert_once_as_the_per_request_check_would(
    org, run_hourly
):
    with time_machine.travel(MID_MONTH, tick=False):
        departments = add_departments(org, 1, 6)
        counts = run_hourly()
        again = run_hourly()
    expected = set()
    for budget in Budget.objects.filter(organization=org):
        status = selectors.budget_status(budget=budget, now=MID_MONTH)
        for threshold in budget.thresholds:
            if status.spend * 100 >= budget.amount * threshold:
                expected.add((budget.pk, threshold))
    got = set(BudgetAlert.objects.filter(kind="threshold").values_list("budget_id", "threshold"))
    assert got == expected
    assert expected
    assert again["alerts"] == again["wallet_alerts"] == 0
    assert counts["budgets"] == Budget.objects.count()
    states = {}
    for department in departments:
        wallet = wallet_services.wallet_for_team(department=department)
        funding = selectors.wallet_last_funding(wallet=wallet)
        from wallets.selectors import wallet_status

        state = wallet_status(wallet=wallet, last_allocation=funding.amount)
        if state != "healthy":
            states[wallet.pk] = (funding.pk, state)
    alerts = {a.wallet_id: (a.funding_entry_id, a.state) for a in WalletAlert.objects.all()}
    assert alerts == states
    assert {s for _, s in states.values()} == {"low", "depleted"}
    assert counts["wallet_alerts"] == len(states)
