"""Dashboard pages: login, one organization only, figures equal to gateway.selectors."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from chargeback.models import Membership
from chargeback.money import to_cents
from gateway.models import UsageEvent
from gateway.selectors import spend_by, spend_total

pytestmark = pytest.mark.django_db
MAY = {"date_from": date(2026, 5, 1), "date_to": date(2026, 5, 31)}


def test_it_redirects_anonymous_visitors_to_the_login(client, month):
    for url in ("/dashboard/", "/dashboard/departments/team_support/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_the_site_root_leads_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_it_shows_a_member_only_their_organization(client, month, member, secret_dept):
    client.force_login(member)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert b"Support" in page.content
    assert b"Secret Lab" not in page.content
    assert [r["team_id"] for r in page.context["rows"]] == ["team_engineering", "team_support"]
    assert client.get("/dashboard/departments/team_secret/").status_code == 404
    assert client.get("/dashboard/?org=outsider").status_code == 404


def test_the_outsider_cannot_see_ours(client, month, outsider_member):
    client.force_login(outsider_member)
    assert client.get("/dashboard/departments/team_support/").status_code == 404
    page = client.get("/dashboard/?month=2026-05")
    assert b"Support" not in page.content
    assert page.context["total"] == to_cents(Decimal("15.00075"))  # 5M tokens at $3/M


def test_a_user_without_membership_gets_not_found(client, month):
    client.force_login(User.objects.create_user("nobody"))
    assert client.get("/dashboard/").status_code == 404


def test_a_budget_owner_sees_only_their_departments(client, month, org, make_user):
    owner = make_user("lead", org, Membership.Role.BUDGET_OWNER, [month["support"]])
    client.force_login(owner)
    page = client.get("/dashboard/")
    assert [r["team_id"] for r in page.context["rows"]] == ["team_support"]
    assert client.get("/dashboard/departments/team_support/").status_code == 200
    assert client.get("/dashboard/departments/team_engineering/").status_code == 404


def test_a_superuser_picks_the_organization(client, month):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get("/dashboard/?org=outsider&month=2026-05")
    assert [r["team_id"] for r in page.context["rows"]] == ["team_secret"]
    assert client.get("/dashboard/?org=nope").status_code == 404


def test_overview_figures_equal_the_selectors_to_the_cent(client, month, member, org):
    client.force_login(member)
    page = client.get("/dashboard/?month=2026-05")
    total = to_cents(spend_total(organization=org, **MAY))
    assert page.context["total"] == total
    assert f"${total:,.2f}".encode() in page.content
    expected = {
        r["key"]: to_cents(r["cost"])
        for r in spend_by(organization=org, field="department__team_id", **MAY)
    }
    shown = {r["team_id"]: r["spend"] for r in page.context["rows"]}
    assert shown == expected
    support = next(r for r in page.context["rows"] if r["team_id"] == "team_support")
    assert support["budget"] == Decimal("100.00")
    assert (
        support["used"] == spend_total(organization=org, department=month["support"], **MAY) / 100
    )


def test_overview_compares_with_the_month_before(client, month, member):
    client.force_login(member)
    rows = {r["team_id"]: r for r in client.get("/dashboard/?month=2026-05").context["rows"]}
    assert rows["team_engineering"]["previous"] == Decimal("0.30")  # 100k tokens at $3/M
    assert rows["team_support"]["previous"] == Decimal("0.00")
    assert rows["team_support"]["change"] is None


def test_premium_share_is_premium_spend_over_spend(client, month, member, org):
    client.force_login(member)
    rows = {r["team_id"]: r for r in client.get("/dashboard/?month=2026-05").context["rows"]}
    eng = month["engineering"]
    premium = spend_total(organization=org, department=eng, **MAY)
    premium_only = sum(
        e.cost for e in eng.usage_events.filter(price__premium=True, created_at__month=5)
    )
    assert rows["team_engineering"]["premium_share"] == premium_only / premium
    assert rows["team_support"]["premium_share"] == 0


def test_the_month_defaults_to_the_latest_with_events(client, month, member):
    client.force_login(member)
    page = client.get("/dashboard/")
    assert page.context["month"] == date(2026, 5, 1)
    assert b"May 2026" in page.content


def test_a_malformed_month_is_a_bad_request(client, month, member):
    client.force_login(member)
    assert client.get("/dashboard/?month=2026-13").status_code == 400
    assert client.get("/dashboard/?month=0000-01").status_code == 400
    assert client.get("/dashboard/departments/team_support/?month=may").status_code == 400
    assert client.get("/dashboard/departments/team_support/?as_of=soon").status_code == 400


def test_department_figures_equal_the_selectors_to_the_cent(client, month, member, org):
    client.force_login(member)
    eng = month["engineering"]
    page = client.get("/dashboard/departments/team_engineering/?month=2026-05")
    assert page.status_code == 200
    assert page.context["spend"] == to_cents(spend_total(organization=org, department=eng, **MAY))
    models = next(t for t in page.context["tables"] if t.name == "models")
    expected = spend_by(organization=org, department=eng, field="model_requested", **MAY)
    assert [(r["key"], r["cost"]) for r in models.rows] == [
        (r["key"], to_cents(r["cost"])) for r in expected
    ]
    users = next(t for t in page.context["tables"] if t.name == "users")
    assert [r["key"] for r in users.rows] == ["bo", "cy", "ana"]  # ana: a failed call, $0
    assert b"<svg" in page.content


def test_an_organization_without_usage_still_renders(client, org, engineering, member):
    client.force_login(member)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert page.context["total"] == Decimal("0.00")
    dept = client.get("/dashboard/departments/team_engineering/")
    assert dept.status_code == 200
    assert dept.context["spend"] == Decimal("0.00")
    assert dept.context["forecast"] == Decimal("0.00")


def test_a_superusers_links_keep_the_chosen_organization(client, month):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get("/dashboard/?org=outsider&month=2026-05")
    assert b"departments/team_secret/?month=2026-05&amp;org=outsider" in page.content
    assert client.get("/dashboard/departments/team_secret/?org=outsider").status_code == 200


def test_user_names_from_request_headers_are_escaped_in_charts(client, month, member, events):
    events.add(month["support"], day=9, user='<script>alert("x")</script>', prompt=9_000_000)
    client.force_login(member)
    page = client.get("/dashboard/departments/team_support/?month=2026-05")
    assert b"<script>alert" not in page.content
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.content


def test_the_department_page_shows_what_each_routing_policy_saved(client, month, member, org):
    eng = month["engineering"]
    changed = UsageEvent.objects.filter(department=eng, price__premium=False, status="ok")
    changed.filter(created_at__day__lte=2).update(
        policy="routine:max_price", policy_saved=Decimal("1.234567891")
    )
    changed.filter(created_at__day=3).update(policy="drafts:alias")
    # The outsider's savings and another department's are not engineering's.
    UsageEvent.objects.exclude(department=eng).update(
        policy="routine:max_price", policy_saved=Decimal("50")
    )
    client.force_login(member)

    page = client.get("/dashboard/departments/team_engineering/?month=2026-05")

    table = next(t for t in page.context["tables"] if t.name == "policies")
    assert [(r["policy"], r["rule"], r["requests"], r["saved"]) for r in table.rows] == [
        ("routine", "over the price cap: downgraded", 2, Decimal("2.47")),
        ("drafts", "alias to another model", 1, Decimal("0.00")),
    ]
    assert page.context["policy_saved"] == Decimal("2.47")  # 2.469135782, rounded once
    assert "saved <strong>$2.47</strong>" in page.content.decode()
    download = client.get(
        "/dashboard/departments/team_engineering/?month=2026-05&format=csv&table=policies"
    )
    lines = download.content.decode().splitlines()
    assert lines[0] == "Policy,Rule,Requests changed,Spend,Saved"
    assert lines[1].startswith("routine,over the price cap: downgraded,2,")
