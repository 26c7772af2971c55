"""How gateway requests are dispatched: past the portal's middleware, through trimmed DRF views
that answer every error in the SDK's shape; and what usage events keep without database-level
references."""

import logging

import pytest
from django.db.models import ProtectedError

from gateway.models import UsageEvent
from wallets.models import Hold

from .test_rules import KEY, chat


def test_a_wrong_method_is_a_405_in_the_sdk_shape(gw_local, client):
    auth = {"Authorization": f"Bearer {KEY}"}

    openai_shaped = client.get("/v1/chat/completions", headers=auth)
    anthropic_shaped = client.get("/v1/messages", headers=auth)

    assert openai_shaped.status_code == 405
    assert openai_shaped.json()["error"]["code"] == "method_not_allowed"
    assert 'Method "GET" not allowed' in openai_shaped.json()["error"]["message"]
    assert anthropic_shaped.status_code == 405
    assert anthropic_shaped.json()["type"] == "error"
    assert not UsageEvent.objects.exists()


def test_an_unexpected_failure_is_a_500_in_the_sdk_shape_and_releases_the_hold(
    gw_local, client, caplog
):
    # A base URL httpx cannot parse fails inside the call, after the hold was placed.
    gw_local.target.base_url = "http://[::1/v1"
    gw_local.target.save()

    with caplog.at_level(logging.ERROR, logger="gateway.views"):
        response = chat(client)

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    request_id = response["x-kt-request-id"]
    event = UsageEvent.objects.get(request_id=request_id)
    assert (event.status, event.error_code, event.cost) == ("error", "gateway_error", 0)
    assert Hold.objects.get(request_id=request_id).status == "released"
    assert gw_local.refresh().held == 0
    assert "gateway request failed" in caplog.text


def test_the_hot_endpoints_skip_the_portals_middleware_and_the_rest_does_not(gw_local, client):
    gateway = chat(client)
    one_model = client.get("/v1/models/fake-chat", headers={"Authorization": f"Bearer {KEY}"})
    admin = client.get("/admin/login/")

    assert gateway.status_code == 200
    assert int(gateway["Content-Length"]) == len(gateway.content)
    # XFrameOptionsMiddleware and SessionMiddleware (Vary: Cookie) never saw the gateway call.
    assert "X-Frame-Options" not in gateway
    assert "Cookie" not in gateway.get("Vary", "")
    assert one_model.status_code == 200
    assert one_model["X-Frame-Options"] == "DENY"
    assert admin["X-Frame-Options"] == "DENY"


def test_what_usage_events_point_at_cannot_be_deleted_under_them(gw_local, client):
    assert chat(client).status_code == 200
    event = UsageEvent.objects.get()

    with pytest.raises(ProtectedError) as exc:
        gw_local.group.delete()
    assert event in exc.value.protected_objects
    with pytest.raises(ProtectedError) as exc:
        gw_local.chat.delete()
    assert event in exc.value.protected_objects


def test_allowed_hosts_still_hold_for_the_hot_endpoints(gw_local, client, settings):
    settings.ALLOWED_HOSTS = ["gateway.example"]

    refused = chat(client)  # the test client sends Host: testserver
    served = post_chat_as(client, "gateway.example")

    assert refused.status_code == 400
    assert served.status_code == 200
    assert UsageEvent.objects.count() == 1


def post_chat_as(client, host):
    return client.post(
        "/v1/chat/completions",
        data={"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {KEY}"},
        HTTP_HOST=host,
    )
