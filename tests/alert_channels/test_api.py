"""GET/POST/DELETE /v1/webhooks: scoped to the token's organization (org B can neither see nor
delete org A's), the secret shown once, the URL under the gateway's upstream rules."""

import pytest

from alert_channels.models import AlertChannel, ChannelDelivery
from chargeback.models import AuditLog

pytestmark = pytest.mark.django_db


def _create(api, **body):
    return api.post("/v1/webhooks", body, format="json")


def test_a_webhook_is_created_with_its_secret_shown_once_and_listed_without_it(
    api, org, support, receiver
):
    response = _create(
        api,
        name="finops",
        kind="webhook",
        url=receiver.url(),
        team_id="team_support",
        budget_period="month",
        events=["budget.threshold_crossed"],
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["scope"] == "budget"
    assert created["team_id"] == "team_support"
    channel = AlertChannel.objects.get(pk=created["id"])
    assert created["secret"] not in channel.secret_ciphertext  # stored encrypted

    listed = api.get("/v1/webhooks").json()
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]
    assert created["secret"] not in api.get(f"/v1/webhooks/{created['id']}").content.decode()
    audit = AuditLog.objects.get(action="alert_channel.create")
    assert created["secret"] not in str(audit.after)


def test_a_slack_url_is_shown_by_its_host_only(api, receiver):
    response = _create(api, name="slack", kind="slack", url=receiver.url("/services/T0/B0/XYZ"))
    assert response.status_code == 201, response.content
    assert response.json()["secret"] == ""
    assert response.json()["url"] == f"http://{receiver.host}/…"
    assert "XYZ" not in api.get("/v1/webhooks").content.decode()


def test_another_organizations_webhooks_are_invisible_and_undeletable(
    api, outsider_api, org, outsider_org, receiver
):
    ours = _create(api, name="ours", url=receiver.url("/ours")).json()
    theirs = _create(outsider_api, name="theirs", url=receiver.url("/theirs")).json()

    assert [c["name"] for c in api.get("/v1/webhooks").json()["results"]] == ["ours"]
    assert [c["name"] for c in outsider_api.get("/v1/webhooks").json()["results"]] == ["theirs"]
    assert outsider_api.get(f"/v1/webhooks/{ours['id']}").status_code == 404
    assert outsider_api.delete(f"/v1/webhooks/{ours['id']}").status_code == 404
    assert outsider_api.post(f"/v1/webhooks/{ours['id']}/test").status_code == 404
    assert outsider_api.post(f"/v1/webhooks/{ours['id']}/rotate-secret").status_code == 404
    assert AlertChannel.objects.filter(pk=ours["id"]).exists()
    assert receiver.requests == []

    assert api.delete(f"/v1/webhooks/{ours['id']}").status_code == 204
    assert not AlertChannel.objects.filter(pk=ours["id"]).exists()
    assert AlertChannel.objects.filter(pk=theirs["id"]).exists()
    assert AuditLog.objects.filter(action="alert_channel.delete", organization=org).count() == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "https://169.254.169.254/latest"}, "url", "link-local address"),
        ({"url": "https://127.0.0.1:9/hook"}, "url", "a loopback address"),
        ({"url": "http://hooks.example.com/x"}, "url", "uses plain http"),
        ({"events": ["budget.exploded"]}, "events", "is not a valid choice"),
        ({"budget_period": "month"}, "budget_period", "needs the budget's department"),
        ({"budget_period": "yearly"}, "budget_period", "must be one of month, quarter"),
        ({"kind": "pager"}, "kind", "is not a valid choice"),
        ({"secret": "mine"}, "secret", "unknown field"),
    ],
)
def test_bad_input_is_refused_field_by_field(api, body, field, message):
    response = _create(api, **{"name": "bad", "url": "https://hooks.example.com/x", **body})
    assert response.status_code == 400, response.content
    assert message in str(response.json()[field])
    assert not AlertChannel.objects.exists()


def test_unknown_department_and_duplicate_name(api, receiver):
    assert _create(api, name="x", url=receiver.url(), team_id="team_nowhere").status_code == 404
    assert _create(api, name="x", url=receiver.url()).status_code == 201
    again = _create(api, name="x", url=receiver.url())
    assert again.status_code == 409
    assert again.json()["field"] == "name"


def test_a_test_event_is_delivered_and_recorded(
    api, receiver, verify_kt_signature, django_capture_on_commit_callbacks
):
    created = _create(api, name="finops", url=receiver.url()).json()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/v1/webhooks/{created['id']}/test")
    assert response.status_code == 202
    (request,) = receiver.requests
    assert request.json()["type"] == "test"
    assert verify_kt_signature(created["secret"], request.headers["X-KT-Signature"], request.body)
    delivery = ChannelDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 1, 200)
    shown = api.get(f"/v1/webhooks/{created['id']}").json()["recent_deliveries"]
    assert [(d["event_type"], d["status"]) for d in shown] == [("test", "sent")]

    rotated = api.post(f"/v1/webhooks/{created['id']}/rotate-secret").json()["secret"]
    assert rotated != created["secret"]
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/v1/webhooks/{created['id']}/test")
    header, body = receiver.requests[1].headers["X-KT-Signature"], receiver.requests[1].body
    assert verify_kt_signature(rotated, header, body)
    assert not verify_kt_signature(created["secret"], header, body)
