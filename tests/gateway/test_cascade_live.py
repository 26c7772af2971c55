"""The cascade through the gateway, with the real OpenAI SDK against the live server: an end
user's empty wallet falls through to the team's, an empty team's to the organization's; a strict
department answers 402 instead. The event keeps the caller's department and names who paid."""

from decimal import Decimal

import openai
import pytest

from gateway.models import UsageEvent
from wallets import services
from wallets.models import Hold, Wallet

from .conftest import live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Hello there, what is chargeback?"}]


def _empty_team(gw):
    services.wallet_reclaim(department=gw.department)  # everything back to the organization


def test_an_empty_user_wallet_falls_through_to_the_team_wallet(gw, oai):
    services.wallet_allocate(
        department=gw.department, amount=Decimal("0.00000001"), currency="USD", user_ref="alice"
    )
    raw = oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, user="alice"
    )
    raw.parse()

    event = UsageEvent.objects.get()
    assert event.status == "ok"
    assert event.cost > 0
    assert event.department == gw.department
    assert event.wallet == gw.wallet
    assert Hold.objects.get(request_id=event.request_id).wallet_id == gw.wallet.pk
    # Alice's allocation came from the team wallet.
    assert gw.refresh().balance == Decimal("9.99999999") - event.cost
    user = Wallet.objects.get(scope="user", user_ref="alice")
    assert (user.balance, user.held) == (Decimal("0.00000001"), 0)
    assert Decimal(raw.headers["x-kt-wallet-available"]) == gw.wallet.available


def test_an_empty_team_wallet_falls_through_to_the_organization_wallet(gw, oai):
    _empty_team(gw)
    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO)

    event = UsageEvent.objects.get()
    organization = Wallet.objects.get(organization=gw.org, scope="organization")
    assert reply.choices[0].message.content
    assert event.department == gw.department  # attributed to the caller's department
    assert (event.wallet_id, event.wallet.scope) == (organization.pk, "organization")
    assert Hold.objects.get(request_id=event.request_id).department_id == gw.department.pk
    assert organization.balance == Decimal("10.00") - event.cost
    assert gw.refresh().balance == 0
    # The outsider's wallets are untouched.
    gw.outsider_wallet.refresh_from_db()
    assert gw.outsider_wallet.balance == Decimal("5.00")


def test_a_strict_department_answers_402_when_its_team_wallet_is_short(gw, oai):
    _empty_team(gw)
    gw.department.fall_through = False
    gw.department.save()

    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert exc.value.status_code == 402
    assert exc.value.body["code"] == "insufficient_quota"
    event = UsageEvent.objects.get()
    assert (event.status, event.wallet_id) == ("rejected", gw.wallet.pk)
    organization = Wallet.objects.get(organization=gw.org, scope="organization")
    assert (organization.balance, organization.held) == (Decimal("10.00"), 0)
    assert not Hold.objects.exists()
