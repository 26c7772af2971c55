"""GET /v1/wallets, /v1/wallets/<team_id>, /v1/wallets/<team_id>/ledger."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import DepartmentFactory
from wallets import services

pytestmark = pytest.mark.django_db


def fund(department, amount, **kwargs):
    services.wallet_allocate(
        department=department, amount=Decimal(amount), currency="USD", **kwargs
    )
    return services.wallet_for_team(department=department)


def test_detail_shows_balance_held_and_available(api, engineering, outsider_team):
    wallet = fund(engineering, "20000.00")
    hold = services.hold_place(wallet=wallet, amount=Decimal("12.5"), request_id="req_d1")
    services.hold_capture(hold=hold, amount=Decimal("0.000123"))
    services.hold_place(wallet=wallet, amount=Decimal("100"), request_id="req_d2")

    response = api.get("/v1/wallets/team_engineering")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["team_id"] == "team_engineering"
    assert body["scope"] == "team"
    assert body["currency"] == "USD"
    assert body["balance"] == "19999.999877"
    assert body["held"] == body["reserved"] == "100.00"
    assert body["available"] == "19899.999877"
    assert body["total_allocated"] == "20000.00"
    assert body["total_spent"] == "0.000123"
    assert body["status"] == "healthy"


def test_detail_of_another_organizations_team_is_a_404(
    api, outsider_api, engineering, outsider_team
):
    fund(engineering, "10")
    assert api.get("/v1/wallets/team_outsider").status_code == 404
    # Both have a team_engineering: each token sees its own.
    assert api.get("/v1/wallets/team_engineering").json()["balance"] == "10.00"
    assert outsider_api.get("/v1/wallets/team_engineering").json()["balance"] == "500.00"


def test_detail_of_an_unknown_team_or_a_team_without_wallet_is_a_404(api, engineering):
    assert api.get("/v1/wallets/team_nobody").status_code == 404
    response = api.get("/v1/wallets/team_engineering")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_shows_every_scope_with_totals_and_status(
    api, org, engineering, support, outsider_team
):
    fund(engineering, "1000")
    eng = services.wallet_for_team(department=engineering)
    hold = services.hold_place(wallet=eng, amount=Decimal("950"), request_id="req_l1")
    services.hold_capture(hold=hold, amount=Decimal("920"))  # 80 left of 1000: below 10 %
    fund(support, "50")
    services.wallet_reclaim(department=support)  # everything back to the organization
    services.wallet_credit(organization=org, amount=Decimal("5"), currency="USD")
    fund(engineering, "1", user_ref="bob")

    response = api.get("/v1/wallets")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    rows = {(r["scope"], r["team_id"], r["user_id"]): r for r in body["results"]}
    org_row = rows[("organization", None, "")]
    assert org_row["balance"] == "55.00"
    # Credits in: the auto_fund credits that covered the two allocations, then 5; reclaims and
    # the allocations moved out are not counted.
    assert org_row["total_allocated"] == "1055.00"
    assert org_row["status"] == "healthy"
    eng_row = rows[("team", "team_engineering", "")]
    assert eng_row["balance"] == eng_row["available"] == "79.00"  # bob's 1.00 came from it
    assert eng_row["reserved"] == "0.00"
    assert eng_row["total_allocated"] == "1000.00"
    assert eng_row["total_spent"] == "920.00"
    assert eng_row["status"] == "low"
    sup_row = rows[("team", "team_support", "")]
    assert sup_row["balance"] == "0.00"
    assert sup_row["status"] == "depleted"
    user_row = rows[("user", "team_engineering", "bob")]
    assert user_row["balance"] == "1.00"
    assert user_row["name"] == "user:bob"


def test_list_filters_by_scope_and_team(api, engineering, support):
    fund(engineering, "1")
    fund(support, "2")
    fund(engineering, "3", user_ref="carol")

    teams = api.get("/v1/wallets", {"scope": "team"}).json()
    assert [r["team_id"] for r in teams["results"]] == ["team_engineering", "team_support"]
    eng = api.get("/v1/wallets", {"team_id": "team_engineering"}).json()
    assert {r["scope"] for r in eng["results"]} == {"team", "user"}
    assert api.get("/v1/wallets", {"scope": "planet"}).status_code == 400


def test_list_does_not_grow_queries_with_wallets(api, org):
    for n in range(3):
        fund(DepartmentFactory(organization=org), "10")
    api.get("/v1/wallets")  # the token's first use writes last_used_at
    with CaptureQueriesContext(connection) as few:
        api.get("/v1/wallets")
    for n in range(10):
        fund(DepartmentFactory(organization=org), "10")
    with CaptureQueriesContext(connection) as many:
        response = api.get("/v1/wallets")
    assert response.json()["count"] == 14  # and the organization's, which funded them
    assert len(many.captured_queries) == len(few.captured_queries)


def test_list_never_shows_another_organizations_wallets(
    api, outsider_api, engineering, outsider_team
):
    assert api.get("/v1/wallets").json()["count"] == 0
    assert outsider_api.get("/v1/wallets").json()["count"] == 3  # two teams, the organization


def test_ledger_is_paged_newest_first(api, engineering, outsider_team):
    wallet = fund(engineering, "100", description="first")
    for n in range(4):
        hold = services.hold_place(wallet=wallet, amount=Decimal("2"), request_id=f"req_p{n}")
        services.hold_capture(hold=hold, amount=Decimal("1.5"))

    page = api.get("/v1/wallets/team_engineering/ledger", {"limit": 2}).json()

    assert page["count"] == 5
    assert [e["kind"] for e in page["results"]] == ["capture", "capture"]
    assert page["results"][0]["reference"] == "req_p3"
    assert page["results"][0]["amount"] == "-1.50"
    assert page["results"][0]["balance_after"] == "94.00"
    assert page["next"] is not None
    last = api.get("/v1/wallets/team_engineering/ledger", {"limit": 2, "offset": 4}).json()
    assert [e["description"] for e in last["results"]] == ["first"]
    assert last["results"][0]["amount"] == "100.00"
    assert last["next"] is None


def test_ledger_of_another_organizations_team_is_a_404(api, engineering, outsider_team):
    assert api.get("/v1/wallets/team_outsider/ledger").status_code == 404


@pytest.mark.parametrize(
    "url", ["/v1/wallets", "/v1/wallets/team_engineering", "/v1/wallets/team_engineering/ledger"]
)
def test_reads_require_a_valid_token(client, engineering, url):
    fund(engineering, "1")
    assert client.get(url).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer kt_admin_wrong")
    assert client.get(url).status_code == 401


def test_the_openapi_schema_documents_the_wallet_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/v1/wallets",
        "/v1/wallets/allocate",
        "/v1/wallets/credit",
        "/v1/wallets/reclaim",
        "/v1/wallets/{team_id}",
        "/v1/wallets/{team_id}/ledger",
    ):
        assert path in paths, path
    allocate = paths["/v1/wallets/allocate"]["post"]
    body_ref = allocate["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) >= {"team_id", "amount", "currency", "description"}
    assert any(p["name"] == "Idempotency-Key" for p in allocate["parameters"])
    assert "AdminToken" in schema["components"]["securitySchemes"]
