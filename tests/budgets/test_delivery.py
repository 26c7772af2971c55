import threading

import pytest
from django.core import mail
from django.db import connection

from budgets.models import BudgetAlert
from budgets.tasks import send_budget_alerts
from tests.budgets.conftest import SMTPRecorder


@pytest.mark.django_db
def test_an_smtp_server_that_is_down_fails_the_alert_then_a_retry_sends_it_once(
    budget, support, spend, smtp_settings
):
    spend(department=support, amount="500")  # 50 %: the send fails

    alert = BudgetAlert.objects.get()
    assert alert.status == "failed"
    assert alert.attempts == 1
    assert "ConnectionRefusedError" in alert.error

    server = SMTPRecorder(smtp_settings.EMAIL_PORT).start()
    try:
        assert send_budget_alerts([alert.pk]) == 1  # the broker's next retry
        assert send_budget_alerts([alert.pk]) == 0
    finally:
        server.stop()

    alert.refresh_from_db()
    assert alert.status == "sent"
    assert alert.error == ""
    assert alert.sent_at is not None
    assert len(server.messages) == 1
    rcpt, message = server.messages[0]
    assert rcpt == ["lead@example.com"]
    assert "50% of the" in message["Subject"]


@pytest.mark.django_db
def test_a_task_delivered_three_times_sends_one_email(budget, support, spend):
    spend(department=support, amount="850")  # one email for 50 % and 80 %
    ids = list(BudgetAlert.objects.values_list("pk", flat=True))
    assert send_budget_alerts(ids) == 0
    assert send_budget_alerts(ids) == 0
    assert len(mail.outbox) == 1
    assert set(BudgetAlert.objects.values_list("status", flat=True)) == {"sent"}
    assert set(BudgetAlert.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_an_alert_with_nobody_to_tell_is_marked_failed_not_retried(budget, support, spend):
    budget.owner_emails = []
    budget.save()
    support.owner_emails = []
    support.save()
    spend(department=support, amount="500")
    alert = BudgetAlert.objects.get()
    assert alert.status == "failed"
    assert "no owner emails" in alert.error
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_while_the_first_send_is_still_talking_to_smtp_sends_nothing(
    budget, support, smtp_settings
):
    alert = BudgetAlert.objects.create(
        organization=support.organization,
        budget=budget,
        period_start=budget.created_at.date().replace(day=1),
        kind="threshold",
        threshold=50,
    )
    server = SMTPRecorder(smtp_settings.EMAIL_PORT, delay=1.0).start()
    results = []

    def deliver():
        try:
            results.append(send_budget_alerts([alert.pk]))
        finally:
            connection.close()

    try:
        first = threading.Thread(target=deliver)
        first.start()
        # The first run is now in its (slow) SMTP conversation, holding the row lock.
        assert server.receiving.wait(10)
        second = threading.Thread(target=deliver)
        second.start()
        first.join(10)
        second.join(10)
    finally:
        server.stop()
    assert sorted(results) == [0, 1]
    assert len(server.messages) == 1
    alert.refresh_from_db()
    assert alert.status == "sent"


@pytest.mark.django_db
def test_the_hourly_run_resends_failed_alerts_as_the_one_email_they_were(
    budget, support, outsider_budget, outsider_support, spend, smtp_settings, run_hourly
):
    spend(department=support, amount="850")  # 50 % and 80 % together; SMTP is down
    # The outsider's Support (same team_id and name) fails at the same moment, for its own 55 %.
    spend(department=outsider_support, amount="550", model="claude-opus")
    assert set(BudgetAlert.objects.values_list("status", flat=True)) == {"failed"}

    server = SMTPRecorder(smtp_settings.EMAIL_PORT).start()
    try:
        run_hourly()
        run_hourly()
    finally:
        server.stop()
    # One email per budget, each to its own owner with its own numbers: never merged.
    assert sorted(rcpt for rcpt, _ in server.messages) == [
        ["lead@example.com"],
        ["lead@outsider.example"],
    ]
    ours = next(m for rcpt, m in server.messages if rcpt == ["lead@example.com"])
    assert "50% and 80%" in ours["Subject"]
    assert "850.00 of 1,000.00 USD" in ours["Subject"]
    assert "claude-opus" not in ours.get_body(preferencelist=("plain",)).get_content()
    theirs = next(m for rcpt, m in server.messages if rcpt == ["lead@outsider.example"])
    assert "550.00 of 1,000.00 USD" in theirs["Subject"]
    assert set(BudgetAlert.objects.values_list("status", "attempts")) == {("sent", 2)}
