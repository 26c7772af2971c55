"""Charges and the hold: an estimate stays within what the request allowed; what a provider
reports beyond the hold is charged (the provider billed it) and flagged on the event."""

from decimal import Decimal

import httpx
import pytest

from gateway.models import UsageEvent
from wallets.models import Hold

from .conftest import KEY, OUTSIDER_KEY, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Tell me about wallets"}]


def _stream(url: str, body: dict, headers: dict, key: str = KEY) -> str:
    headers = {"Authorization": f"Bearer {key}", **headers}
    with httpx.stream(
        "POST", f"{url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        assert r.status_code == 200
        return "".join(r.iter_text())


def _event_and_hold(**filters):
    event = UsageEvent.objects.get(**filters)
    return event, Hold.objects.get(request_id=event.request_id)


def test_a_stream_cut_before_its_usage_is_charged_at_most_max_tokens(gw, gateway_url):
    # The provider writes 40 words for max_tokens=10 and breaks off halfway, before the usage
    # chunk: 20 words relayed, about 30 tokens at 4 bytes each.
    body = {"model": "fake-chat", "messages": HELLO, "stream": True, "max_tokens": 10}
    headers = {"x-fake-tokens": "40", "x-fake-chunks": "8", "x-fake-fault": "reset"}
    text = _stream(gateway_url, body, headers)
    relayed = "".join(
        line.split('"content": "', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if '"content": "' in line
    )
    assert -(-len(relayed.encode()) // 4) > 10

    event, hold = _event_and_hold()
    assert (event.status, event.error_code, event.usage_source) == (
        "provider_error",
        "upstream_reset",
        "estimated",
    )
    assert event.completion_tokens == 10
    assert 0 < event.cost <= hold.amount
    assert not event.above_hold
    assert gw.refresh().balance == Decimal("10.00") - event.cost


@pytest.mark.parametrize("stream", [False, True])
def test_usage_the_provider_reports_above_the_hold_is_charged_and_flagged(gw, gateway_url, stream):
    # max_tokens=5 reserves 5 completion tokens; this provider bills 400.
    body = {"model": "fake-chat", "messages": HELLO, "max_tokens": 5, "stream": stream}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-tokens": "400"}
    if stream:
        _stream(gateway_url, body, headers)
    else:
        r = httpx.post(f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10)
        assert r.status_code == 200
        assert r.json()["usage"]["completion_tokens"] == 400

    event, hold = _event_and_hold()
    assert (event.status, event.usage_source, event.completion_tokens) == ("ok", "provider", 400)
    assert event.cost > hold.amount
    assert event.above_hold
    assert (hold.status, hold.captured_amount) == ("captured", event.cost)
    wallet = gw.refresh()
    assert (wallet.balance, wallet.held) == (Decimal("10.00") - event.cost, 0)


def test_another_organizations_calls_are_not_flagged_and_keep_their_own_wallet(gw, gateway_url):
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-tokens": "400"}
    body = {"model": "fake-chat", "messages": HELLO, "max_tokens": 5}
    assert httpx.post(f"{gateway_url}/chat/completions", json=body, headers=headers).is_success
    outsider = {"model": "outsider-only", "messages": HELLO, "max_tokens": 20}
    _stream(gateway_url, {**outsider, "stream": True}, {}, key=OUTSIDER_KEY)

    theirs, hold = _event_and_hold(organization=gw.outsider_org)
    assert not theirs.above_hold
    assert 0 < theirs.cost <= hold.amount
    assert UsageEvent.objects.get(organization=gw.org).above_hold
    gw.outsider_wallet.refresh_from_db()
    assert gw.outsider_wallet.balance == Decimal("5.00") - theirs.cost
