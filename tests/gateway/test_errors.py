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
from wallets.models import Hold

from .conftest import KEY, live_db

pytestmark = live_db

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
    grace_until = timezone.now() + timedelta(seconds=2)
    gw.group.previous_key_expires_at = grace_until
    gw.group.key_hash = hash_key("kt_cg_engineering_new")
    gw.group.save()
    old = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0)
    new = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key="kt_cg_engineering_new", max_retries=0
    )

    old.chat.completions.create(model="fake-chat", messages=HELLO)
    new.chat.completions.create(model="fake-chat", messages=HELLO)
    time.sleep(max(0, (grace_until - timezone.now()).total_seconds()) + 0.1)
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
    # The amounts as they are, not rounded to cents (0.005 would read "0.01", a lie).
    assert "has 0.005 USD available" in exc.value.body["message"]
    assert "may cost up to 0.01009 USD" in exc.value.body["message"]
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


def _fresh_window():
    """Rate windows are whole minutes: do not start a test a moment before one ends."""
    into = time.time() % 60
    if into > 54:
        time.sleep(60 - into + 0.1)


def test_a_group_over_its_requests_per_minute_gets_429(gw, oai):
    _fresh_window()
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
    _fresh_window()
    gw.group.tpm_limit = 10
    gw.group.save()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)  # > 10 tokens
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
