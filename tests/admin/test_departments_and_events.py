"""The finance screens: department money columns, event totals, and their query counts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from budgets.models import Budget
from chargeback.models import Department, Membership
from gateway.models import UsageEvent
from tests.admin.conftest import make_event, make_staff
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.models import LedgerEntry, Wallet

DEPARTMENTS = reverse("admin:chargeback_department_changelist")
EVENTS = reverse("admin:gateway_usageevent_changelist")


@pytest.fixture
def shop(db):
    org = OrganizationFactory(name="Shop", slug="shop")
    return org, make_staff(org, Membership.Role.FINANCE, "shop_finance")


@pytest.fixture
def rival(db):
    """Another organization whose departments look like the shop's (add_department gives them
    the same team_ids, names, group names, users and models): none of it may show to the shop."""
    return OrganizationFactory(name="Rival", slug="rival")


def add_department(org, n, *, budget="100", allocate="100", spend=("0.004",) * 3):
    dept = DepartmentFactory(organization=org, team_id=f"team_{n}", name=f"Dept {n:03d}")
    ConsumerGroupFactory(
        organization=org, department=dept, name=f"g-{n}", key=f"kt_cg_{org.slug}_{n}"
    )
    if budget is not None:
        Budget.objects.create(organization=org, department=dept, amount=Decimal(budget))
    if allocate is not None:
        services.wallet_allocate(department=dept, amount=Decimal(allocate), currency="USD")
    for cost in spend:
        make_event(org, dept, marker="shop", cost=cost)
    return dept


def test_department_columns_show_month_spend_budget_and_wallet(shop, rival, client):
    org, finance = shop
    # The rival's team_1 and team_2 spend more, budget and fund otherwise, at the same moment.
    for n in (1, 2):
        theirs = add_department(rival, n, budget="9", allocate="50", spend=("7",) * 3)
    services.hold_place(wallet=theirs.wallets.get(), amount=Decimal("1"), request_id="r-rival")
    dept = add_department(org, 1, budget="0.04", spend=("0.004", "0.004", "0.004"))
    # Last month's spend is not this month's.
    make_event(org, dept, marker="shop", cost="5", created_at=timezone.now() - timedelta(days=40))
    # 0.004 x 3 = 0.012: summed first, then rounded, it is 0.01 (rounding each would say 0.00).
    wallet = dept.wallets.get()
    hold = services.hold_place(wallet=wallet, amount=Decimal("95"), request_id="r-low")
    low = add_department(org, 2, allocate="100", spend=())
    services.hold_place(wallet=low.wallets.get(), amount=Decimal("100"), request_id="r-dep")
    add_department(org, 3, budget=None, allocate=None, spend=())

    client.force_login(finance)
    response = client.get(DEPARTMENTS)
    rows = {d.team_id: d for d in response.context["cl"].result_list}
    assert {d.organization_id for d in rows.values()} == {org.pk}
    assert sorted(rows) == ["team_1", "team_2", "team_3"]
    ma = response.context["cl"].model_admin
    one = rows["team_1"]
    assert ma.mtd_spend_column(one) == "0.01"
    assert ma.budget_column(one) == "0.04"
    assert ma.percent_used_column(one) == "30.0 %"
    assert ma.wallet_available_column(one) == "5.00"
    assert ma.wallet_status_column(one) == "low"  # 5 < 10 % of the last allocation (100)
    assert ma.wallet_status_column(rows["team_2"]) == "depleted"
    assert ma.wallet_status_column(rows["team_3"]) is None  # no wallet yet
    assert ma.budget_column(rows["team_3"]) is None
    services.hold_release(hold=hold)
    response = client.get(DEPARTMENTS)
    one = next(d for d in response.context["cl"].result_list if d.team_id == "team_1")
    assert ma.wallet_status_column(one) == "healthy"
    assert b"Month-to-date spend" in response.content


def test_department_columns_sort_by_spend(shop, client):
    org, finance = shop
    add_department(org, 1, spend=("1",))
    add_department(org, 2, spend=("3",))
    add_department(org, 3, spend=("2",))
    client.force_login(finance)
    column = client.get(DEPARTMENTS).context["cl"].list_display.index("mtd_spend_column")
    response = client.get(DEPARTMENTS, {"o": f"-{column}"})
    assert [d.team_id for d in response.context["cl"].result_list] == [
        "team_2",
        "team_3",
        "team_1",
    ]


def bulk_departments(org, numbers):
    """Many departments with budget, funded wallet and one event each, in a handful of queries."""
    depts = Department.objects.bulk_create(
        Department(organization=org, team_id=f"team_{n}", name=f"Dept {n:03d}") for n in numbers
    )
    Budget.objects.bulk_create(
        Budget(organization=org, department=d, amount=Decimal("100")) for d in depts
    )
    wallets = Wallet.objects.bulk_create(
        Wallet(organization=org, scope="team", department=d, name=d.team_id, balance=100)
        for d in depts
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            organization=org,
            wallet=w,
            kind="allocation",
            amount=100,
            balance_after=100,
            currency="USD",
        )
        for w in wallets
    )
    bulk_events(org, depts, len(depts), start=numbers[0])
    return depts


def bulk_events(org, depts, count, start=0):
    UsageEvent.objects.bulk_create(
        UsageEvent(
            organization=org,
            department=depts[i % len(depts)],
            request_id=f"bulk-{org.pk}-{start + i}",
            user=f"u{start + i}",
            endpoint="chat.completions",
            provider="fake",
            model_requested="m",
            cost=Decimal("0.1"),
        )
        for i in range(count)
    )


def count_queries(client, url, params=None):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_department_changelist_query_count_does_not_grow_with_rows(shop, client):
    org, finance = shop
    client.force_login(finance)
    bulk_departments(org, range(5))
    client.get(DEPARTMENTS)  # warm the session
    few = count_queries(client, DEPARTMENTS)
    bulk_departments(org, range(5, 50))
    many = count_queries(client, DEPARTMENTS)
    assert len(client.get(DEPARTMENTS).context["cl"].result_list) == 50
    assert few == many
    assert many <= 12


def test_event_changelist_query_count_does_not_grow_with_rows(shop, client):
    org, finance = shop
    client.force_login(finance)
    depts = [add_department(org, n, spend=()) for n in range(3)]
    bulk_events(org, depts, 5)
    client.get(EVENTS)
    few = count_queries(client, EVENTS)
    bulk_events(org, depts, 45, start=5)
    many = count_queries(client, EVENTS)
    assert client.get(EVENTS).context["totals"]["requests"] == 50
    assert few == many
    assert many <= 15


def test_event_totals_are_those_of_the_filtered_set(shop, rival, client):
    org, finance = shop
    eng = add_department(org, 1, spend=())
    ops = add_department(org, 2, spend=())
    # The rival's look-alike calls: same team_ids, users, provider and model, same moment.
    rival_eng = add_department(rival, 1, spend=("5", "5"))
    make_event(rival, rival_eng, marker="shop", cost="9", provider="openai", user="alice")
    for _ in range(3):
        make_event(org, eng, marker="shop", cost="0.004", prompt_tokens=10, completion_tokens=5)
    make_event(org, ops, marker="shop", cost="1.234", prompt_tokens=7, completion_tokens=3)
    make_event(org, ops, marker="shop", cost="2", provider="openai", user="alice")
    client.force_login(finance)

    totals = client.get(EVENTS, {"department__id__exact": eng.pk}).context["totals"]
    assert totals["cost"] == Decimal("0.01")
    assert totals["requests"] == 3
    assert totals["tokens"] == 45

    response = client.get(EVENTS)
    assert response.context["totals"]["cost"] == Decimal("3.25")  # 0.012 + 1.234 + 2
    assert b'id="kt-total-cost">3.25<' in response.content

    assert client.get(EVENTS, {"provider": "openai"}).context["totals"]["requests"] == 1
    assert client.get(EVENTS, {"user": "alice"}).context["totals"]["cost"] == Decimal("2.00")
    assert client.get(EVENTS, {"status": "ok"}).context["totals"]["requests"] == 5
    alice = UsageEvent.objects.filter(user="alice")
    found = client.get(EVENTS, {"q": alice.get(organization=org).request_id})
    assert found.context["totals"]["requests"] == 1
    theirs = client.get(EVENTS, {"q": alice.get(organization=rival).request_id})
    assert theirs.context["totals"]["requests"] == 0
    by_their_department = client.get(EVENTS, {"department__id__exact": rival_eng.pk})
    assert by_their_department.context["totals"]["requests"] == 0
    month = timezone.now()
    dated = client.get(EVENTS, {"created_at__year": month.year, "created_at__month": month.month})
    assert dated.context["totals"]["requests"] == 5


def test_events_charged_above_their_hold_are_a_column_and_a_filter(shop, client):
    org, finance = shop
    dept = add_department(org, 1, spend=())
    make_event(org, dept, marker="shop", cost="0.50", above_hold=True)
    make_event(org, dept, marker="shop", cost="0.25")
    client.force_login(finance)

    response = client.get(EVENTS)
    assert "above_hold" in response.context["cl"].list_display
    flagged = client.get(EVENTS, {"above_hold__exact": "1"}).context
    assert flagged["totals"]["requests"] == 1
    assert flagged["totals"]["cost"] == Decimal("0.50")
    assert client.get(EVENTS, {"above_hold__exact": "0"}).context["totals"]["requests"] == 1


def test_the_event_date_hierarchy_lists_periods_from_first_to_last_event(shop, client):
    org, finance = shop
    dept = add_department(org, 1, spend=())
    for day in ("2025-11-20", "2026-01-05", "2026-03-31"):
        when = timezone.datetime.fromisoformat(f"{day}T12:00:00+00:00")
        make_event(org, dept, marker="shop", cost="1", created_at=when)
    client.force_login(finance)
    years = client.get(EVENTS).content.decode()
    assert "?created_at__year=2025" in years
    assert "?created_at__year=2026" in years
    months = client.get(EVENTS, {"created_at__year": 2026}).content.decode()
    assert "January 2026" in months
    assert "March 2026" in months
    assert "April 2026" not in months
    march = client.get(EVENTS, {"created_at__year": 2026, "created_at__month": 3})
    assert march.context["totals"]["requests"] == 1
    assert "March 31" in march.content.decode()
