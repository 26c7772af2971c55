"""Refusals: each in the SDK's usual error class and shape, and none of them moves money."""

import time
from datetime import timedelta
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.utils import timezone

from chargeback.keys import hash_key
from gateway.models import UsageEvent
from tests.factories import ProviderTargetFactory
from wallets.models import Hold

from .conftest import KEY

HELLO = [{"role": "user", "content": "Hello"}]


def _post(url, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.post(url, content=body, headers=headers, timeout=10, **kw)


def test_a_bad_key_is_refused_with_401(gw, live_server):
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="kt_cg_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert exc.value.status_code == 401
    assert exc.value.body["code"] == "invalid_api_key"
    claude = anthropic.Anthropic(base_url=live_server.url, api_key="kt_cg_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        claude.messages.create(model="fake-chat", max_tokens=5, messages=HELLO)
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "authentication_error"
    assert not UsageEvent.objects.exists()


def test_the_key_works_through_x_api_key_too(gw, gateway_url):
    r = httpx.post(
        f"{gateway_url}/chat/completions",
        json={"model": "fake-chat", "messages": HELLO},
        headers={"x-api-key": KEY},
        timeout=10,
    )
    assert r.status_code == 200


def test_a_deactivated_key_stops_working_within_seconds(gw, oai, settings):
    settings.KT_KEY_CACHE_SECONDS = 1
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    gw.group.is_active = False
    gw.group.save()
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)


def test_the_previous_key_works_until_its_grace_period_ends(gw, live_server, settings):
    settings.KT_KEY_CACHE_SECONDS = 60
    gw.group.previous_key_hash = gw.group.key_hash
    gw.group.previous_key_expires_at = timezone.now() + timedelta(seconds=1)
    gw.group.key_hash = hash_key("kt_cg_engineering_new")
    gw.group.save()
    old = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0)
    new = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key="kt_cg_engineering_new", max_retries=0
    )

    old.chat.completions.create(model="fake-chat", messages=HELLO)
    new.chat.completions.create(model="fake-chat", messages=HELLO)
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):  # even though the lookup is still cached
        old.chat.completions.create(model="fake-chat", messages=HELLO)
    new.chat.completions.create(model="fake-chat", messages=HELLO)


def test_a_hold_the_wallet_cannot_cover_is_refused_with_402_naming_what_is_available(
    gw, oai, claude
):
    from wallets import services

    services.wallet_adjust(wallet=gw.wallet, amount=Decimal("-9.995"), reason="drain")
    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert exc.value.status_code == 402
    assert exc.value.body["code"] == "insufficient_quota"
    assert exc.value.body["type"] == "insufficient_quota"
    assert "0.01 USD available" in exc.value.body["message"]
    with pytest.raises(anthropic.APIStatusError) as exc:
        claude.messages.create(model="fake-chat", max_tokens=1000, messages=HELLO)
    assert exc.value.status_code == 402
    assert exc.value.body["error"]["type"] == "billing_error"

    wallet = gw.refresh()
    assert (wallet.balance, wallet.held) == (Decimal("0.005"), 0)
    assert not Hold.objects.exists()
    assert list(UsageEvent.objects.values_list("status", "http_status", "cost")) == [
        ("rejected", 402, 0),
        ("rejected", 402, 0),
    ]


def test_a_small_enough_request_still_fits_the_last_funds(gw, oai):
    from wallets import services

    services.wallet_adjust(wallet=gw.wallet, amount=Decimal("-9.99"), reason="drain")
    oai.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=10)
    assert UsageEvent.objects.get().status == "ok"


def test_without_enforcement_an_empty_wallet_is_tracked_not_blocked(gw, oai):
    from wallets import services

    services.wallet_adjust(wallet=gw.wallet, amount=Decimal("-10.00"), reason="drain")
    gw.org.wallet_enforcement = False
    gw.org.save()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    event = UsageEvent.objects.get()
    assert event.status == "ok"
    assert event.cost > 0
    assert gw.refresh().balance == -event.cost


def test_with_cost_tracking_off_no_hold_is_placed(gw, oai):
    gw.org.cost_tracking_enabled = False
    gw.org.save()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert not Hold.objects.exists()
    assert gw.refresh().balance == Decimal("10.00")
    assert UsageEvent.objects.get().wallet is None


@pytest.mark.parametrize(
    ("model", "code"),
    [("no-such-model", "model_not_found"), ("outsider-only", "model_not_found")],
)
def test_an_unknown_model_is_a_400(gw, oai, model, code):
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model=model, messages=HELLO)
    assert exc.value.body["code"] == code
    assert exc.value.body["param"] == "model"
    assert gw.refresh().held == 0


def test_a_model_the_group_may_not_use_is_a_400(gw, oai):
    gw.group.allowed_models = ["fake-embed"]
    gw.group.save()
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert exc.value.body["code"] == "model_not_allowed"


def test_a_served_model_without_a_price_is_a_400(gw, oai):
    ProviderTargetFactory(
        organization=gw.org, target_id="pinned", provider="fake", served_models=["unpriced"]
    )
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="unpriced", messages=HELLO)
    assert exc.value.body["code"] == "model_not_priced"


def test_bad_bodies_are_400s_in_the_openai_shape(gw, gateway_url):
    malformed = _post(f"{gateway_url}/chat/completions", b"{not json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "invalid_json"
    assert set(malformed.json()["error"]) == {"message", "type", "code", "param"}
    missing = _post(f"{gateway_url}/chat/completions", b'{"model": "fake-chat"}')
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"
    negative = _post(
        f"{gateway_url}/chat/completions",
        b'{"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
    )
    assert negative.json()["error"]["param"] == "max_tokens"
    anthropic_shape = _post(f"{gateway_url}/messages", b"[1, 2]")
    assert anthropic_shape.status_code == 400
    assert anthropic_shape.json()["type"] == "error"
    assert anthropic_shape.json()["error"]["type"] == "invalid_request_error"
    assert not UsageEvent.objects.exists()


def test_a_body_over_the_limit_is_a_413(gw, gateway_url, settings):
    settings.KT_MAX_BODY_BYTES = 1000
    body = (
        '{"model": "fake-chat", "messages": [{"role": "user", "content": "' + "x" * 2000 + '"}]}'
    ).encode()
    r = _post(f"{gateway_url}/chat/completions", body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert gw.refresh().held == 0


def test_a_group_over_its_requests_per_minute_gets_429(gw, oai):
    gw.group.rpm_limit = 2
    gw.group.save()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert exc.value.body["code"] == "rate_limit_exceeded"
    assert int(exc.value.response.headers["retry-after"]) <= 61
    assert UsageEvent.objects.count() == 2


def test_a_group_over_its_tokens_per_minute_gets_429(gw, oai):
    gw.group.tpm_limit = 10
    gw.group.save()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)  # > 10 tokens
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)


def test_a_missing_provider_secret_is_a_clear_error_naming_the_variable(
    gw, oai, settings, monkeypatch
):
    monkeypatch.delenv("KT_TEST_MISSING_KEY", raising=False)
    settings.KT_FAKE_PROVIDER_URL = ""
    gw.target.provider = "openai"
    gw.target.secret_env = "KT_TEST_MISSING_KEY"
    gw.target.save()
    from tests.factories import PriceFactory

    PriceFactory(provider="openai", model="gpt-test")
    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(model="gpt-test", messages=HELLO)
    assert exc.value.status_code == 503
    assert "KT_TEST_MISSING_KEY" in exc.value.body["message"]
    assert gw.refresh().held == 0


def test_demo_offline_mode_sends_calls_to_the_fake_provider(
    gw, oai, settings, monkeypatch, fake_provider
):
    monkeypatch.delenv("KT_TEST_MISSING_KEY", raising=False)
    settings.KT_FAKE_PROVIDER_URL = fake_provider
    gw.target.provider = "openai"
    gw.target.base_url = ""
    gw.target.secret_env = "KT_TEST_MISSING_KEY"
    gw.target.save()
    from tests.factories import PriceFactory

    PriceFactory(provider="openai", model="gpt-test")
    reply = oai.chat.completions.create(model="gpt-test", messages=HELLO)
    assert reply.choices[0].message.content
    event = UsageEvent.objects.get()
    assert (event.provider, event.status) == ("openai", "ok")
