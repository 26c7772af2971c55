from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from budgets.models import Budget
from chargeback.models import AuditLog
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

SEED_BODY = {
    "team_id": "team_support",
    "amount": 12000.00,
    "currency": "USD",
    "period": "month",
    "thresholds": [50, 80, 100],
    "owner_emails": ["lead@example.com"],
}


@pytest.fixture
def client(api):
    return api


@pytest.fixture
def outsider_client(outsider_api):
    return outsider_api


@pytest.fixture
def outsider_support(outsider_org):
    return DepartmentFactory(
        organization=outsider_org, team_id="team_support", name="Their Support"
    )


def test_it_creates_the_seed_budget(client, support):
    r = client.post("/v1/budgets", SEED_BODY, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["team_id"] == "team_support"
    assert body["amount"] == "12000.00"
    assert body["thresholds"] == [50, 80, 100]
    assert body["owner_emails"] == ["lead@example.com"]
    assert body["current_period"]["spend"] == "0.00"
    budget = Budget.objects.get(pk=body["id"])
    assert budget.amount == Decimal("12000.00")
    assert AuditLog.objects.filter(action="budget.create", object_id=str(budget.pk)).count() == 1


def test_it_fills_in_the_defaults(client, support):
    r = client.post("/v1/budgets", {"team_id": "team_support", "amount": "500"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["period"] == "month"
    assert body["currency"] == "USD"
    assert body["thresholds"] == [50, 80, 100]
    assert body["owner_emails"] == ["lead@support.example"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"thresholds": [80, 50, 100]}, "thresholds"),
        ({"thresholds": [50, 50]}, "thresholds"),
        ({"thresholds": [50, 1001]}, "thresholds"),
        ({"thresholds": [0, 50]}, "thresholds"),
        ({"thresholds": []}, "thresholds"),
        ({"owner_emails": ["not-an-email"]}, "owner_emails"),
        ({"period": "fortnight"}, "period"),
        ({"threshold": [50]}, "threshold"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(client, support, change, field):
    r = client.post("/v1/budgets", {**SEED_BODY, **change}, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()
    assert not Budget.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="budget.").exists()


def test_it_refuses_a_currency_other_than_the_organizations(client, support):
    r = client.post("/v1/budgets", {**SEED_BODY, "currency": "EUR"}, format="json")
    assert r.status_code == 400
    assert r.json() == {"currency": ["must be USD, the organization's currency"]}
    assert not Budget.objects.exists()


def test_an_unknown_department_is_a_404(client, support):
    r = client.post("/v1/budgets", {**SEED_BODY, "team_id": "team_nobody"}, format="json")
    assert r.status_code == 404
    assert not Budget.objects.exists()


def test_another_organizations_department_is_a_404(client, outsider_support, org):
    # `team_support` exists only in the outsider organization.
    r = client.post("/v1/budgets", SEED_BODY, format="json")
    assert r.status_code == 404
    assert r.json()["detail"] == "no department team_support"
    assert not Budget.objects.exists()


def test_a_second_budget_for_the_same_department_and_period_is_a_conflict(client, support):
    assert client.post("/v1/budgets", SEED_BODY, format="json").status_code == 201
    r = client.post("/v1/budgets", SEED_BODY, format="json")
    assert r.status_code == 409
    assert Budget.objects.count() == 1


def test_it_lists_gets_updates_and_deletes(client, support):
    budget_id = client.post("/v1/budgets", SEED_BODY, format="json").json()["id"]

    listed = client.get("/v1/budgets").json()
    assert [b["id"] for b in listed["results"]] == [budget_id]
    assert client.get("/v1/budgets?team_id=team_legal").json()["results"] == []
    assert client.get(f"/v1/budgets/{budget_id}").json()["amount"] == "12000.00"

    r = client.patch(
        f"/v1/budgets/{budget_id}", {"amount": "15000", "thresholds": [90]}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["amount"] == "15000.00"
    assert r.json()["thresholds"] == [90]
    update = AuditLog.objects.get(action="budget.update")
    assert update.before["amount"] == "12000.00000000"
    assert update.after["amount"] == "15000.00000000"

    assert client.delete(f"/v1/budgets/{budget_id}").status_code == 204
    assert client.get(f"/v1/budgets/{budget_id}").status_code == 404
    assert AuditLog.objects.filter(action="budget.delete").count() == 1


@pytest.mark.parametrize(
    "change",
    [{"amount": -1}, {"thresholds": [100, 50]}, {"team_id": "team_legal"}, {"colour": "red"}],
)
def test_a_bad_update_changes_nothing(client, support, change):
    budget_id = client.post("/v1/budgets", SEED_BODY, format="json").json()["id"]
    r = client.patch(f"/v1/budgets/{budget_id}", change, format="json")
    assert r.status_code == 400, r.content
    budget = Budget.objects.get(pk=budget_id)
    assert budget.amount == Decimal("12000")
    assert budget.thresholds == [50, 80, 100]
    assert budget.department == support
    assert not AuditLog.objects.filter(action="budget.update").exists()


def test_an_outsider_never_sees_or_changes_our_budgets(client, outsider_client, support):
    budget_id = client.post("/v1/budgets", SEED_BODY, format="json").json()["id"]

    assert outsider_client.get("/v1/budgets").json()["results"] == []
    assert outsider_client.get(f"/v1/budgets/{budget_id}").status_code == 404
    r = outsider_client.patch(f"/v1/budgets/{budget_id}", {"amount": 1}, format="json")
    assert r.status_code == 404
    assert outsider_client.delete(f"/v1/budgets/{budget_id}").status_code == 404
    assert Budget.objects.get(pk=budget_id).amount == Decimal("12000")


def test_it_needs_an_admin_token(support):
    assert APIClient().get("/v1/budgets").status_code in (401, 403)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer kt_admin_wrong")
    assert api.post("/v1/budgets", SEED_BODY, format="json").status_code == 401


def test_an_update_that_changes_nothing_writes_no_audit_row(client, support):
    budget_id = client.post("/v1/budgets", SEED_BODY, format="json").json()["id"]
    r = client.patch(f"/v1/budgets/{budget_id}", {"amount": "12000.00"}, format="json")
    assert r.status_code == 200
    assert not AuditLog.objects.filter(action="budget.update").exists()


def test_the_same_amount_written_differently_is_no_change(client, support):
    budget_id = client.post("/v1/budgets", SEED_BODY, format="json").json()["id"]
    for same in ("12000", 12000, "12000.000"):
        r = client.patch(f"/v1/budgets/{budget_id}", {"amount": same}, format="json")
        assert r.status_code == 200
    assert not AuditLog.objects.filter(action="budget.update").exists()


def test_the_list_shows_each_budgets_period_as_its_own_page_does_in_a_bounded_number_of_queries(
    client, support, support_wallet, spend
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from budgets import services as budget_services
    from wallets import services as wallet_services

    def make(team_id, period, amount):
        department = support
        if team_id != "team_support":
            department = DepartmentFactory(organization=support.organization, team_id=team_id)
            wallet_services.wallet_allocate(
                department=department, amount=Decimal("100"), currency="USD"
            )
        budget_services.budget_create(
            organization=support.organization,
            team_id=team_id,
            amount=Decimal(amount),
            period=period,
            owner_emails=["lead@example.com"],
        )
        return department

    make("team_support", "month", "10")
    spend(department=support, amount="6.00")  # past 50 %: an alert
    with CaptureQueriesContext(connection) as few:
        assert client.get("/v1/budgets").status_code == 200
    for n, period in enumerate(["month", "quarter", "month", "quarter"]):
        spend(department=make(f"team_{n}", period, "40"), amount=f"{n + 1}.25")
    with CaptureQueriesContext(connection) as many:
        listed = client.get("/v1/budgets").json()["results"]

    assert len(listed) == 5
    assert len(many) <= len(few) + 2  # one more grouped read per kind of period
    for row in listed:
        assert row == client.get(f"/v1/budgets/{row['id']}").json()
    support_row = next(r for r in listed if r["team_id"] == "team_support")
    assert support_row["current_period"]["spend"] == "6.00"
    assert [a["threshold"] for a in support_row["current_period"]["alerts"]] == [50]
