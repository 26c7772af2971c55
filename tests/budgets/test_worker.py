"""One end-to-end run: a real Celery worker process on Redis, a real SMTP server on loopback that
is down when the alert is first sent and comes up later."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from budgets.models import BudgetAlert
from tests.budgets.conftest import SMTPRecorder
from tests.budgets.helpers import record_spend
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _database_url() -> str:
    db = connection.settings_dict  # the test database pytest-django created (test_cb_...)
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(eager_celery):
    assert settings.REDIS_URL, "this test needs REDIS_URL (a Redis db of its own)"
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no leftovers from an earlier run
    eager_celery.CELERY_TASK_ALWAYS_EAGER = False
    smtp_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_TIMEOUT": "5",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    log = tempfile.NamedTemporaryFile(prefix="budgets-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "portal",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"budgets-test-{os.getpid()}@localhost",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield smtp_port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        print(Path(log.name).read_text()[-4000:])
        os.unlink(log.name)


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
    _wait_for(lambda: len(alerts.all()) == 2, what="the threshold check")
    assert [a.threshold for a in alerts.all()] == [50, 80]
    # The worker picks the task up from Redis and finds nobody listening on the SMTP port.
    _wait_for(
        lambda: all(a.status == "failed" and a.attempts >= 1 for a in alerts.all()),
        what="the first failed attempt",
    )
    assert "ConnectionRefusedError" in alerts.all()[0].error

    server = SMTPRecorder(worker).start()
    try:
        _wait_for(lambda: server.messages, what="the retried email")
        _wait_for(
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
