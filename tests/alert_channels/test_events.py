"""Budget and wallet alerts reach Slack and webhooks with the e-mail's facts, signed the way the
docs tell a receiver to check (a real HTTP receiver on loopback, real PostgreSQL)."""

import json
import time
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from alert_channels.models import ChannelDelivery
from alert_channels.services.channels import channel_create
from alert_channels.services.deliveries import DeliveryFailed, delivery_send, event_publish
from tests.budgets.conftest import run_hourly  # noqa: F401
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db


def test_a_threshold_crossing_posts_one_signed_webhook_with_the_emails_facts(
    org, budget, support, spend, receiver, verify_kt_signature
):
    _, secret = channel_create(
        organization=org, name="finops", kind="webhook", url=receiver.url("/hook")
    )
    assert secret.startswith("whsec_")

    spend(department=support, amount="520", model="gpt-4o")  # 52 %: the 50 % alert
    spend(department=support, amount="300", model="o3")  # 82 %: the 80 % alert

    (email_50, email_80) = mail.outbox
    first, second = receiver.at("/hook")
    assert len(receiver.requests) == 2
    for request, email in ((first, email_50), (second, email_80)):
        header = request.headers["X-KT-Signature"]
        assert verify_kt_signature(secret, header, request.body)
        body = request.json()
        assert body["data"]["subject"] == email.subject
        assert request.headers["X-KT-Event-Id"] == body["id"]
        assert request.headers["X-KT-Event-Type"] == body["type"] == "budget.threshold_crossed"
    body = second.json()
    assert body["data"]["thresholds"] == [80]
    assert body["data"]["spend"] == "820.00"
    assert body["data"]["budget_amount"] == "1000.00"
    assert body["data"]["percent_used"] == "82.0"
    assert body["data"]["department"] == {"team_id": "team_support", "name": "Support"}
    assert [m["model"] for m in body["data"]["top_models"]] == ["gpt-4o", "o3"]
    assert body["data"]["url"].endswith("/dashboard/departments/team_support/")
    assert body["time"].startswith("2026-05-02T12:")
    assert "820.00 USD" in email_80.body  # the same number the e-mail says

    # Anything else does not verify: another secret, a changed body, a replayed old request.
    header = second.headers["X-KT-Signature"]
    assert not verify_kt_signature("whsec_other", header, second.body)
    assert not verify_kt_signature(secret, header, second.body.replace(b"820.00", b"8.00"))
    assert not verify_kt_signature(secret, header, second.body, tolerance=-1)
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(time.time() - timestamp) < 60

    deliveries = ChannelDelivery.objects.order_by("pk")
    assert [(d.status, d.attempts, d.response_code) for d in deliveries] == [
        ("sent", 1, 200),
        ("sent", 1, 200),
    ]
    assert json.loads(second.body) == deliveries[1].body  # what is recorded is what was sent


def test_slack_gets_the_subject_as_text_and_the_facts_as_fields(
    org, budget, support, spend, receiver
):
    channel_create(organization=org, name="support-slack", kind="slack", url=receiver.url("/slack"))
    spend(department=support, amount="820", model="o3")

    (request,) = receiver.at("/slack")
    assert "X-KT-Signature" not in request.headers  # a Slack URL is its own credential
    message = request.json()
    (email,) = mail.outbox
    assert message["text"] == email.subject
    header, headline, facts, link = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": email.subject}}
    assert headline["type"] == "section"
    assert headline["text"]["text"] == "Support has passed 50% and 80% of its May 2026 budget."
    fields = [f["text"] for f in facts["fields"]]
    assert "*Department*\nSupport" in fields
    assert "*Spend*\n820.00 USD" in fields
    assert "*Budget*\n1000.00 USD" in fields
    assert "*Used*\n82.0%" in fields
    assert all(f["type"] == "mrkdwn" for f in facts["fields"])
    assert link["elements"][0]["text"].endswith("/dashboard/departments/team_support/|Open>")


def test_each_channel_gets_only_the_events_of_its_scope_and_types(
    org, budget, support, spend, receiver, outsider_org, outsider_budget, outsider_support
):
    engineering = DepartmentFactory(organization=org, team_id="team_engineering")

    def make(name, **kwargs):
        channel_create(
            organization=kwargs.pop("organization", org),
            name=name,
            kind="webhook",
            url=receiver.url(f"/{name}"),
            **kwargs,
        )

    make("everything")
    make("support", department=support)
    make("support-month", department=support, budget_period="month")
    make("support-quarter", department=support, budget_period="quarter")
    make("engineering", department=engineering)
    make("wallets-only", events=["wallet.low", "wallet.depleted"])
    make("switched-off", is_active=False)
    make("outsider", organization=outsider_org)

    spend(department=support, amount="600")  # 60 % of the budget: the 50 % alert

    got = {
        name: len(receiver.at(f"/{name}"))
        for name in (
            "everything",
            "support",
            "support-month",
            "support-quarter",
            "engineering",
            "wallets-only",
            "switched-off",
            "outsider",
        )
    }
    assert got == {
        "everything": 1,
        "support": 1,
        "support-month": 1,
        "support-quarter": 0,
        "engineering": 0,
        "wallets-only": 0,
        "switched-off": 0,
        "outsider": 0,
    }
    ids = {r.json()["id"] for r in receiver.requests}
    assert len(ids) == 1  # one event, the same id on every channel


def test_a_wallet_running_low_and_empty_is_an_event_each(
    org, support, support_wallet, spend, receiver, verify_kt_signature
):
    _, secret = channel_create(
        organization=org,
        name="wallets",
        kind="webhook",
        url=receiver.url("/wallets"),
        events=["wallet.low", "wallet.depleted"],
    )
    spend(department=support, amount="4600")  # 400 of 5,000 left: under 10 %
    spend(department=support, amount="400")  # nothing left

    low, depleted = receiver.at("/wallets")
    assert [low.json()["type"], depleted.json()["type"]] == ["wallet.low", "wallet.depleted"]
    assert all(
        verify_kt_signature(secret, r.headers["X-KT-Signature"], r.body) for r in (low, depleted)
    )
    data = depleted.json()["data"]
    assert data["available"] == "0.00"
    assert data["state"] == "depleted"
    assert data["wallet"]["name"] == support_wallet.name
    assert data["last_allocation"] == "5000.00"
    assert data["subject"] in [m.subject for m in mail.outbox]


def test_each_attempt_is_recorded_and_a_second_runner_never_sends_twice(
    org, receiver, django_capture_on_commit_callbacks
):
    channel_create(organization=org, name="finops", kind="webhook", url=receiver.url())
    delivery = event_publish(
        organization_id=org.pk,
        event_type="export.ready",
        event_key="export_job:1",
        facts={"subject": "ready"},
        occurred_at=timezone.now(),
    )[0]  # its on-commit send is not run here: the test sends by hand
    receiver.statuses = [502]

    with pytest.raises(DeliveryFailed):
        delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 502)
    assert delivery.last_error == "HTTP 502: receiver is down"

    assert delivery_send(delivery_id=delivery.pk) == 1
    assert delivery_send(delivery_id=delivery.pk) == 0  # sent: a second runner skips it
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 2, 200)
    assert delivery.last_error == ""
    assert len(receiver.requests) == 2
    # Published again (a retried e-mail task, the hourly run): nothing new is created or sent.
    with django_capture_on_commit_callbacks(execute=True):
        again = event_publish(
            organization_id=org.pk,
            event_type="export.ready",
            event_key="export_job:1",
            facts={"subject": "ready"},
            occurred_at=timezone.now(),
        )
    assert again == []
    assert len(receiver.requests) == 2


def test_the_upstream_rules_are_checked_again_on_each_connection(org, receiver, settings):
    channel_create(organization=org, name="finops", kind="webhook", url=receiver.url())
    delivery = event_publish(
        organization_id=org.pk,
        event_type="export.ready",
        event_key="export_job:2",
        facts={"subject": "ready"},
        occurred_at=timezone.now(),
    )[0]
    settings.KT_UPSTREAM_ALLOW_HOSTS = []  # the operator no longer allows the receiver
    settings.KT_UPSTREAM_ALLOW_HTTP = True  # so what refuses it is its address

    with pytest.raises(DeliveryFailed):
        delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "a loopback address" in delivery.last_error
    assert receiver.requests == []


def test_the_forecast_over_budget_is_one_event_with_the_emails_forecast(
    org,
    budget,
    support,
    spend,
    run_hourly,  # noqa: F811
    receiver,
):
    channel_create(
        organization=org,
        name="forecasts",
        kind="slack",
        url=receiver.url("/slack"),
        department=support,
        budget_period="month",
        events=["budget.forecast_over"],
    )
    with time_machine.travel(datetime(2026, 5, 10, 12, 0, tzinfo=UTC), tick=False):
        spend(department=support, amount="400")  # 40 % after 9.5 days: heading for 1305.26
        run_hourly()
        run_hourly()

    (request,) = receiver.requests  # one event, though the hourly run ran twice
    message = request.json()
    (email,) = mail.outbox
    assert message["text"] == email.subject
    assert "Forecast 1,305.26 USD is 131% of the May 2026 budget" in message["text"]
    fields = [f["text"] for f in message["blocks"][2]["fields"]]
    assert "*Forecast*\n1305.26 USD" in fields
    (delivery,) = ChannelDelivery.objects.all()
    assert delivery.event_type == "budget.forecast_over"
    assert delivery.body["data"]["forecast"] == "1305.26"
