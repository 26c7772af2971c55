"""Forecast, repeated prompts and caching savings, CSV downloads."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from budgets.models import Budget
from chargeback.money import to_cents
from gateway.selectors import spend_total
from reports.dashboards.csv import neutralise
from reports.dashboards.selectors import forecast_month_end, repeats_by_department
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db
MAY = {"date_from": date(2026, 5, 1), "date_to": date(2026, 5, 31)}


@pytest.fixture
def twin_month(outsider_org, events):
    """The outsider's look-alike of `month`: its own team_engineering and team_support (same
    names), the same users and prompt fingerprints on the same days, more spend, another budget
    and a March of history. Not one figure of org's pages or files may move with it."""
    eng = DepartmentFactory(
        organization=outsider_org, team_id="team_engineering", name="Engineering"
    )
    support = DepartmentFactory(organization=outsider_org, team_id="team_support", name="Support")
    Budget.objects.create(organization=outsider_org, department=eng, amount=Decimal("7"))
    for day in (1, 2, 3, 4, 5):
        events.add(eng, day=day, price="big", prompt=900_000, completion=20_000, user="bo")
    for day, fingerprint in [(1, "A"), (2, "A"), (3, "A"), (4, "A"), (5, "C"), (6, "B")]:
        events.add(support, day=day, prompt=700_000, completion=999, fingerprint=fingerprint)
    events.add(eng, day=20, month=3, price="big", prompt=100_000)
    return {"engineering": eng, "support": support}


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_forecast_is_the_linear_run_rate():
    assert forecast_month_end(
        spend_to_date=Decimal("1000"), elapsed_days=10, days_in_month=31
    ) == Decimal("3100.00")
    assert forecast_month_end(
        spend_to_date=Decimal("100.005"), elapsed_days=3, days_in_month=30
    ) == Decimal("1000.05")
    assert forecast_month_end(spend_to_date=Decimal("5"), elapsed_days=0, days_in_month=31) == 0


def test_the_department_page_projects_the_month_end_as_of_a_day(
    client, month, member, org, twin_month
):
    client.force_login(member)
    eng = month["engineering"]
    page = client.get("/dashboard/departments/team_engineering/?month=2026-05&as_of=2026-05-04")
    to_date = spend_total(
        organization=org, department=eng, date_from=date(2026, 5, 1), date_to=date(2026, 5, 4)
    )
    assert page.context["spend_to_date"] == to_cents(to_date)
    assert page.context["forecast"] == to_cents(to_date * 31 / 4)
    assert page.context["forecast_over"] is (to_date * 31 / 4 > 50)
    assert page.context["budget_to_date"] == to_cents(Decimal(50) * 4 / 31)
    assert b"linear forecast" in page.content


def test_a_finished_month_forecasts_its_actual_spend(client, month, member, org):
    client.force_login(member)
    page = client.get("/dashboard/departments/team_support/?month=2026-05")
    assert page.context["complete"] is True
    assert page.context["forecast"] == page.context["spend"]


def test_repeated_prompt_rate_and_savings(client, month, member, org, twin_month):
    support = month["support"]
    events = {
        e.created_at.day: e for e in support.usage_events.all()
    }  # fingerprints by day: A B A C A C
    repeated_cost = events[3].cost + events[5].cost + events[6].cost
    stats = repeats_by_department(organization=org, **MAY)[support.pk]
    assert (stats.requests, stats.repeated) == (6, 3)
    assert stats.rate == Decimal("0.5")
    assert stats.savings == to_cents(repeated_cost)

    client.force_login(member)
    page = client.get("/dashboard/departments/team_support/?month=2026-05")
    assert page.context["repeat_rate"] == Decimal("0.5")
    assert page.context["cache_savings"] == to_cents(repeated_cost)
    top = next(t for t in page.context["tables"] if t.name == "repeats").rows
    assert [(r["fingerprint"], r["requests"]) for r in top] == [("A", 3), ("C", 2)]
    assert top[0]["savings"] == to_cents(events[3].cost + events[5].cost)


def test_failed_calls_are_not_cacheable_repeats(month, org, events):
    events.add(month["support"], day=7, fingerprint="A", status="provider_error")
    stats = repeats_by_department(organization=org, **MAY)[month["support"].pk]
    assert (stats.requests, stats.repeated) == (6, 3)


def test_the_overview_table_downloads_as_the_same_csv(client, month, member, org, twin_month):
    client.force_login(member)
    page = client.get("/dashboard/?month=2026-05")
    assert page.context["total"] == to_cents(spend_total(organization=org, **MAY))
    rows = _csv(client.get("/dashboard/?month=2026-05&format=csv&table=departments"))
    assert sorted(r["Team id"] for r in rows) == ["team_engineering", "team_support"]
    assert [r["Team id"] for r in rows] == [r["team_id"] for r in page.context["rows"]]
    for shown, row in zip(page.context["rows"], rows, strict=True):
        assert Decimal(row["Spend"]) == shown["spend"]
        assert Decimal(row["Caching would save"]) == shown["cache_savings"]
    months = _csv(client.get("/dashboard/?month=2026-05&format=csv&table=months"))
    assert [m["Month"] for m in months] == ["2026-04", "2026-05"]
    assert Decimal(months[1]["Total"]) == page.context["total"]


def test_department_tables_download_as_csv(client, month, member, org, twin_month):
    client.force_login(member)
    base = "/dashboard/departments/team_engineering/?month=2026-05&format=csv&table="
    models = _csv(client.get(base + "models"))
    total = spend_total(organization=org, department=month["engineering"], **MAY)
    assert sum(Decimal(r["Spend"]) for r in models) == to_cents(total)
    daily = _csv(client.get(base + "daily"))
    assert len(daily) == 31
    assert Decimal(daily[-1]["Month to date"]) == to_cents(total)
    assert daily[-1]["Budget pro rata"] == "50.00"
    assert client.get(base + "nope").status_code == 404


def test_csv_cells_that_look_like_formulas_are_neutralised(client, month, member, events):
    events.add(month["support"], day=8, user='=HYPERLINK("http://evil")', prompt=10_000_000)
    client.force_login(member)
    rows = _csv(
        client.get("/dashboard/departments/team_support/?month=2026-05&format=csv&table=users")
    )
    assert rows[0]["User"] == '\'=HYPERLINK("http://evil")'
    assert neutralise("-1+2") == "'-1+2"
    assert neutralise(Decimal("-3.50")) == "-3.50"
    assert neutralise("@SUM(A1)") == "'@SUM(A1)"
