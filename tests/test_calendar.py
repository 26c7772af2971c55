"""The calendar at its edges: every part that asks "which month is it?" (budget periods,
thresholds, the forecast, the month-end export schedule, the dashboards' and the spend API's
"this month") answers with the organization's own date, on the 1st, the 15th and the last day of
a month, on 31 December and on 29 February 2028, in UTC and in UTC+13 and UTC-10 organizations.
"""

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail

from budgets import services as budget_services
from budgets.evaluation import budgets_evaluate_all
from budgets.models import BudgetAlert
from budgets.selectors import budget_status
from chargeback.periods import month_end, month_start
from reports.dashboards import selectors as dashboard_selectors
from reports.dashboards.department import department_page
from reports.exports.schedule import export_jobs_schedule_monthly
from tests.budgets.helpers import record_spend
from tests.conftest import bearer_client
from tests.factories import AdminTokenFactory, DepartmentFactory, OrganizationFactory
from wallets import services as wallet_services

ZONES = {"UTC": "UTC", "UTC+13": "Pacific/Apia", "UTC-10": "Pacific/Honolulu"}

# Wall-clock times in the organization's zone, close to the edges where they matter.
MOMENTS = {
    "1st, just after midnight": datetime(2026, 5, 1, 0, 30),
    "15th": datetime(2026, 5, 15, 12, 0),
    "last day, just before midnight": datetime(2026, 4, 30, 23, 30),
    "31 December, just before midnight": datetime(2026, 12, 31, 23, 30),
    "1 January, just after midnight": datetime(2027, 1, 1, 0, 30),
    "29 February 2028": datetime(2028, 2, 29, 12, 0),
    "1 March 2028, after a leap February": datetime(2028, 3, 1, 0, 30),
}

BUDGET = Decimal("1000.00")
SPEND_NOW = Decimal("850.00")  # crosses 50 % and 80 %, not 100 %
SPEND_LAST_MONTH = Decimal("400.00")  # a minute before the local month began


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ZONES.values(), ids=ZONES.keys())
@pytest.mark.parametrize("wall_clock", MOMENTS.values(), ids=MOMENTS.keys())
def test_every_calendar_part_uses_the_organizations_own_date(
    zone, wall_clock, django_capture_on_commit_callbacks
):
    tz = ZoneInfo(zone)
    now = wall_clock.replace(tzinfo=tz)
    today = wall_clock.date()
    first, last = month_start(today), month_end(today)
    local_month_began = datetime.combine(first, time.min, tzinfo=tz)

    org = OrganizationFactory(time_zone=zone, finance_emails=["finance@example.com"])
    support = DepartmentFactory(organization=org, team_id="team_support")
    token = "kt_admin_calendar_test"
    AdminTokenFactory(organization=org, raw=token)
    other = OrganizationFactory(time_zone="UTC")  # its spend must never show up here
    other_department = DepartmentFactory(organization=other, team_id="team_support")

    with time_machine.travel(now, tick=False):
        for department in (support, other_department):
            wallet_services.wallet_allocate(
                department=department, amount=Decimal("5000.00"), currency="USD"
            )
        budget = budget_services.budget_create(
            organization=org, team_id="team_support", amount=BUDGET, owner_emails=["lead@x.test"]
        )
        record_spend(
            department=support,
            amount=SPEND_LAST_MONTH,
            started_at=local_month_began - timedelta(minutes=1),
        )
        record_spend(department=support, amount=SPEND_NOW)
        record_spend(department=other_department, amount="999")

        # Budget period and forecast: between the local midnights of this month.
        status = budget_status(budget=budget)
        assert (status.period_start, status.period_end) == (first, last)
        assert status.spend == SPEND_NOW
        elapsed = Decimal(int((now - local_month_began).total_seconds()))
        length = Decimal((last - first).days + 1) * 86400
        assert status.forecast == SPEND_NOW * length / elapsed
        assert status.days_left == (last - today).days + 1

        # Thresholds (and a forecast alert once three days have passed) for this period only.
        with django_capture_on_commit_callbacks(execute=True):
            budgets_evaluate_all()
        alerts = BudgetAlert.objects.filter(budget=budget)
        assert {a.period_start for a in alerts} == {first}
        expected = {("threshold", 50), ("threshold", 80)}
        if elapsed >= 3 * 86400 and status.forecast > BUDGET:
            expected.add(("forecast", 0))
        assert set(alerts.values_list("kind", "threshold")) == expected
        label = first.strftime("%B %Y")
        assert mail.outbox
        assert all(label in m.body for m in mail.outbox)

        # Month-end exports: the previous local month, on the 1st and 2nd only.
        jobs = export_jobs_schedule_monthly()
        mine = [job for job in jobs if job.organization_id == org.pk]
        if today.day <= 2:
            previous_last = first - timedelta(days=1)
            assert {(j.type, j.date_from, j.date_to) for j in mine} == {
                ("chargeback", month_start(previous_last), previous_last),
                ("events", month_start(previous_last), previous_last),
            }
        else:
            assert mine == []

        # Dashboards and the spend API: "this month" is the organization's month.
        assert dashboard_selectors.month_latest_with_events(organization=org) == first
        page = department_page(organization=org, department=support, month=first)
        assert page["as_of"] == today
        assert page["spend"] == SPEND_NOW
        assert page["elapsed"] == today.day
        assert page["days_in_month"] == last.day
        response = bearer_client(token).get("/v1/spend", {"by": "team"})
        assert response.status_code == 200
        assert response.json()["month"] == first.strftime("%Y-%m")
        assert response.json()["total"] == str(SPEND_NOW)
