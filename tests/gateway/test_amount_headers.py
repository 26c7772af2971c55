"""Amounts in the gateway's headers are plain decimal digits at 8 places (docs/gateway.md),
never Decimal's exponent form (an empty wallet's available used to read `0E-8`)."""

from decimal import Decimal

import httpx

from wallets import services

from .conftest import KEY, live_db

pytestmark = live_db


def test_an_empty_wallet_answers_402_with_available_in_digits(gw, live_server):
    services.wallet_adjust(wallet=gw.wallet, amount=Decimal("-10.00"), reason="drain")
    assert gw.refresh().available == 0

    response = httpx.post(
        f"{live_server.url}/v1/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )

    assert response.status_code == 402
    assert response.headers["x-kt-wallet-available"] == "0.00000000"


def test_a_charged_call_reports_its_cost_and_what_is_left_in_digits(gw, live_server):
    response = httpx.post(
        f"{live_server.url}/v1/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    cost, available = response.headers["x-kt-cost"], response.headers["x-kt-wallet-available"]
    assert "E" not in cost
    assert "E" not in available
    assert Decimal(available) == gw.refresh().available == Decimal("10.00") - Decimal(cost)
