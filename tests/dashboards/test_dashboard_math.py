"""Forecast, repeated prompts and caching savings, CSV downloads."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from chargeback.money import to_cents
from gateway.selectors import spend_total
from reports.dashboards.csv import neutralise
from reports.dashboards.selectors import forecast_month_end, repeats_by_department

pytestmark = pytest.mark.django_db
MAY = {"date_from": date(2026, 5, 1), "date_to": date(2026, 5, 31)}


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


def test_the_department_page_projects_the_month_end_as_of_a_day(client, month, member, org):
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


def test_repeated_prompt_rate_and_savings(client, month, member, org):
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


def test_the_overview_table_downloads_as_the_same_csv(client, month, member):
    client.force_login(member)
    page = client.get("/dashboard/?month=2026-05")
    rows = _csv(client.get("/dashboard/?month=2026-05&format=csv&table=departments"))
    assert [r["Team id"] for r in rows] == [r["team_id"] for r in page.context["rows"]]
    for shown, row in zip(page.context["rows"], rows, strict=True):
        assert Decimal(row["Spend"]) == shown["spend"]
        assert Decimal(row["Caching would save"]) == shown["cache_savings"]
    months = _csv(client.get("/dashboard/?month=2026-05&format=csv&table=months"))
    assert [m["Month"] for m in months] == ["2026-04", "2026-05"]
    assert Decimal(months[1]["Total"]) == page.context["total"]


def test_department_tables_download_as_csv(client, month, member, org):
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
