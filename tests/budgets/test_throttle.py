"""The per-request hook checks a department at most once per KT_BUDGET_CHECK_SECONDS; the
hourly evaluation catches a crossing that fell inside a window."""

import pytest
from django.core import mail

from budgets.alerts import windows_clear
from budgets.models import BudgetAlert
from tests.budgets.conftest import mail_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_minute_window(settings):
    settings.KT_BUDGET_CHECK_SECONDS = 60
    windows_clear()
    yield
    windows_clear()


def test_a_burst_of_requests_costs_one_check(one_minute_window, budget, support, spend):
    spend(department=support, amount="500")  # 50 %: the window opens, the check runs (eager)
    assert len(mail.outbox) == 1

    spend(department=support, amount="300")  # 80 % inside the window: no second check yet
    assert len(mail.outbox) == 1


def test_the_hourly_run_sends_what_a_window_skipped(
    one_minute_window, budget, support, spend, run_hourly
):
    spend(department=support, amount="500")
    spend(department=support, amount="300")
    run_hourly()
    assert len(mail.outbox) == 2
    assert "80%" in mail.outbox[1].subject


def test_another_organizations_burst_neither_closes_this_window_nor_adds_to_it(
    one_minute_window, budget, support, outsider_budget, outsider_support, spend, run_hourly
):
    spend(department=outsider_support, amount="300")  # opens the outsider's window only
    spend(department=support, amount="500")  # this department's own window: checked now
    assert [m.subject for m in mail_to("lead@example.com")] == [
        "[Support] 50% of the May 2026 budget reached: 500.00 of 1,000.00 USD"
    ]
    spend(department=outsider_support, amount="300")  # inside the outsider's window
    run_hourly()
    # 800 together would be 80 % here; each organization counts its own 500 / 600.
    assert len(mail_to("lead@example.com")) == 1
    assert [m.subject for m in mail_to("lead@outsider.example")] == [
        "[Support] 50% of the May 2026 budget reached: 600.00 of 1,000.00 USD"
    ]
    assert set(BudgetAlert.objects.values_list("organization__slug", "threshold")) == {
        ("acme", 50),
        ("outsider", 50),
    }
