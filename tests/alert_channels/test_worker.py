"""Retries through a real Celery worker process on Redis: the receiver answers 500, then 503,
then 200; the worker retries with backoff and the delivery ends sent after three attempts,
each one recorded and each one signed."""

import time

import pytest

from alert_channels.models import ChannelDelivery
from alert_channels.services.channels import channel_create
from tests.budgets.helpers import record_spend
from tests.celery_worker import celery_worker, wait_for
from tests.conftest import TEST_SECRETS_KEY


@pytest.fixture
def worker(eager_celery, receiver):
    env = {
        "EMAIL_URL": "dummymail://",
        "KT_SECRETS_KEY": TEST_SECRETS_KEY,
        "KT_UPSTREAM_ALLOW_HOSTS": receiver.host,  # the operator allows the receiver
    }
    with celery_worker(eager_celery, name="channels", env=env) as process:
        yield process


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_the_event(
    org, budget, support, receiver, worker, verify_kt_signature
):
    _, secret = channel_create(organization=org, name="finops", kind="webhook", url=receiver.url())
    receiver.statuses = [500, 503]  # then 200

    record_spend(department=support, amount="600")  # 60 %: the 50 % alert, checked in the worker

    deliveries = ChannelDelivery.objects.all()
    wait_for(lambda: deliveries.filter(status="sent").exists(), what="the delivery sent")
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
