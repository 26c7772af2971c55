from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from budgets import services as budget_services
from budgets.models import BudgetAlert
from tests.budgets.conftest import mail_to

pytestmark = pytest.mark.django_db


def _sent():
    return list(
        BudgetAlert.objects.order_by("kind", "threshold").values_list("kind", "threshold", "status")
    )


def test_each_threshold_emails_once(budget, support, spend):
    spend(department=support, amount="400")
    assert mail.outbox == []

    spend(department=support, amount="100")  # 500.00 = 50 %
    assert len(mail.outbox) == 1
    first = mail.outbox[0]
    assert first.to == ["lead@example.com"]
    assert "[Support]" in first.subject
    assert "50%" in first.subject
    assert "500.00 of 1,000.00 USD" in first.subject

    spend(department=support, amount="50")  # 55 %: nothing new
    assert len(mail.outbox) == 1

    spend(department=support, amount="300")  # 85 %
    spend(department=support, amount="200")  # 105 %
    spend(department=support, amount="10")
    assert len(mail.outbox) == 3
    assert "80%" in mail.outbox[1].subject
    assert "100%" in mail.outbox[2].subject
    assert _sent() == [
        ("threshold", 50, "sent"),
        ("threshold", 80, "sent"),
        ("threshold", 100, "sent"),
    ]


def test_thresholds_crossed_by_one_request_come_in_one_email(budget, support, spend):
    spend(department=support, amount="850")
    assert len(mail.outbox) == 1
    assert "50% and 80% of the" in mail.outbox[0].subject
    assert _sent() == [("threshold", 50, "sent"), ("threshold", 80, "sent")]


def test_spend_of_another_department_does_not_count(budget, support, engineering, spend):
    from wallets import services as wallet_services

    wallet_services.wallet_allocate(department=engineering, amount=Decimal("5000"), currency="USD")
    spend(department=engineering, amount="2000")
    assert mail.outbox == []
    assert not BudgetAlert.objects.exists()


def test_another_organizations_spend_never_crosses_this_budget(
    budget, support, outsider_budget, outsider_support, spend
):
    # The outsider's Support (same team_id, same name) spends past 100 % at the same moment.
    spend(department=outsider_support, amount="1200", model="claude-opus")
    assert not BudgetAlert.objects.filter(budget=budget).exists()
    assert mail_to("lead@example.com") == []
    assert sorted(
        BudgetAlert.objects.filter(budget=outsider_budget).values_list("threshold", flat=True)
    ) == [50, 80, 100]
    assert len(mail_to("lead@outsider.example")) == 1

    spend(department=support, amount="499.99")  # 1,699.99 if the two were one: still nothing
    assert mail_to("lead@example.com") == []
    spend(department=support, amount="0.01", model="o3")  # this budget's own 50 %
    [ours] = mail_to("lead@example.com")
    assert "500.00 of 1,000.00 USD" in ours.subject
    assert "50% of the" in ours.subject
    for part in (ours.body, ours.alternatives[0][0]):
        assert "500.00 USD" in part
        assert "claude-opus" not in part  # the outsider's model is not among this budget's
        assert "1,700.00" not in part
    assert BudgetAlert.objects.get(budget=budget).spend == Decimal("500.00")
    # And this budget's spend never alerts the outsider again.
    assert len(mail_to("lead@outsider.example")) == 1
    assert BudgetAlert.objects.get(budget=outsider_budget, threshold=100).organization_id == (
        outsider_budget.organization_id
    )


def test_the_hourly_run_forecasts_each_organizations_budget_from_its_own_spend(
    budget, support, outsider_budget, outsider_support, spend, run_hourly
):
    with time_machine.travel(datetime(2026, 5, 10, 12, 0, tzinfo=UTC), tick=False):
        spend(department=outsider_support, amount="400")  # heading for 1,305.26
        spend(department=support, amount="100")  # heading for 326.32 alone, 1,631.58 with theirs
        run_hourly()
    assert not BudgetAlert.objects.filter(budget=budget).exists()
    assert mail_to("lead@example.com") == []
    alert = BudgetAlert.objects.get(kind="forecast")
    assert alert.budget == outsider_budget
    assert alert.forecast.quantize(Decimal("0.01")) == Decimal("1305.26")
    [theirs] = mail_to("lead@outsider.example")
    assert "Forecast 1,305.26 USD" in theirs.subject


def test_a_budget_lowered_below_spend_alerts_once_for_every_threshold_it_now_exceeds(
    budget, support, spend, django_capture_on_commit_callbacks
):
    spend(department=support, amount="450")
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        budget_services.budget_update(budget=budget, amount=Decimal("400"))
    assert len(mail.outbox) == 1
    assert "50%, 80% and 100%" in mail.outbox[0].subject
    assert "450.00 of 400.00 USD" in mail.outbox[0].subject
    assert _sent() == [
        ("threshold", 50, "sent"),
        ("threshold", 80, "sent"),
        ("threshold", 100, "sent"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        budget_services.budget_update(budget=budget, amount=Decimal("300"))
    assert len(mail.outbox) == 1


def test_a_threshold_added_below_spend_alerts_for_it_alone(
    budget, support, spend, django_capture_on_commit_callbacks
):
    spend(department=support, amount="600")
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        budget_services.budget_update(budget=budget, thresholds=[25, 50, 80, 100])
    assert len(mail.outbox) == 2
    assert "25% of the" in mail.outbox[1].subject


def test_the_email_tells_the_owner_everything_needed_to_act(budget, support, spend):
    with time_machine.travel(datetime(2026, 5, 15, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="100", model="gpt-4o")
        spend(department=support, amount="150", model="claude-sonnet")
        spend(department=support, amount="200", model="o3")
        spend(department=support, amount="20", model="gpt-4o-mini")
        spend(department=support, amount="40", model="gpt-4o")  # 510.00: 50 %

    message = mail.outbox[-1]
    text = message.body
    html = message.alternatives[0][0]
    assert message.alternatives[0][1] == "text/html"
    # 510 spent in 14.5 days of a 31-day month -> 510 / 14.5 * 31 = 1090.34
    for part in (text, html):
        assert "Support" in part
        assert "510.00 USD" in part
        assert "1,000.00 USD" in part
        assert "51.0%" in part
        assert "1,090.34 USD" in part
        assert "http://localhost:41002/dashboard/departments/team_support/" in part
        assert "o3" in part
        assert "claude-sonnet" in part
        assert "gpt-4o-mini" not in part  # only the top three models
    assert "Days left:    17" in text
    assert text.index("o3") < text.index("claude-sonnet") < text.index("gpt-4o:")
    assert "May 2026" in message.subject


def test_periods_roll_over_on_calendar_boundaries_in_the_organizations_time_zone(
    budget, support, spend
):
    org = support.organization
    org.time_zone = "America/New_York"
    org.save()

    with time_machine.travel(datetime(2026, 5, 20, 15, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="600")
    # 02:00 UTC on 1 June is still 31 May in New York: this is May's spend.
    with time_machine.travel(datetime(2026, 6, 1, 2, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="250")
    assert [
        (a.period_start.isoformat(), a.threshold) for a in BudgetAlert.objects.order_by("pk")
    ] == [
        ("2026-05-01", 50),
        ("2026-05-01", 80),
    ]

    # 05:00 UTC on 1 June is June in New York: a new period, the thresholds alert again.
    with time_machine.travel(datetime(2026, 6, 1, 5, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="100")
        assert len(mail.outbox) == 2
        spend(department=support, amount="450")
    assert len(mail.outbox) == 3
    june = BudgetAlert.objects.get(period_start="2026-06-01")
    assert june.threshold == 50
    assert june.spend == Decimal("550")
    assert "June 2026" in mail.outbox[-1].subject


def test_the_hourly_run_sends_one_forecast_alert_per_period(budget, support, spend, run_hourly):
    with time_machine.travel(datetime(2026, 5, 10, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="400")  # 40 % after 9.5 days: heading for 1305.26
        assert mail.outbox == []
        run_hourly()
        run_hourly()
    assert len(mail.outbox) == 1
    alert = BudgetAlert.objects.get(kind="forecast")
    assert alert.forecast.quantize(Decimal("0.01")) == Decimal("1305.26")
    assert alert.status == "sent"
    assert "Forecast 1,305.26 USD is 131% of the May 2026 budget" in mail.outbox[0].subject

    with time_machine.travel(datetime(2026, 5, 20, 12, 0, tzinfo=UTC), tick=False):
        run_hourly()
    assert len(mail.outbox) == 1


def test_no_forecast_alert_while_the_projection_is_within_budget(
    budget, support, spend, run_hourly
):
    with time_machine.travel(datetime(2026, 5, 16, 0, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="400")  # 400 / 15 * 31 = 826.67
        run_hourly()
    assert mail.outbox == []


def test_no_forecast_alert_in_the_first_days_of_a_period(budget, support, spend, run_hourly):
    with time_machine.travel(datetime(2026, 5, 2, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="100")  # would project 2066.67
        run_hourly()
    assert mail.outbox == []
    assert not BudgetAlert.objects.filter(kind="forecast").exists()


def test_the_per_request_check_sums_the_month_exactly_between_refreshes(budget, support, spend):
    def at(day, hour, minute, second=0):
        return time_machine.travel(
            datetime(2026, 5, day, hour, minute, second, tzinfo=UTC), tick=False
        )

    with at(3, 9, 0):
        spend(department=support, amount="450.004")
    with at(10, 12, 0):
        spend(department=support, amount="40")  # 490.004: the cached base is built here
    with at(10, 12, 0, 30):
        spend(department=support, amount="9.995")  # 499.999: still under 50 %
        assert mail.outbox == []
        spend(department=support, amount="0.001")  # exactly 500: 50 %
    assert len(mail.outbox) == 1
    with at(10, 12, 5):
        spend(department=support, amount="200")  # 700
    with at(10, 12, 5, 20):
        # A long request that began ten minutes ago commits now: its event is still counted.
        spend(
            department=support,
            amount="100",
            started_at=datetime(2026, 5, 10, 11, 55, tzinfo=UTC),
        )
    assert len(mail.outbox) == 2
    assert BudgetAlert.objects.get(threshold=80).spend == Decimal("800")


def test_a_quarterly_budget_counts_the_whole_calendar_quarter(support, support_wallet, spend):
    quarterly = budget_services.budget_create(
        organization=support.organization,
        team_id="team_support",
        amount=Decimal("3000"),
        period="quarter",
        thresholds=[50],
    )
    with time_machine.travel(datetime(2026, 3, 31, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="1000")  # Q1
    with time_machine.travel(datetime(2026, 4, 20, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="1000")  # Q2
    with time_machine.travel(datetime(2026, 5, 20, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="600")  # Q2: 1,600 of 3,000
    alert = BudgetAlert.objects.get(budget=quarterly)
    assert alert.period_start.isoformat() == "2026-04-01"
    assert "Q2 2026" in mail.outbox[-1].subject
    assert "1,600.00 of 3,000.00 USD" in mail.outbox[-1].subject
