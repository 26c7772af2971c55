"""The per-request hook checks a department at most once per KT_BUDGET_CHECK_SECONDS; the
hourly evaluation catches a crossing that fell inside a window."""

import pytest
from django.core import mail

from wallets.alerts import windows_clear

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
