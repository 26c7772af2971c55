"""Refunds: a refund names one charged call, goes back to the wallet it was charged to, and can
never add up to more than that call was charged; through the API, `kt` and (tests/admin) the
admin."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from chargeback.models import AuditLog
from tests.budgets.helpers import record_spend
from tests.factories import DepartmentFactory
from tests.wallets.test_cli import kt
from wallets import services
from wallets.models import LedgerEntry, Wallet

REFUND = "/v1/wallets/refund"


def refund(client, **body):
    return client.post(REFUND, body, format="json")


@pytest.fixture
def charged(org, engineering):
    """A call that cost 0.40 on engineering's wallet (funded with 10)."""
    services.wallet_allocate(department=engineering, amount=Decimal("10"), currency="USD")
    return record_spend(department=engineering, amount="0.40")


def balance(department) -> Decimal:
    return Wallet.objects.get(department=department).balance


@pytest.mark.django_db
def test_a_refund_gives_back_what_is_left_of_the_call_to_its_wallet(api, org, engineering, charged):
    partial = refund(api, request_id=charged.request_id, amount="0.15", reason="provider credit")
    assert partial.status_code == 201, partial.json()
    assert partial.json()["kind"] == "refund"
    assert partial.json()["reference"] == charged.request_id
    assert balance(engineering) == Decimal("9.75")

    rest = refund(api, request_id=charged.request_id, reason="the rest")
    assert rest.status_code == 201, rest.json()
    assert rest.json()["amount"] == "0.25"
    assert balance(engineering) == Decimal("10.00")

    nothing_left = refund(api, request_id=charged.request_id, reason="again")
    assert nothing_left.status_code == 409
    assert "already refunded in full" in nothing_left.json()["detail"]
    wallet = Wallet.objects.get(department=engineering)
    assert sum(e.amount for e in wallet.entries.all()) == wallet.balance
    assert list(AuditLog.objects.filter(action="wallet.refund").values_list("via", flat=True)) == [
        "api",
        "api",
    ]


@pytest.mark.django_db
def test_a_refund_above_what_is_left_is_refused_and_changes_nothing(api, engineering, charged):
    refund(api, request_id=charged.request_id, amount="0.30", reason="first")
    too_much = refund(api, request_id=charged.request_id, amount="0.11", reason="second")
    assert too_much.status_code == 409
    assert too_much.json()["detail"] == (
        f"{charged.request_id} was charged 0.40 USD; at most 0.10 USD can still be refunded"
    )
    assert balance(engineering) == Decimal("9.90")


@pytest.mark.django_db
def test_the_same_idempotency_key_refunds_once(api, engineering, charged):
    body = {"request_id": charged.request_id, "amount": "0.10", "reason": "credit"}
    first = api.post(REFUND, body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")
    again = api.post(REFUND, body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert LedgerEntry.objects.filter(kind="refund").count() == 1

    other_body = api.post(
        REFUND, {**body, "amount": "0.20"}, format="json", HTTP_IDEMPOTENCY_KEY="refund-1"
    )
    assert other_body.status_code == 409


@pytest.mark.django_db
def test_a_refund_must_name_a_charged_call_of_the_named_team(api, org, engineering, charged):
    unknown = refund(api, request_id="req_nobody", reason="x")
    assert unknown.status_code == 404
    DepartmentFactory(organization=org, team_id="team_support")
    wrong_team = refund(api, request_id=charged.request_id, team_id="team_support", reason="x")
    assert wrong_team.status_code == 400
    assert "was not charged to team_support" in wrong_team.json()["detail"]
    no_reason = refund(api, request_id=charged.request_id)
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()
    assert balance(engineering) == Decimal("9.60")


@pytest.mark.django_db
def test_another_organization_cannot_refund_or_see_a_call(outsider_api, engineering, charged):
    response = refund(outsider_api, request_id=charged.request_id, reason="steal")
    assert response.status_code == 404
    assert "0.40" not in response.content.decode()
    assert balance(engineering) == Decimal("9.60")


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_of_one_call_never_exceed_its_charge(org, engineering, charged):
    results = []
    start = threading.Barrier(8)

    def attempt():
        try:
            start.wait()
            services.wallet_refund(
                organization=org,
                request_id=charged.request_id,
                amount=Decimal("0.15"),
                reason="race",
            )
            results.append("ok")
        except Exception as exc:  # noqa: BLE001 - the refusals are what is counted
            results.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results.count("ok") == 2  # 0.30 of 0.40; a third 0.15 would exceed it
    assert results.count("Conflict") == 6
    assert balance(engineering) == Decimal("9.90")


@pytest.mark.django_db(transaction=True)
def test_kt_refunds_a_call_and_is_audited_as_the_cli(live_server, admin_token, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("10"), currency="USD")
    event = record_spend(department=engineering, amount="0.40")
    done = kt(
        "wallets", "refund", "--request-id", event.request_id, "--amount", "0.05",
        "--reason", "provider credit", url=live_server.url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "refund 0.05 USD -> team_engineering" in done.stdout
    assert balance(engineering) == Decimal("9.65")
    assert AuditLog.objects.get(action="wallet.refund").via == "cli"
