"""Cost-ticket events on Slack and webhooks (alert_channels/ticket_events.py): opened, approved,
denied, expired, with the owners' e-mail's facts, signed; once per event and channel, however
often and concurrently published; Slack follows the e-mail's burst rule, webhooks get every
ticket (a real receiver on loopback, real PostgreSQL, Celery eager)."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from alert_channels.models import ChannelDelivery
from alert_channels.services.channels import channel_create
from alert_channels.ticket_events import ticket_publish
from gateway.sweep import holds_sweep
from tests.alert_channels.test_concurrency import _race
from tests.factories import DepartmentFactory
from wallets import services
from wallets.tickets.services import ticket_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineering(org):
    department = DepartmentFactory(organization=org, team_id="team_engineering", name="Engineering")
    department.owner_emails = ["owner@acme.test"]
    department.save(update_fields=["owner_emails"])
    services.wallet_allocate(department=department, amount=Decimal("1"), currency="USD")
    return department


def _open(department, request_id, estimate="1.25"):
    return ticket_open(
        wallet=services.wallet_for_team(department=department),
        department_id=department.pk,
        consumer_group_id=None,
        user_ref="alice",
        model="gpt-4o",
        estimate=Decimal(estimate),
        request_id=request_id,
    )


def _types(requests) -> list[tuple[str, str]]:
    return [(r.json()["type"], r.json()["data"]["ticket_id"]) for r in requests]


def _slack(requests) -> list[str]:
    """The ticket ids of Slack messages ("Cost ticket tkt_...: ..." or "... tkt_... approved")."""
    return [r.json()["text"].split(" ")[2].rstrip(":") for r in requests]


def test_tickets_reach_webhooks_each_and_slack_once_per_burst_with_the_emails_facts(
    org,
    engineering,
    eager_celery,
    receiver,
    verify_kt_signature,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    _, secret = channel_create(
        organization=org, name="approvals", kind="webhook", url=receiver.url("/hook")
    )
    channel_create(organization=org, name="finance-slack", kind="slack", url=receiver.url("/slack"))
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        with time_machine.travel(start, tick=False):
            burst = [_open(engineering, f"req_burst_{n}") for n in range(3)]
        with time_machine.travel(start + timedelta(minutes=16), tick=False):
            later = _open(engineering, "req_later")

    opened = [("cost_ticket.opened", t.ticket_id) for t in [*burst, later]]
    assert _types(receiver.at("/hook")) == opened  # a program acts on each ticket
    assert _slack(receiver.at("/slack")) == [burst[0].ticket_id, later.ticket_id]  # as the e-mail
    first = receiver.at("/hook")[0]
    assert verify_kt_signature(secret, first.headers["X-KT-Signature"], first.body)
    facts = first.json()["data"]
    assert facts["subject"] == mailoutbox[0].subject  # the e-mail of the burst's first ticket
    assert [m.subject for m in mailoutbox] == [
        facts["subject"],
        receiver.at("/slack")[1].json()["text"],
    ]
    assert facts["estimate"] == "1.25000000"
    assert facts["currency"] == "USD"
    assert facts["department"] == {"team_id": "team_engineering", "name": "Engineering"}
    assert facts["request_id"] == "req_burst_0"
    assert facts["status"] == "pending"
    assert facts["url"].endswith(f"/admin/wallets/costticket/{burst[0].pk}/change/")
    slack = receiver.at("/slack")[0].json()
    fields = " ".join(f["text"] for block in slack["blocks"] for f in block.get("fields", []))
    assert burst[0].ticket_id in fields
    assert "Engineering" in fields

    # Finance decides: one event each, to every channel (decisions are one per ticket).
    from wallets.tickets.services import ticket_approve, ticket_deny

    receiver.requests.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ticket_approve(organization=org, ticket_id=burst[1].ticket_id, actor="fin", via="api")
        ticket_deny(organization=org, ticket_id=burst[2].ticket_id, actor="fin", via="api")
        # Deciding again the same way is no new event.
        ticket_deny(organization=org, ticket_id=burst[2].ticket_id, actor="fin", via="api")
    decided = [
        ("cost_ticket.approved", burst[1].ticket_id),
        ("cost_ticket.denied", burst[2].ticket_id),
    ]
    assert _types(receiver.at("/hook")) == decided
    assert _slack(receiver.at("/slack")) == [burst[1].ticket_id, burst[2].ticket_id]
    assert "approved" in receiver.at("/slack")[0].json()["text"]
    approved = receiver.at("/hook")[0].json()["data"]
    assert approved["decided_by"] == "fin"
    assert approved["status"] == "approved"

    # Published again (a retried task): each channel has its delivery already.
    with django_capture_on_commit_callbacks(execute=True):
        assert ticket_publish(ticket_pk=burst[1].pk, event="approved") == 0
        assert ticket_publish(ticket_pk=burst[0].pk, event="opened") == 0
    assert len(receiver.requests) == 4
    assert ChannelDelivery.objects.filter(status="sent").count() == 4 + 2 + 4


def test_expiries_reach_webhooks_each_and_slack_once_per_burst(
    org, engineering, eager_celery, receiver, settings, django_capture_on_commit_callbacks
):
    settings.KT_COST_TICKET_HOURS = 1
    channel_create(
        organization=org,
        name="expiries",
        kind="webhook",
        url=receiver.url("/hook"),
        events=["cost_ticket.expired"],
    )
    channel_create(organization=org, name="finance-slack", kind="slack", url=receiver.url("/slack"))
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        burst = [_open(engineering, f"req_x_{n}") for n in range(3)]  # no commit: no "opened"
    later = time_machine.travel(start + timedelta(hours=2))
    with later, django_capture_on_commit_callbacks(execute=True):
        holds_sweep()

    expired = sorted(("cost_ticket.expired", t.ticket_id) for t in burst)
    assert sorted(_types(receiver.at("/hook"))) == expired
    assert len(receiver.at("/slack")) == 1
    assert _slack(receiver.at("/slack")) == [burst[0].ticket_id]


@pytest.mark.django_db(transaction=True)
def test_twenty_publishers_of_one_ticket_event_make_one_delivery_per_channel(
    org, engineering, eager_celery, receiver
):
    for name in ("a", "b"):
        channel_create(organization=org, name=name, kind="webhook", url=receiver.url(f"/{name}"))
    channel_create(organization=org, name="s", kind="slack", url=receiver.url("/s"))
    ticket = _open(engineering, "req_race")  # autocommit: its own publication ran already
    ChannelDelivery.objects.all().delete()
    receiver.requests.clear()

    errors = _race(20, lambda i: ticket_publish(ticket_pk=ticket.pk, event="opened"))

    assert errors == []
    assert ChannelDelivery.objects.count() == 3
    assert {len(receiver.at(f"/{name}")) for name in ("a", "b", "s")} == {1}
    assert len({r.json()["id"] for r in receiver.at("/a") + receiver.at("/b")}) == 1
