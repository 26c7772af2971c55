"""Allocation moves money (wallets/services/transfers.py): organization -> team, team -> end
user, one entry on each side with a shared transfer id; reclaim the reverse. An allocation the
source cannot cover: the organization's policy, `auto_fund` (a labelled credit first) or
`strict` (409 naming what is available)."""

import json
from decimal import Decimal

import pytest

from chargeback.config import config_apply
from tests.config.conftest import SEED_FILE
from wallets import services
from wallets.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db

SEED_BODY = (
    '{"team_id":"team_engineering","amount":20000.00,"currency":"USD",'
    '"description":"Engineering May 2026"}'
)


def post(api, url, body):
    body = body if isinstance(body, str) else json.dumps(body)
    return api.post(url, data=body, content_type="application/json")


def _org_wallet(org):
    return Wallet.objects.get(organization=org, scope="organization")


def test_on_a_fresh_install_the_seeds_allocation_is_covered_by_a_labelled_credit(
    api, org, engineering
):
    response = post(api, "/v1/wallets/allocate", SEED_BODY)

    assert response.status_code == 201
    team_entry = LedgerEntry.objects.get(pk=response.json()["id"])
    credit, out, into = LedgerEntry.objects.filter(organization=org).order_by("id")
    assert (credit.kind, credit.amount, credit.wallet.scope) == (
        "credit",
        Decimal("20000"),
        "organization",
    )
    assert credit.description == "auto_fund: covers the allocation to team_engineering"
    assert (out.kind, out.amount, out.wallet.scope) == (
        "allocation",
        Decimal("-20000"),
        "organization",
    )
    assert into == team_entry
    assert out.transfer_id == into.transfer_id
    assert into.transfer_id.startswith("trf_")
    assert (into.reference, out.reference) == ("from:organization", "to:team_engineering")
    assert _org_wallet(org).balance == 0


def test_a_funded_organization_pays_for_the_allocation_without_a_credit(api, org, engineering):
    services.wallet_credit(organization=org, amount=Decimal("100"), currency="USD")

    post(api, "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "30"})

    assert _org_wallet(org).balance == Decimal("70")
    assert services.wallet_for_team(department=engineering).balance == Decimal("30")
    assert LedgerEntry.objects.filter(kind="credit").count() == 1  # the one above only


def test_a_strict_organization_refuses_what_its_wallet_cannot_cover_and_changes_nothing(
    api, org, engineering
):
    org.allocation_policy = "strict"
    org.save()
    services.wallet_credit(organization=org, amount=Decimal("10"), currency="USD")
    before = LedgerEntry.objects.count()

    response = post(api, "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "12.5"})

    assert response.status_code == 409
    body = response.json()
    assert body["available"] == "10.00000000"
    assert body["required"] == "12.50000000"
    assert "organization wallet has 10.00 USD available" in body["detail"]
    assert LedgerEntry.objects.count() == before
    assert _org_wallet(org).balance == Decimal("10")
    assert (
        post(
            api, "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "10"}
        ).status_code
        == 201
    )


def test_an_end_users_allocation_comes_from_the_team_and_a_short_team_from_the_organization(
    api, org, engineering
):
    services.wallet_allocate(department=engineering, amount=Decimal("5"), currency="USD")

    response = post(
        api,
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "amount": "8", "user_id": "bob"},
    )

    assert response.status_code == 201
    team = services.wallet_for_team(department=engineering)
    user = Wallet.objects.get(scope="user", user_ref="bob")
    assert (user.balance, team.balance, _org_wallet(org).balance) == (Decimal("8"), 0, 0)
    into = LedgerEntry.objects.get(pk=response.json()["id"])
    out = LedgerEntry.objects.get(transfer_id=into.transfer_id, wallet=team)
    assert (out.amount, into.reference) == (Decimal("-8"), "from:team_engineering")
    # The team's 3 missing came from the organization (itself credited), each labelled.
    topup = LedgerEntry.objects.filter(description__startswith="auto_fund", wallet=team).get()
    assert (topup.kind, topup.amount) == ("allocation", Decimal("3"))


def test_reclaim_is_a_transfer_back_with_a_shared_id(api, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("5"), currency="USD")
    response = post(api, "/v1/wallets/reclaim", {"team_id": "team_engineering", "amount": "2"})

    back = LedgerEntry.objects.get(pk=response.json()["id"])
    into = LedgerEntry.objects.get(transfer_id=back.transfer_id, wallet__scope="organization")
    assert (back.amount, into.amount) == (Decimal("-2"), Decimal("2"))
    assert _org_wallet(org).balance == Decimal("2")


def test_another_organizations_policy_and_wallets_are_never_involved(
    api, org, outsider_org, engineering, outsider_team
):
    outsider_org.allocation_policy = "strict"
    outsider_org.save()
    theirs = _org_wallet(outsider_org)
    entries = theirs.entries.count()

    assert (
        post(
            api, "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "9"}
        ).status_code
        == 201
    )

    theirs.refresh_from_db()
    assert theirs.entries.count() == entries
    assert {e.organization_id for e in LedgerEntry.objects.filter(wallet__organization=org)} == {
        org.pk
    }


def test_the_config_file_sets_the_allocation_policy(org):
    seed_text = SEED_FILE.read_text()
    strict = seed_text.replace(
        "  wallet_enforcement: true\n", "  wallet_enforcement: true\n  allocation_policy: strict\n"
    )
    assert strict != seed_text
    report = config_apply(organization=org, text=strict, actor="user:ana", via="config")
    org.refresh_from_db()
    assert org.allocation_policy == "strict"
    assert "changed cost_tracking acme (allocation_policy)" in report.lines()
    config_apply(organization=org, text=seed_text, actor="user:ana", via="config")
    org.refresh_from_db()
    assert org.allocation_policy == "auto_fund"  # left out: the default
