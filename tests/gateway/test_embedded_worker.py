"""The embedded default (`make run` without Redis) runs the production schedule and alert timing:
gunicorn and the Celery worker with beat that demo_run starts (demo/worker.py) talk through the
filesystem broker (portal/settings_embedded.py), with REDIS_URL unset, as separate processes.
A real SMTP server on loopback receives the alerts."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from budgets import services as budget_services
from budgets.models import BudgetAlert, WalletAlert
from demo.worker import broker_prepare, publish, start_embedded_worker
from gateway.models import UsageEvent
from tests.budgets.conftest import SMTPRecorder
from tests.factories import ConsumerGroupFactory, DepartmentFactory
from tests.ports import free_port
from wallets import services as wallet_services
from wallets.models import Hold

from .conftest import KEY, fund, make_setup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION_KEY = "kt_cg_calibration_prod"
WINDOW = 3  # KT_BUDGET_CHECK_SECONDS of these processes
HELLO = {"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]}


def _wait_for(predicate, timeout=40.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def smtp():
    recorder = SMTPRecorder(free_port()).start()
    yield recorder
    recorder.stop()


@pytest.fixture
def embedded(tmp_path, fake_provider, smtp):
    """gunicorn and the demo's worker (with beat) on a filesystem broker, no Redis; yields the
    gateway's base URL."""
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "KT_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": "1",
        "KT_KEY_CACHE_SECONDS": "0",
        "KT_PRICE_CACHE_SECONDS": "0",
        "KT_BUDGET_CHECK_SECONDS": str(WINDOW),
        "KT_HOLD_SWEEP_SECONDS": "1",
        "KT_FAKE_PROVIDER_URL": fake_provider,
        "KT_UPSTREAM_ALLOW_HOSTS": fake_provider.split("://", 1)[1],
    }
    broker = tmp_path / "broker"
    env.update(broker_prepare(broker))
    log = (tmp_path / "worker.log").open("w")
    worker = start_embedded_worker(broker, env=env, stdout=log, loglevel="info")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn_conf.py", "portal.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _up(base), timeout=60, what="gunicorn")
        yield base
    finally:
        for process in (web, worker):
            process.terminate()
        for process in (web, worker):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def _up(base: str) -> bool:
    try:
        httpx.get(f"{base}/admin/login/", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def _call(base: str, key: str = KEY) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        json=HELLO,
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )


def test_the_embedded_workers_sweeper_releases_an_expired_hold(embedded, fake_provider):
    books = make_setup(fake_provider)
    hold = wallet_services.hold_place(
        wallet=books.wallet, amount=Decimal("1.00"), request_id="req_died_mid_call"
    )
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    _wait_for(
        lambda: UsageEvent.objects.filter(request_id="req_died_mid_call").exists(),
        what="the beat-scheduled sweeper",
    )

    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.EXPIRED
    assert books.refresh().held == Decimal("0")
    event = UsageEvent.objects.get(request_id="req_died_mid_call")
    assert event.status == UsageEvent.Status.EXPIRED


def test_a_burst_crossing_50_80_and_100_percent_announces_all_three_once(
    embedded, fake_provider, smtp
):
    books = make_setup(fake_provider)
    # What one call costs, measured on another department of the organization.
    other = DepartmentFactory(organization=books.org, team_id="team_calibration")
    ConsumerGroupFactory(department=other, name="calibration", key=CALIBRATION_KEY)
    fund(other, "10.00")
    measured = _call(embedded, CALIBRATION_KEY)
    assert measured.status_code == 200
    cost = Decimal(measured.headers["x-kt-cost"])
    budget = budget_services.budget_create(
        organization=books.org,
        team_id=books.department.team_id,
        amount=cost * Decimal("2.5"),
        owner_emails=["lead@acme.example"],
    )

    # A burst within one window: 40 %, 80 % and 120 % of the budget.
    for _ in range(3):
        assert _call(embedded).status_code == 200

    _wait_for(
        lambda: BudgetAlert.objects.filter(budget=budget).count() == 3 and smtp.messages,
        what="the budget alerts",
    )
    time.sleep(2 * WINDOW + 2)  # no further traffic: nothing more may arrive

    alerts = BudgetAlert.objects.filter(budget=budget)
    assert sorted(a.threshold for a in alerts) == [50, 80, 100]
    assert len(smtp.messages) == 1
    subject = str(smtp.messages[0][1]["Subject"])
    assert "50%, 80% and 100% of the" in subject


def test_a_wallet_emptied_by_a_reclaim_sends_depleted_after_refused_calls(
    embedded, fake_provider, smtp
):
    books = make_setup(fake_provider)
    books.department.owner_emails = ["lead@acme.example"]
    books.department.fall_through = False  # the reclaimed money must not pay through the cascade
    books.department.save(update_fields=["owner_emails", "fall_through"])
    wallet_services.wallet_reclaim(department=books.department)
    assert books.refresh().available == Decimal("0")

    refused = _call(embedded)

    assert refused.status_code == 402

    def alerts():  # each refusal also opens a cost ticket, whose own e-mail is not the alert
        return [m for m in smtp.messages if "Cost ticket" not in str(m[1]["Subject"])]

    _wait_for(
        lambda: (
            WalletAlert.objects.filter(
                wallet=books.wallet, state=WalletAlert.State.DEPLETED
            ).exists()
            and alerts()
        ),
        what="the depleted alert",
    )
    assert _call(embedded).status_code == 402
    time.sleep(WINDOW + 2)
    assert WalletAlert.objects.filter(wallet=books.wallet).count() == 1
    (alert,) = alerts()
    assert "depleted" in (str(alert[1]["Subject"]) + alert[1].get_body().get_content()).lower()


def test_an_evaluation_published_from_outside_runs_on_the_worker(
    embedded, fake_provider, smtp, tmp_path
):
    # demo_run publishes the hourly evaluation once at start (its own Celery runs eagerly).
    books = make_setup(fake_provider)
    budget = budget_services.budget_create(
        organization=books.org,
        team_id=books.department.team_id,
        amount=Decimal("10.00"),
        owner_emails=["lead@acme.example"],
    )
    UsageEvent.objects.create(  # recorded without the per-request hook: only the run sees it
        organization=books.org,
        department=books.department,
        request_id="req_seeded_spend",
        endpoint="/v1/chat/completions",
        provider="fake",
        model_requested="fake-chat",
        cost=Decimal("6.00"),
        price=books.chat,
        created_at=timezone.now(),
    )

    publish(tmp_path / "broker", "budgets.evaluate_all")

    _wait_for(
        lambda: BudgetAlert.objects.filter(budget=budget, threshold=50).exists() and smtp.messages,
        what="the published evaluation",
    )
    thresholds = BudgetAlert.objects.filter(budget=budget, kind=BudgetAlert.Kind.THRESHOLD)
    assert [a.threshold for a in thresholds] == [50]  # 60 % spent: 50 % only
