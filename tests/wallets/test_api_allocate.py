"""POST /v1/wallets/allocate: the seed's curl, bad bodies, idempotency, tenancy."""

import json
from decimal import Decimal

import pytest

from chargeback.models import AuditLog
from tests.wallets.conftest import ledger_count
from wallets.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db

URL = "/v1/wallets/allocate"
SEED_BODY = (
    '{"team_id":"team_engineering","amount":20000.00,"currency":"USD",'
    '"description":"Engineering May 2026"}'
)


def post(api, body, **headers):
    if not isinstance(body, str):
        body = json.dumps(body)
    return api.post(URL, data=body, content_type="application/json", **headers)


def test_the_seeds_curl_body_works_verbatim(api, engineering, outsider_team):
    response = post(api, SEED_BODY)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["team_id"] == "team_engineering"
    assert body["kind"] == "allocation"
    assert body["amount"] == "20000.00"
    assert body["currency"] == "USD"
    assert body["description"] == "Engineering May 2026"
    assert body["balance"] == "20000.00"
    assert body["available"] == "20000.00"
    entry = LedgerEntry.objects.get(pk=body["id"])
    assert entry.amount == Decimal("20000")
    assert entry.wallet.department == engineering
    assert entry.actor.startswith("token:")
    assert (
        AuditLog.objects.filter(
            action="wallet.allocation", organization=engineering.organization
        ).count()
        == 1
    )


def test_a_second_allocation_adds_to_the_balance(api, engineering):
    post(api, SEED_BODY)
    response = post(api, {"team_id": "team_engineering", "amount": "0.12345678"})

    assert response.status_code == 201
    assert response.json()["amount"] == "0.12345678"
    assert response.json()["balance"] == "20000.12345678"
    wallet = Wallet.objects.get(department=engineering)
    assert wallet.balance == Decimal("20000.12345678")


def test_amount_as_a_string_is_exact(api, engineering):
    response = post(api, {"team_id": "team_engineering", "amount": "0.1", "currency": "USD"})
    assert response.status_code == 201
    assert LedgerEntry.objects.get(wallet__scope="team").amount == Decimal("0.1")


def test_a_json_number_never_goes_through_float(api, engineering):
    # 12345678901.23456789 as a float would be 12345678901.234568.
    response = post(api, '{"team_id":"team_engineering","amount":12345678901.23456789}')
    assert response.status_code == 201, response.content
    assert LedgerEntry.objects.get(wallet__scope="team").amount == Decimal("12345678901.23456789")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"team_id": "team_engineering", "amount": -5, "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": 0, "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": "0.00", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": "lots", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": True, "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": None, "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": [1], "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": "1e400", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": "NaN", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": "0.000000001", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "currency": "USD"}, "amount"),
        ({"team_id": "team_engineering", "amount": 10, "currency": "XYZ"}, "currency"),
        ({"team_id": "team_engineering", "amount": 10, "currency": "usd"}, "currency"),
        ({"team_id": "team_nobody", "amount": 10, "currency": "USD"}, "team_id"),
        ({"team_id": "team_outsider", "amount": 10, "currency": "USD"}, "team_id"),
        ({"amount": 10, "currency": "USD"}, "team_id"),
        ({"team_id": "team_engineering", "amount": 10, "balance": 99999}, "balance"),
        ({"team_id": "team_engineering", "amount": 10, "held": 0}, "held"),
    ],
)
def test_a_bad_body_is_a_400_that_changes_nothing(api, engineering, outsider_team, body, field):
    before = ledger_count()
    wallets_before = Wallet.objects.count()

    response = post(api, body)

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ledger_count() == before
    assert Wallet.objects.count() == wallets_before


@pytest.mark.parametrize(
    "raw",
    [
        '{"team_id":"team_engineering","amount":10',
        "not json",
        '{"team_id":"team_engineering","amount":NaN}',
        '{"team_id":"team_engineering","amount":Infinity}',
        '["team_engineering", 10]',
        "",
    ],
)
def test_malformed_json_is_a_400_that_changes_nothing(api, engineering, raw):
    response = post(api, raw)
    assert response.status_code == 400, response.content
    assert ledger_count() == 0
    assert not Wallet.objects.exists()


def test_a_currency_other_than_the_wallets_is_refused_and_changes_nothing(api, engineering):
    post(api, SEED_BODY)
    response = post(api, {"team_id": "team_engineering", "amount": 10, "currency": "EUR"})
    assert response.status_code == 400
    assert "USD" in response.json()["detail"]
    assert ledger_count() == 3  # the allocation: auto_fund credit, then the transfer


def test_a_first_allocation_in_a_foreign_currency_leaves_no_empty_wallet(api, engineering):
    response = post(api, {"team_id": "team_engineering", "amount": 10, "currency": "EUR"})
    assert response.status_code == 400
    assert not Wallet.objects.exists()


def test_replaying_an_idempotency_key_returns_the_first_result(api, engineering):
    first = post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="alloc-eng-2026-05")
    again = post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="alloc-eng-2026-05")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert ledger_count() == 3
    assert Wallet.objects.get(department=engineering).balance == Decimal("20000")


def test_the_same_amount_written_differently_is_the_same_request(api, engineering):
    post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="k1")
    again = post(api, SEED_BODY.replace("20000.00", '"20000"'), HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 201
    assert ledger_count() == 3


def test_the_same_key_with_a_different_body_is_a_409(api, engineering, support):
    post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="k1")
    other = SEED_BODY.replace("20000.00", "30000.00")
    response = post(api, other, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"

    response = post(
        api,
        {"team_id": "team_support", "amount": 20000, "description": "x"},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 409
    assert ledger_count() == 3
    assert not Wallet.objects.filter(department=support).exists()


def test_an_idempotency_key_of_another_organization_does_not_collide(
    api, outsider_api, engineering, outsider_team
):
    mine = post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="shared-key")
    theirs = post(outsider_api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_an_overlong_idempotency_key_is_refused(api, engineering):
    response = post(api, SEED_BODY, HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert response.status_code == 400
    assert ledger_count() == 0


def test_a_user_wallet_can_be_funded(api, engineering):
    response = post(
        api, {"team_id": "team_engineering", "amount": "25", "user_id": "alice@example.com"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scope"] == "user"
    assert body["user_id"] == "alice@example.com"
    wallet = Wallet.objects.get(scope="user")
    assert wallet.user_ref == "alice@example.com"
    assert wallet.department == engineering
    assert wallet.balance == Decimal("25")


def test_it_requires_a_token(client, engineering):
    response = post(client, SEED_BODY)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert ledger_count() == 0


def test_it_rejects_a_wrong_token(client, engineering):
    client.credentials(HTTP_AUTHORIZATION="Bearer kt_admin_wrong")
    response = post(client, SEED_BODY)
    assert response.status_code == 401
    assert ledger_count() == 0


def test_an_outsider_cannot_fund_our_team(outsider_api, engineering, outsider_org):
    # team_engineering exists only in `org`: to the outsider it is just an unknown team.
    response = post(outsider_api, SEED_BODY)
    assert response.status_code == 400
    assert response.json() == {"team_id": ["unknown team 'team_engineering'"]}
    assert ledger_count() == 0
    assert not Wallet.objects.exists()
