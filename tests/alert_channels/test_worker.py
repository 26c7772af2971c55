"""Retries through a real Celery worker process on Redis: the receiver answers 500, then 503,
then 200; the worker retries with backoff and the delivery ends sent after three attempts,
each one recorded and each one signed."""

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

from alert_channels.models import ChannelDelivery
from alert_channels.services.channels import channel_create
from tests.budgets.helpers import record_spend
from tests.conftest import TEST_SECRETS_KEY

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _database_url() -> str:
    db = connection.settings_dict  # the test database pytest-django created
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(eager_celery, receiver):
    assert settings.REDIS_URL, "this test needs REDIS_URL (a Redis db of its own)"
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no leftovers from an earlier run
    eager_celery.CELERY_TASK_ALWAYS_EAGER = False
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": "dummymail://",
        "KT_SECRETS_KEY": TEST_SECRETS_KEY,
        "KT_UPSTREAM_ALLOW_HOSTS": receiver.host,  # the operator allows the receiver
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    log = tempfile.NamedTemporaryFile(prefix="channels-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            *("-A", "portal", "worker", "--pool=solo", "-l", "info"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("-n", f"channels-test-{os.getpid()}@localhost"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
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
def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_the_event(
    org, budget, support, receiver, worker, verify_kt_signature
):
    _, secret = channel_create(organization=org, name="finops", kind="webhook", url=receiver.url())
    receiver.statuses = [500, 503]  # then 200

    record_spend(department=support, amount="600")  # 60 %: the 50 % alert, checked in the worker

    deliveries = ChannelDelivery.objects.all()
    _wait_for(lambda: deliveries.filter(status="sent").exists(), what="the delivery sent")
    (delivery,) = deliveries.all()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 3, 200)
    assert delivery.last_error == ""
    assert delivery.event_type == "budget.threshold_crossed"

    time.sleep(1.0)  # a duplicate would arrive now
    attempts = receiver.requests
    assert len(attempts) == 3
    assert {a.json()["id"] for a in attempts} == {str(delivery.event_id)}
    assert all(verify_kt_signature(secret, a.headers["X-KT-Signature"], a.body) for a in attempts)
    assert len({a.body for a in attempts}) == 1  # the same event, byte for byte
