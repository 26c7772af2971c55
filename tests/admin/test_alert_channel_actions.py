"""The alert channel admin's actions, against a real receiver on loopback: "send test event"
delivers a signed test event and records it; "redeliver" sends a failed delivery again (same
event id) and records the new outcome. Both leave their service's audit row; a viewer may not."""

import pytest
from django.urls import reverse

from alert_channels.models import AlertChannel, ChannelDelivery
from alert_channels.services.channels import channel_secret, channel_secret_rotate
from chargeback.models import AuditLog
from tests.alert_channels.conftest import receiver, verify_kt_signature  # noqa: F401


@pytest.fixture
def channel(acme, receiver):  # noqa: F811
    channel = AlertChannel.objects.get(organization=acme.org)
    AlertChannel.objects.filter(pk=channel.pk).update(url=receiver.url("/acme"))
    channel.refresh_from_db()
    return channel


def _act(client, model, action, ids, capture):
    url = reverse(f"admin:alert_channels_{model}_changelist")
    with capture(execute=True):
        return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids]})


def test_send_test_event_delivers_a_signed_test_event(
    acme,
    channel,
    receiver,  # noqa: F811
    login,
    verify_kt_signature,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    secret = channel_secret_rotate(channel=channel)
    client = login(acme.users["owner"])

    response = _act(
        client, "alertchannel", "send_test_event", [channel.pk], django_capture_on_commit_callbacks
    )

    assert response.status_code == 302
    (request,) = receiver.at("/acme")
    assert request.json()["type"] == "test"
    assert verify_kt_signature(secret, request.headers["X-KT-Signature"], request.body)
    delivery = ChannelDelivery.objects.get(channel=channel, event_type="test", status="sent")
    assert (delivery.attempts, delivery.response_code) == (1, 200)
    assert AuditLog.objects.filter(action="alert_channel.test", via="admin").count() == 1


def test_redeliver_sends_the_same_event_again_and_records_it(
    acme,
    outsider,
    channel,
    receiver,  # noqa: F811
    login,
    django_capture_on_commit_callbacks,
):
    channel_secret_rotate(channel=channel)
    failed = ChannelDelivery.objects.get(channel=channel, status="failed")
    theirs = ChannelDelivery.objects.get(organization=outsider.org)
    client = login(acme.users["owner"])

    page = client.get(reverse("admin:alert_channels_channeldelivery_changelist"))
    assert "acme receiver down" in page.content.decode()
    assert "outsider" not in page.content.decode()

    _act(
        client,
        "channeldelivery",
        "redeliver",
        [failed.pk, theirs.pk],  # another tenant's id is filtered out, never sent
        django_capture_on_commit_callbacks,
    )

    (request,) = receiver.requests
    assert request.json()["id"] == str(failed.event_id)
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.response_code, failed.last_error) == (
        "sent",
        3,
        200,
        "",
    )
    theirs.refresh_from_db()
    assert (theirs.status, theirs.attempts) == ("failed", 2)
    assert AuditLog.objects.filter(action="channel_delivery.redeliver").count() == 1


def test_a_viewer_can_see_deliveries_but_not_redeliver(acme, channel, login):
    client = login(acme.users["viewer"])
    page = client.get(reverse("admin:alert_channels_channeldelivery_changelist"))
    assert page.status_code == 200
    assert "redeliver" not in page.content.decode()


def test_adding_a_webhook_shows_its_secret_once(acme, login):
    client = login(acme.users["owner"])
    response = client.post(
        reverse("admin:alert_channels_alertchannel_add"),
        {
            "organization": str(acme.org.pk),
            "name": "finops",
            "kind": "webhook",
            "url": "https://93.184.215.14/kt",
            "events": "[]",
            "is_active": "on",
        },
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"] if "whsec_" in str(m)]
    assert len(shown) == 1
    secret = shown[0].rsplit(" ", 1)[1]
    channel = AlertChannel.objects.get(organization=acme.org, name="finops")
    assert channel_secret(channel) == secret  # what is stored (encrypted) is what was shown
    page = client.get(reverse("admin:alert_channels_alertchannel_change", args=[channel.pk]))
    assert secret not in page.content.decode()
