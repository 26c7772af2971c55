"""Gateway rules checked through Django's test client inside the test's transaction (fast):
body validation, limits, routing, enforcement switches, provider configuration. The fake
provider is still a real HTTP server."""

import json
from decimal import Decimal

from gateway.models import UsageEvent
from tests.factories import PriceFactory, ProviderTargetFactory
from wallets import services
from wallets.models import Hold

from .conftest import KEY, OUTSIDER_KEY, allow_test_env_refs

HELLO = [{"role": "user", "content": "Hello"}]


def post(client, path, body, key=KEY, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if key:
        headers.setdefault("Authorization", f"Bearer {key}")
    return client.generic(
        "POST", f"/v1/{path}", data=data, content_type="application/json", headers=headers
    )


def chat(client, key=KEY, **extra):
    return post(client, "chat/completions", {"model": "fake-chat", "messages": HELLO, **extra}, key)


def test_the_key_works_through_x_api_key_too(gw_local, client):
    r = post(
        client,
        "chat/completions",
        {"model": "fake-chat", "messages": HELLO},
        key="",
        **{"x-api-key": KEY},
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"]


def test_a_missing_key_is_a_401(gw_local, client):
    r = chat(client, key="")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_a_small_enough_request_still_fits_the_last_funds(gw_local, client):
    services.wallet_adjust(wallet=gw_local.wallet, amount=Decimal("-9.99"), reason="drain")
    assert chat(client, max_tokens=10).status_code == 200
    assert chat(client).status_code == 402  # the model's output cap no longer fits
    assert list(UsageEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "ok",
        "rejected",
    ]


def test_without_enforcement_an_empty_wallet_is_tracked_not_blocked(gw_local, client):
    services.wallet_adjust(wallet=gw_local.wallet, amount=Decimal("-10.00"), reason="drain")
    gw_local.org.wallet_enforcement = False
    gw_local.org.save()
    assert chat(client).status_code == 200
    event = UsageEvent.objects.get()
    assert event.status == "ok"
    assert event.cost > 0
    assert gw_local.refresh().balance == -event.cost


def test_with_cost_tracking_off_no_hold_is_placed(gw_local, client):
    gw_local.org.cost_tracking_enabled = False
    gw_local.org.save()
    assert chat(client).status_code == 200
    assert not Hold.objects.exists()
    assert gw_local.refresh().balance == Decimal("10.00")
    assert UsageEvent.objects.get().wallet is None


def test_a_group_without_any_wallet_is_refused_when_enforced(gw_local, client):
    r = chat(client, key=OUTSIDER_KEY, model="outsider-only")
    assert r.status_code == 200  # the outsider has a team wallet
    from chargeback.models import ConsumerGroup
    from tests.factories import DepartmentFactory

    walletless = DepartmentFactory(organization=gw_local.org, team_id="team_new")
    ConsumerGroup.objects.filter(pk=gw_local.group.pk).update(department=walletless)
    r = chat(client)
    assert r.status_code == 402
    # No team wallet: the cascade falls through to the organization's, which the team's
    # allocation (auto_fund) left empty.
    assert "wallet Acme has 0.00 USD available" in r.json()["error"]["message"]
    # Strict, the department has no wallet at all to pay from.
    walletless.fall_through = False
    walletless.save()
    from gateway.cache import clear_all

    clear_all()
    r = chat(client)
    assert r.status_code == 402
    assert "No wallet covers" in r.json()["error"]["message"]


def test_a_served_model_without_a_price_is_a_400(gw_local, client):
    ProviderTargetFactory(
        organization=gw_local.org, target_id="pinned", provider="fake", served_models=["unpriced"]
    )
    r = chat(client, model="unpriced")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "model_not_priced"


def test_an_explicitly_served_model_goes_to_its_target(gw_local, client, fake_provider):
    ProviderTargetFactory(
        organization=gw_local.org,
        target_id="a-pinned",
        provider="fake",
        base_url=fake_provider,
        served_models=["fake-chat"],
    )
    assert chat(client).status_code == 200
    assert UsageEvent.objects.get().target_id == "a-pinned"


def test_bad_bodies_are_400s_in_the_openai_shape(gw_local, client):
    malformed = post(client, "chat/completions", b"{not json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "invalid_json"
    assert set(malformed.json()["error"]) == {"message", "type", "code", "param"}
    missing = post(client, "chat/completions", {"model": "fake-chat"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"
    negative = chat(client, max_tokens=-1)
    assert negative.json()["error"]["param"] == "max_tokens"
    no_input = post(client, "embeddings", {"model": "fake-embed"})
    assert no_input.json()["error"]["param"] == "input"
    anthropic_shape = post(client, "messages", b"[1, 2]")
    assert anthropic_shape.status_code == 400
    assert anthropic_shape.json()["type"] == "error"
    assert anthropic_shape.json()["error"]["type"] == "invalid_request_error"
    assert not UsageEvent.objects.exists()
    assert not Hold.objects.exists()


def test_a_body_over_the_limit_is_a_413(gw_local, client, settings):
    settings.KT_MAX_BODY_BYTES = 1000
    r = chat(client, messages=[{"role": "user", "content": "x" * 2000}])
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert gw_local.refresh().held == 0


def test_a_missing_provider_secret_is_a_clear_error_naming_the_variable(
    gw_local, client, settings, monkeypatch
):
    monkeypatch.delenv("KT_TEST_MISSING_KEY", raising=False)
    settings.KT_FAKE_PROVIDER_URL = ""
    gw_local.target.provider = "openai"
    allow_test_env_refs(gw_local.org)
    gw_local.target.secret_env = "KT_TEST_MISSING_KEY"
    gw_local.target.save()
    PriceFactory(provider="openai", model="gpt-test")
    r = chat(client, model="gpt-test")
    assert r.status_code == 503
    assert "KT_TEST_MISSING_KEY" in r.json()["error"]["message"]
    assert gw_local.refresh().held == 0


def test_demo_offline_mode_sends_calls_to_the_fake_provider(
    gw_local, client, settings, monkeypatch, fake_provider
):
    monkeypatch.delenv("KT_TEST_MISSING_KEY", raising=False)
    settings.KT_FAKE_PROVIDER_URL = fake_provider
    gw_local.target.provider = "openai"
    gw_local.target.base_url = ""
    allow_test_env_refs(gw_local.org)
    gw_local.target.secret_env = "KT_TEST_MISSING_KEY"
    gw_local.target.save()
    PriceFactory(provider="openai", model="gpt-test")
    r = chat(client, model="gpt-test")
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"]
    event = UsageEvent.objects.get()
    assert (event.provider, event.status) == ("openai", "ok")


def test_an_openai_target_gets_its_secret_as_a_bearer_token(
    gw_local, client, monkeypatch, fake_provider
):
    """A real OpenAI-compatible upstream (the fake, at its /v1 base URL) with a secret."""
    monkeypatch.setenv("KT_TEST_OPENAI_KEY", "sk-test")
    gw_local.target.provider = "openai"
    gw_local.target.base_url = f"{fake_provider}/v1"
    allow_test_env_refs(gw_local.org)
    gw_local.target.secret_env = "KT_TEST_OPENAI_KEY"
    gw_local.target.save()
    PriceFactory(provider="openai", model="gpt-test")
    r = chat(client, model="gpt-test", stream=True)
    body = b"".join(r.streaming_content).decode()
    assert "[DONE]" in body
    assert '"usage"' not in body.split("[DONE]")[0].replace('"usage": null', "")
    event = UsageEvent.objects.get()
    assert (event.provider, event.status, event.usage_source) == ("openai", "ok", "provider")
