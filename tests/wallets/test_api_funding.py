"""POST /v1/wallets/credit and /v1/wallets/reclaim."""

import json
from decimal import Decimal

import pytest

from tests.wallets.conftest import ledger_count
from wallets import services
from wallets.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db


def post(api, url, body, **headers):
    return api.post(url, data=json.dumps(body), content_type="application/json", **headers)


def _org_wallet(org):
    return Wallet.objects.get(organization=org, scope="organization")


def test_credit_funds_the_organization_wallet(api, org, outsider_team):
    response = post(api, "/v1/wallets/credit", {"amount": 5000.00, "currency": "USD"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scope"] == "organization"
    assert body["team_id"] is None
    assert body["kind"] == "credit"
    assert body["balance"] == "5000.00"
    assert _org_wallet(org).balance == Decimal("5000")


def test_credit_is_idempotent(api, org):
    first = post(api, "/v1/wallets/credit", {"amount": 10}, HTTP_IDEMPOTENCY_KEY="c1")
    again = post(api, "/v1/wallets/credit", {"amount": 10}, HTTP_IDEMPOTENCY_KEY="c1")
    conflict = post(api, "/v1/wallets/credit", {"amount": 11}, HTTP_IDEMPOTENCY_KEY="c1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert conflict.status_code == 409
    assert _org_wallet(org).balance == Decimal("10")


@pytest.mark.parametrize(
    "body",
    [
        {"amount": -1},
        {"amount": 0},
        {"amount": "ten"},
        {"amount": 10, "currency": "ZZZ"},
        {"amount": 10, "team_id": "team_engineering"},
        {"amount": 10, "balance": 10},
        {},
    ],
)
def test_a_bad_credit_is_a_400_that_changes_nothing(api, org, engineering, body):
    response = post(api, "/v1/wallets/credit", body)
    assert response.status_code == 400, response.content
    assert ledger_count() == 0
    assert not Wallet.objects.exists()


def test_reclaim_moves_available_funds_back_to_the_organization(api, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    wallet = services.wallet_for_team(department=engineering)
    services.hold_place(wallet=wallet, amount=Decimal("30"), request_id="req_r1")

    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering", "amount": "20"})

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "-20.00"
    assert response.json()["balance"] == "80.00"
    assert response.json()["available"] == "50.00"
    assert _org_wallet(org).balance == Decimal("20")


def test_reclaim_without_an_amount_takes_everything_available_but_not_the_holds(
    api, org, engineering
):
    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    wallet = services.wallet_for_team(department=engineering)
    services.hold_place(wallet=wallet, amount=Decimal("30"), request_id="req_r2")

    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering"})

    assert response.status_code == 201, response.content
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("30")
    assert wallet.available == Decimal("0")
    assert _org_wallet(org).balance == Decimal("70")


def test_reclaim_above_available_is_refused_and_changes_nothing(api, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("10"), currency="USD")

    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering", "amount": 10.01})

    assert response.status_code == 402
    assert response.json()["available"] == "10.00000000"
    assert ledger_count() == 3  # the allocation: auto_fund credit, then the transfer
    assert _org_wallet(org).balance == 0


def test_reclaim_from_an_empty_wallet_is_refused(api, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("10"), currency="USD")
    post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering"})

    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering"})

    assert response.status_code == 402
    assert "nothing is available" in response.json()["detail"]
    assert ledger_count() == 5  # allocation (credit + transfer), the first reclaim


def test_reclaim_from_a_team_without_a_wallet_is_a_404(api, engineering):
    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering"})
    assert response.status_code == 404


def test_reclaim_is_idempotent(api, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    body = {"team_id": "team_engineering", "amount": 40}
    first = post(api, "/v1/wallets/reclaim", body, HTTP_IDEMPOTENCY_KEY="r1")
    again = post(api, "/v1/wallets/reclaim", body, HTTP_IDEMPOTENCY_KEY="r1")

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert LedgerEntry.objects.filter(kind="reclaim").count() == 2  # team -40, org +40
    assert _org_wallet(org).balance == Decimal("40")


def test_an_outsider_cannot_reclaim_our_funds(
    outsider_api, org, outsider_org, engineering, support, outsider_team
):
    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    services.wallet_allocate(department=support, amount=Decimal("100"), currency="USD")
    before = ledger_count()

    # team_support is only ours: unknown to the outsider.
    response = post(outsider_api, "/v1/wallets/reclaim", {"team_id": "team_support"})
    assert response.status_code == 400
    assert ledger_count() == before

    # team_engineering exists in both: the outsider reaches only its own.
    response = post(outsider_api, "/v1/wallets/reclaim", {"team_id": "team_engineering"})
    assert response.status_code == 201
    assert response.json()["amount"] == "-500.00"
    assert Wallet.objects.get(department=engineering).balance == Decimal("100")
    assert _org_wallet(org).balance == 0  # ours moved nothing back
    assert _org_wallet(outsider_org).balance == Decimal("500")


@pytest.mark.parametrize("url", ["/v1/wallets/credit", "/v1/wallets/reclaim"])
def test_funding_endpoints_require_a_valid_token(client, engineering, url):
    assert post(client, url, {"amount": 1, "team_id": "team_engineering"}).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert post(client, url, {"amount": 1, "team_id": "team_engineering"}).status_code == 401
    assert ledger_count() == 0
