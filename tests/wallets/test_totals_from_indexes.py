"""A wallet's totals, last funding and status without reading its spend entries.

wallets/selectors.py derives total spent from the balance and the few funding, reclaim and
adjustment entries (two partial indexes), and finds the last funding with one index step. These
tests build a varied ledger through the services (allocations, credits, captures, a late
capture, refunds, reclaims, adjustments both ways, two organizations) and check every figure
against the direct sums over all entries that the pages used before, to the last decimal; then
that the queries' plans use the partial indexes and never scan the ledger.
"""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q, Sum

from budgets import selectors as budget_selectors
from chargeback.models import Department, Membership
from reports.admin_columns import annotate_departments
from tests.admin.conftest import make_staff
from tests.factories import DepartmentFactory
from wallets import services
from wallets.ledger import ledger_append_many
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.selectors import FUNDING_KINDS, LAST_FUNDING, wallet_status, wallets_for_org

Kind = LedgerEntry.Kind
USD = "USD"


def d(value: str) -> Decimal:
    return Decimal(value)


def direct_totals(wallet: Wallet) -> dict:
    """The figures as the pages computed them before: sums over every entry of the wallet."""
    entries = LedgerEntry.objects.filter(wallet=wallet)

    def total(q):
        return entries.filter(q).aggregate(t=Sum("amount"))["t"] or Decimal(0)

    # Since allocations are transfers: money in only (not the giving side), and the last
    # funding is not an auto_fund credit (wallets/selectors.py LAST_FUNDING).
    last = entries.filter(LAST_FUNDING).order_by("-created_at", "-id").first()
    last_amount = last.amount if last else None
    wallet.refresh_from_db()
    return {
        "total_allocated": total(Q(kind__in=FUNDING_KINDS, amount__gt=0)),
        "total_spent": -total(Q(kind=Kind.CAPTURE)) - total(Q(kind=Kind.REFUND)),
        "last_allocation": last_amount,
        "status": wallet_status(wallet=wallet, last_allocation=last_amount),
    }


def charge(wallet: Wallet, amount: str, request_id: str, *, late: bool = False) -> None:
    hold = services.hold_place(wallet=wallet, amount=d(amount), request_id=request_id)
    if late:
        services.hold_release(hold=hold, status=Hold.Status.EXPIRED)
        hold.refresh_from_db()
        services.hold_capture_late(hold=hold, amount=d(amount))
    else:
        services.hold_capture(hold=hold, amount=d(amount))


def bulk_captures(wallet: Wallet, count: int, amount: str = "0.00012345") -> None:
    """Many small captures through the ledger's bulk rule (balance moves with them)."""
    ledger_append_many(wallet, [{"kind": Kind.CAPTURE, "amount": -d(amount)}] * count)


@pytest.fixture
def varied(org, outsider_org, engineering):
    """Wallets of every kind and history, in two organizations."""
    support = DepartmentFactory(organization=org, team_id="team_support", name="Support")
    research = DepartmentFactory(organization=org, team_id="team_research", name="Research")
    DepartmentFactory(organization=org, team_id="team_unfunded", name="Never funded")
    theirs = DepartmentFactory(organization=outsider_org, team_id="team_engineering")

    eng_entry, _ = services.wallet_allocate(department=engineering, amount=d("1000"), currency=USD)
    eng = eng_entry.wallet
    for n, cost in enumerate(["12.34567891", "0.00000001", "250", "3.5"]):
        charge(eng, cost, f"eng-{n}")
    charge(eng, "7.25", "eng-late", late=True)
    services.wallet_refund(organization=org, request_id="eng-0", reason="provider credit")
    services.wallet_refund(
        organization=org, request_id="eng-2", reason="partial", amount=d("100.00000001")
    )
    services.wallet_adjust(wallet=eng, amount=d("-1.23456789"), reason="correction")
    services.wallet_adjust(wallet=eng, amount=d("5"), reason="goodwill")
    bulk_captures(eng, 3000)
    services.wallet_allocate(department=engineering, amount=d("0.5"), currency=USD)

    # Support: funded, spent nearly all, part reclaimed to the organization: low or depleted.
    sup_entry, _ = services.wallet_allocate(department=support, amount=d("100"), currency=USD)
    sup = sup_entry.wallet
    charge(sup, "60", "sup-0")
    services.wallet_reclaim(department=support, amount=d("35"), currency=USD)
    charge(sup, "4.99999999", "sup-1")

    # The organization's wallet: credits, a reclaim received, captures.
    services.wallet_credit(organization=org, amount=d("20000"), currency=USD)
    org_wallet = Wallet.objects.get(organization=org, scope=Wallet.Scope.ORGANIZATION)
    bulk_captures(org_wallet, 2000, "1.11111111")
    services.wallet_credit(organization=org, amount=d("10"), currency=USD)

    # Research: a refund-only history is impossible, but an adjustment-only one is not.
    res_entry, _ = services.wallet_allocate(department=research, amount=d("50"), currency=USD)
    services.wallet_adjust(wallet=res_entry.wallet, amount=d("-50"), reason="moved")

    # A user wallet, and the other tenant with a big ledger of its own.
    services.wallet_allocate(
        department=engineering, amount=d("20"), currency=USD, user_ref="alice@example.com"
    )
    their_entry, _ = services.wallet_allocate(department=theirs, amount=d("9999"), currency=USD)
    bulk_captures(their_entry.wallet, 5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE wallets_ledgerentry")
    return org


@pytest.mark.django_db
def test_every_wallet_figure_equals_the_direct_sums_over_its_entries(varied, outsider_org):
    seen = set()
    for organization in (varied, outsider_org):
        for wallet in wallets_for_org(organization=organization):
            expected = direct_totals(wallet)
            got = {key: getattr(wallet, key) for key in expected}
            assert got == expected, wallet.name
            seen.add(got["status"])
    # The fixture covers every status, so the derived expression is tried on each.
    assert seen == {"healthy", "low", "depleted"}


@pytest.mark.django_db
def test_the_alert_check_and_the_departments_column_find_the_same_last_funding(varied):
    for wallet in Wallet.objects.filter(organization=varied):
        expected = direct_totals(wallet)["last_allocation"]
        funding = budget_selectors.wallet_last_funding(wallet=wallet)
        assert (funding.amount if funding else None) == expected
    departments = annotate_departments(
        Department.objects.filter(organization=varied), organizations=[varied]
    )
    for department in departments:
        wallet = Wallet.objects.filter(department=department, scope=Wallet.Scope.TEAM).first()
        expected = direct_totals(wallet) if wallet else {"last_allocation": None, "status": ""}
        assert department.wallet_last_funding == expected["last_allocation"], department.team_id
        assert department.wallet_status == expected["status"], department.team_id


def explain(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


PARTIAL = {"ledger_wallet_funding", "ledger_wallet_reclaim_adjust"}


def assert_ledger_read_by_partial_indexes(plan: str) -> None:
    """The ledger is read only through the partial indexes: no sequential scan, and neither the
    time index (a walk through every tenant's entries) nor a wallet's whole history."""
    assert "Seq Scan on wallets_ledgerentry" not in plan, plan
    used = set(re.findall(r"(?:using|Bitmap Index Scan on) (\S+)", plan))
    ledger_indexes = {name for name in used if "ledger" in name}
    assert ledger_indexes, plan
    assert ledger_indexes <= PARTIAL, plan
    assert "ledger_wallet_funding" in plan, plan


@pytest.mark.django_db
def test_the_wallet_list_reads_only_the_partial_indexes(varied):
    plan = explain(wallets_for_org(organization=varied))
    assert_ledger_read_by_partial_indexes(plan)
    assert "ledger_wallet_reclaim_adjust" in plan, plan


@pytest.mark.django_db
def test_the_departments_list_and_the_alert_check_read_only_the_funding_index(varied):
    departments = annotate_departments(
        Department.objects.filter(organization=varied), organizations=[varied]
    )
    assert_ledger_read_by_partial_indexes(explain(departments))
    wallet = Wallet.objects.get(
        department__team_id="team_engineering", organization=varied, scope=Wallet.Scope.TEAM
    )
    funding = LedgerEntry.objects.filter(
        organization_id=wallet.organization_id,
        wallet=wallet,
        kind__in=[Kind.ALLOCATION, Kind.CREDIT],
        amount__gt=0,
    ).order_by("-created_at", "-id")[:1]
    assert_ledger_read_by_partial_indexes(explain(funding))


@pytest.mark.django_db
def test_the_admin_wallet_pages_show_the_same_totals(varied, client):
    client.force_login(make_staff(varied, Membership.Role.FINANCE, "varied_finance"))
    response = client.get("/admin/wallets/wallet/")
    rows = {w.name: w for w in response.context["cl"].result_list}
    assert set(rows) == set(
        Wallet.objects.filter(organization=varied).values_list("name", flat=True)
    )
    for wallet in rows.values():
        expected = direct_totals(wallet)
        assert (wallet.total_allocated, wallet.total_spent, wallet.status) == (
            expected["total_allocated"],
            expected["total_spent"],
            expected["status"],
        )
    engineering = rows["team_engineering"]
    page = client.get(f"/admin/wallets/wallet/{engineering.pk}/change/")
    assert page.status_code == 200


@pytest.mark.django_db
def test_a_refund_finds_its_capture_and_earlier_refunds_by_index(varied):
    """wallets/services/refunds.py's two ledger reads: the capture by request id (the hash
    index on captures' reference) and the call's earlier refunds (the refunds' partial index),
    never a walk through the wallet's or the organization's captures."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        services.wallet_refund(organization=varied, request_id="eng-3", reason="credit")
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "wallets_ledgerentry"' in q["sql"]
    ]
    capture = [sql for sql in reads if "'capture'" in sql and "eng-3" in sql]
    earlier = [sql for sql in reads if "'refund'" in sql and "SUM(" in sql]
    assert len(capture) == len(earlier) == 1, reads
    with connection.cursor() as cursor:
        for sql, index in (
            (capture[0], "ledger_capture_reference"),
            (earlier[0], "ledger_refund_reference"),
        ):
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on wallets_ledgerentry" not in plan, plan
            assert index in plan, plan
