"""Every finance page on 100,000 events: as many queries as on 3,000, and no query reads the
usage events table by a sequential scan (issue 18's 100k-event variant; bench/ measures the
10-million-event one), nor any of its month partitions.

One organization with 8 departments, 6 models (two premium), 400 users, 4 consumer groups and
13 months of calls, each with its hold and capture ledger entry (tests/scale/rows_sql.py),
beside a second, smaller organization. Each page is loaded once on 3,000 calls and once after
100,000 more; then every query it ran that reads usage events is EXPLAINed on the large set.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from chargeback.models import Membership
from gateway.models import Price
from gateway.partitions import partitions_ensure
from gateway.rollups import rollups_fold
from tests.admin.conftest import make_staff
from tests.conftest import bearer_client
from tests.factories import (
    AdminTokenFactory,
    ConsumerGroupFactory,
    DepartmentFactory,
    OrganizationFactory,
)
from tests.scale.rows_sql import generate
from wallets.models import Wallet
from wallets.services import wallet_for_team

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 15, tzinfo=UTC)
START = datetime(2025, 11, 1, tzinfo=UTC)
# A page may add a few queries with the data (a second page of results, a first refund...),
# never one per row, department or day.
SLACK = 2
MAX_QUERIES = 60


def pages(team, wallet_id) -> dict[str, tuple[str, str]]:
    """name -> (client, path)."""
    month, last = "2026-12", "2026-11"
    return {
        "dashboard overview": ("staff", f"/dashboard/?month={last}"),
        "dashboard overview, this month": ("staff", "/dashboard/"),
        "dashboard departments csv": ("staff", f"/dashboard/?month={last}&format=csv"),
        "dashboard months csv": ("staff", f"/dashboard/?month={last}&format=csv&table=months"),
        "department dashboard": ("staff", f"/dashboard/departments/{team}/?month={last}"),
        "department dashboard, this month": ("staff", f"/dashboard/departments/{team}/"),
        "department csv (models)": (
            "staff",
            f"/dashboard/departments/{team}/?month={last}&format=csv&table=models",
        ),
        "department csv (users)": (
            "staff",
            f"/dashboard/departments/{team}/?month={last}&format=csv&table=users",
        ),
        "admin departments": ("staff", "/admin/chargeback/department/"),
        "admin wallets": ("staff", "/admin/wallets/wallet/"),
        "admin one wallet": ("staff", f"/admin/wallets/wallet/{wallet_id}/change/"),
        "admin usage events": ("staff", "/admin/gateway/usageevent/"),
        "admin usage events, department and month": (
            "staff",
            (
                "/admin/gateway/usageevent/?department__id__exact={dept}"
                "&created_at__year=2026&created_at__month=11"
            ),
        ),
        "admin ledger": ("staff", "/admin/wallets/ledgerentry/"),
        "admin reconciliation": ("staff", "/admin/reports/providerinvoice/reconciliation/"),
        "admin budgets": ("staff", "/admin/budgets/budget/"),
        **{
            f"spend by {by}": ("api", f"/v1/spend?by={by}&month={last}")
            for by in ("team", "model", "provider", "user", "group")
        },
        "spend this month": ("api", f"/v1/spend?month={month}"),
        "wallets api": ("api", "/v1/wallets"),
    }


@pytest.fixture
def scene(client):
    org = OrganizationFactory(name="Big", slug="big", time_zone="Europe/Berlin")
    other = OrganizationFactory(name="Other", slug="other")
    prices = [
        Price.objects.create(
            provider=provider,
            model=model,
            input_per_mtok=Decimal(cost_in),
            output_per_mtok=Decimal(cost_out),
            premium=premium,
            effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        )
        for provider, model, cost_in, cost_out, premium in [
            ("openai", "gpt-4o", "2.5", "10", True),
            ("openai", "gpt-4o-mini", "0.15", "0.6", False),
            ("anthropic", "claude-opus", "15", "75", True),
            ("anthropic", "claude-haiku", "0.8", "4", False),
            ("mistral", "mistral-small", "0.2", "0.6", False),
            ("google", "gemini-flash", "0.1", "0.4", False),
        ]
    ]
    teams = {}
    for organization, count in ((org, 8), (other, 3)):
        groups = [
            ConsumerGroupFactory(organization=organization, name=f"app-{n}") for n in range(4)
        ]
        teams[organization.pk] = []
        for n in range(count):
            department = DepartmentFactory(organization=organization, team_id=f"team_{n}")
            from budgets.models import Budget

            Budget.objects.create(
                organization=organization,
                department=department,
                period=Budget.Period.MONTH,
                amount=Decimal("500"),
                thresholds=[50, 80, 100],
            )
            wallet = wallet_for_team(department=department)
            teams[organization.pk].append((department, wallet, groups[n % 4], Decimal("100000")))
    staff = make_staff(org, Membership.Role.FINANCE, "big_finance")
    client.force_login(staff)
    AdminTokenFactory(organization=org, raw="kt_admin_big_scale")
    return org, other, teams, prices, {"staff": client, "api": bearer_client("kt_admin_big_scale")}


def _load(clients, urls) -> dict[str, list[str]]:
    """Each page's queries (SQL as run)."""
    seen = {}
    for name, (who, path) in urls.items():
        with CaptureQueriesContext(connection) as queries:
            response = clients[who].get(path)
        assert response.status_code == 200, (name, response.status_code)
        seen[name] = [q["sql"] for q in queries.captured_queries]
    return seen


def _plans_of_event_reads(sqls: list[str]) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        for sql in sqls:
            if "gateway_usageevent" not in sql or not re.match(r"\s*(SELECT|WITH)", sql):
                continue
            cursor.execute("EXPLAIN " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _parent_index(name: str) -> str:
    """A partition's index as the parent table's index it is part of (itself if none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = %s::regclass",
            [name],
        )
        row = cursor.fetchone()
    return row[0] if row else name


def test_every_finance_page_is_bounded_and_never_scans_the_events(scene):
    org, other, teams, prices, clients = scene
    busiest, wallet = teams[org.pk][0][0], teams[org.pk][0][1]
    urls = {
        name: (who, path.replace("{dept}", str(busiest.pk)))
        for name, (who, path) in pages(busiest.team_id, wallet.pk).items()
    }
    # On PostgreSQL each month has its partition, as the daily beat task keeps them.
    partitions_ensure(now=START, ahead=14)
    with time_machine.travel(NOW, tick=False):
        generate(
            organization=org,
            teams=teams[org.pk],
            prices=prices,
            count=3000,
            start=START,
            end=NOW,
            seed="small",
        )
        generate(
            organization=other,
            teams=teams[other.pk],
            prices=prices,
            count=2000,
            start=START,
            end=NOW,
            seed="other",
        )
        rollups_fold()
        small = _load(clients, urls)
        generate(
            organization=org,
            teams=teams[org.pk],
            prices=prices,
            count=100_000,
            start=START,
            end=NOW,
            seed="large",
        )
        rollups_fold()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE gateway_usageevent, wallets_ledgerentry, wallets_hold")
        large = _load(clients, urls)

    # Funded twice (one allocation per generate call), spent by its captures: the ledger's rule.
    balance = Wallet.objects.get(pk=wallet.pk).balance
    assert balance == wallet.entries.aggregate(total=Sum("amount"))["total"] < Decimal("200000")
    failures = []
    for name in urls:
        if len(large[name]) > min(MAX_QUERIES, len(small[name]) + SLACK):
            failures.append((name, "queries", len(small[name]), len(large[name])))
        for plan in _plans_of_event_reads(large[name]):
            if "Seq Scan on gateway_usageevent" in plan:
                failures.append((name, plan))
    assert not failures, "\n\n".join(map(str, failures))
    # What keeps the busiest pages small at 10 M events (docs/performance.md): a month by user
    # or consumer group from the month rows, not a row per user and day; the policy table from
    # its partial index; the ledger counted no further than its cap.
    for name in ("spend by user", "spend by group", "department dashboard"):
        assert any("gateway_spendusermonth" in sql for sql in large[name]), name
        assert not any("gateway_spenduserdaily" in sql for sql in large[name]), name
    policy = [sql for sql in large["department dashboard"] if '"policy_saved"' in sql]
    assert policy
    # The partial index, or on the partitioned table each month partition's part of it.
    used = re.findall(
        r"(?:Index (?:Only )?Scan using|Bitmap Index Scan on) (\w+)",
        _plans_of_event_reads(policy)[0],
    )
    assert used
    assert {_parent_index(name) for name in used} == {"event_policy_time"}, used
    counts = [sql for sql in large["admin ledger"] if "COUNT(" in sql]
    assert counts
    assert all("LIMIT 100001" in sql for sql in counts), counts
