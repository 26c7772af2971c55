"""One delivery per event per channel when 20 requests cross a threshold at the same moment
(threads against PostgreSQL, each committing its own spend), and when 20 publishers race to
publish the same event."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from alert_channels.models import ChannelDelivery
from alert_channels.services.channels import channel_create
from alert_channels.services.deliveries import event_publish
from budgets.models import BudgetAlert
from tests.budgets.helpers import record_spend


def _race(count, work):
    barrier = threading.Barrier(count)
    errors = []

    def run(index):
        try:
            barrier.wait(10)
            work(index)
        except Exception as exc:  # noqa: BLE001 - collected: a thread's exception would go unseen
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_crossings_of_80_percent_deliver_once_to_each_channel(
    org, budget, support, outsider_org, outsider_budget, outsider_support, receiver
):
    channel_create(organization=org, name="org-hook", kind="webhook", url=receiver.url("/org"))
    channel_create(
        organization=org,
        name="support-slack",
        kind="slack",
        url=receiver.url("/slack"),
        department=support,
    )
    channel_create(
        organization=outsider_org, name="theirs", kind="webhook", url=receiver.url("/theirs")
    )
    record_spend(department=support, amount="790")  # 79 %: the 50 % event
    record_spend(department=outsider_support, amount="790")
    assert len(receiver.requests) == 3

    departments = [support] * 20 + [outsider_support] * 10
    errors = _race(len(departments), lambda i: record_spend(department=departments[i], amount="10"))

    assert errors == []
    alert_80 = BudgetAlert.objects.get(budget=budget, threshold=80)
    ours = ChannelDelivery.objects.filter(event_key=f"budget_alert:{alert_80.pk}")
    assert sorted(ours.values_list("channel__name", "status")) == [
        ("org-hook", "sent"),
        ("support-slack", "sent"),
    ]

    def eighties(path):
        return [r for r in receiver.at(path) if "80%" in r.body.decode()]

    assert len(eighties("/org")) == 1
    assert len(eighties("/slack")) == 1
    assert len(receiver.at("/org")) == 2  # 50 % and 80 %, nothing else
    assert len(receiver.at("/slack")) == 2
    # The outsider's own 79 % + 10 x 1 %: its channel hears its own 50 % and 80 %, once each.
    assert len(eighties("/theirs")) == 1
    assert len(receiver.at("/theirs")) == 2
    assert not BudgetAlert.objects.filter(budget=budget, threshold=100).exists()
    assert sum(e.cost for e in support.usage_events.all()) == Decimal("990")


@pytest.mark.django_db(transaction=True)
def test_twenty_publishers_of_one_event_make_one_delivery_per_channel(org, receiver):
    for name in ("a", "b", "c"):
        channel_create(organization=org, name=name, kind="webhook", url=receiver.url(f"/{name}"))
    now = timezone.now()

    errors = _race(
        20,
        lambda i: event_publish(
            organization_id=org.pk,
            event_type="export.ready",
            event_key="export_job:race",
            facts={"subject": "ready", "publisher": i},
            occurred_at=now,
        ),
    )

    assert errors == []
    assert ChannelDelivery.objects.count() == 3
    assert {len(receiver.at(f"/{name}")) for name in ("a", "b", "c")} == {1}
    assert len({r.json()["id"] for r in receiver.requests}) == 1
