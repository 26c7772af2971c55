"""One end-to-end run: a real Celery worker process on Redis, a real SMTP server on loopback that
is down when the alert is first sent and comes up later."""

import time

import pytest
from django.conf import settings

from budgets.models import BudgetAlert
from tests.budgets.conftest import SMTPRecorder
from tests.budgets.helpers import record_spend
from tests.celery_worker import celery_worker, wait_for
from tests.ports import free_port


@pytest.fixture
def worker(eager_celery):
    """A worker whose e-mail goes to an SMTP port nobody listens on yet (yields the port)."""
    smtp_port = free_port()
    env = {"EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}", "EMAIL_TIMEOUT": "5"}
    with celery_worker(eager_celery, name="budgets", env=env):
        yield smtp_port


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_through_an_smtp_outage_and_delivers_one_email(
    worker, budget, support, outsider_budget, outsider_support
):
    # The outsider's Support (same team_id and name) spends 40 % of its own budget first: with
    # it counted, this budget would cross 100 % below.
    record_spend(department=outsider_support, amount="400", model="claude-opus")
    record_spend(department=support, amount="300", model="gpt-4o")
    record_spend(department=support, amount="520", model="o3")  # 82 %: 50 % and 80 %

    alerts = BudgetAlert.objects.order_by("threshold")  # re-read each time through .all()
    # The per-request check itself runs in the worker (budgets/alerts.py).
    wait_for(lambda: len(alerts.all()) == 2, what="the threshold check")
    assert [a.threshold for a in alerts.all()] == [50, 80]
    # The worker picks the task up from Redis and finds nobody listening on the SMTP port.
    wait_for(
        lambda: all(a.status == "failed" and a.attempts >= 1 for a in alerts.all()),
        what="the first failed attempt",
    )
    assert "ConnectionRefusedError" in alerts.all()[0].error

    server = SMTPRecorder(worker).start()
    try:
        wait_for(lambda: server.messages, what="the retried email")
        wait_for(
            lambda: all(a.status == "sent" for a in alerts.all()), what="the alerts marked sent"
        )
        time.sleep(1.0)  # a duplicate would arrive now
    finally:
        server.stop()

    assert len(server.messages) == 1
    assert all(a.attempts >= 2 and a.error == "" for a in alerts.all())
    assert {a.budget_id for a in alerts.all()} == {budget.pk}  # none for the outsider's 40 %
    rcpt, message = server.messages[0]
    assert rcpt == ["lead@example.com"]
    assert message["To"] == "lead@example.com"
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message["Subject"].startswith("[Support] 50% and 80% of the ")
    assert "820.00 of 1,000.00 USD" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "820.00 USD" in part
        assert "82.0%" in part
        assert "o3" in part
        assert "gpt-4o" in part
        assert "claude-opus" not in part
        assert "/dashboard/departments/team_support/" in part
