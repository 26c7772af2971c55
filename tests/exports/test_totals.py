"""Totals agree to the cent: events export = chargeback export = ledger captures."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.db.models import Sum

from chargeback.money import to_cents
from gateway.models import UsageEvent
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.exports.usage import fund, record_usage
from tests.factories import DepartmentFactory, PriceFactory
from wallets import services as wallets
from wallets.models import LedgerEntry

pytestmark = pytest.mark.django_db


def _run(org, **kwargs):
    job = export_job_create(organization=org, **{"format": "csv", **kwargs})
    job = export_job_run(job_id=job.id)
    assert job.status == "completed", job.error
    return job


def _csv_rows(job):
    with default_storage.open(job.file.name, "rb") as fh:
        return list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"), newline="")))


@pytest.fixture
def may(org, engineering, support, model):
    """A May with a mid-month price change, cached tokens, failures and a refund."""
    fund(engineering, "500.00", at=datetime(2026, 4, 30, 9, tzinfo=UTC))
    fund(engineering, "250.00", at=datetime(2026, 5, 3, 9, tzinfo=UTC))
    fund(support, "300.00", at=datetime(2026, 5, 1, 9, tzinfo=UTC))
    events = []
    for day in (1, 3, 6, 9, 15, 16, 21, 27, 30, 31):
        at = datetime(2026, 5, day, 10, 17, 3, tzinfo=UTC)
        events.append(
            record_usage(
                department=engineering,
                at=at,
                model=model,
                prompt_tokens=1234 + day,
                completion_tokens=567 + 3 * day,
                cached_tokens=400 if day % 3 == 0 else 0,
            )
        )
        events.append(
            record_usage(department=support, at=at.replace(hour=15), model=model, prompt_tokens=777)
        )
    for day in (4, 20):
        events.append(
            record_usage(
                department=support,
                at=datetime(2026, 5, day, 11, tzinfo=UTC),
                model=model,
                status=UsageEvent.Status.PROVIDER_ERROR,
                error_code="upstream_500",
            )
        )
    # Outside the month: must not count.
    record_usage(department=engineering, at=datetime(2026, 4, 30, 23, 59, tzinfo=UTC), model=model)
    record_usage(department=engineering, at=datetime(2026, 6, 1, 0, 0, tzinfo=UTC), model=model)
    refunded = events[6]
    with time_machine.travel(datetime(2026, 5, 25, 8, tzinfo=UTC), tick=False):
        wallets.wallet_refund(
            organization=org,
            request_id=refunded.request_id,
            amount=refunded.cost,
            reason="provider credit",
        )
    return {"events": events, "refunded": refunded}


@pytest.fixture
def outsider_may(outsider_org, model):
    """The outsider's May looks like ours: the same team_ids and names, the same model (at its
    own negotiated price), spend at the same moments, an allocation in the month and a refund.
    None of it may reach `org`'s files or totals."""
    PriceFactory(
        organization=outsider_org,
        model=model,
        input_per_mtok=Decimal("7.000000"),
        output_per_mtok=Decimal("21.000000"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    teams = [
        DepartmentFactory(organization=outsider_org, team_id=team_id, name=name)
        for team_id, name in (("team_engineering", "Engineering"), ("team_support", "Support"))
    ]
    for team in teams:
        fund(team, "900.00", at=datetime(2026, 5, 3, 9, tzinfo=UTC))
    # Its team_legal has no wallet of its own: it spends from the outsider's organization wallet.
    legal = DepartmentFactory(organization=outsider_org, team_id="team_legal", name="Legal")
    with time_machine.travel(datetime(2026, 5, 3, 9, tzinfo=UTC), tick=False):
        wallets.wallet_credit(organization=outsider_org, amount=Decimal("500.00"), currency="USD")
    events = [
        record_usage(department=team, at=datetime(2026, 5, day, 10, 17, 3, tzinfo=UTC), model=model)
        for day in (1, 16, 31)
        for team in [*teams, legal]
    ]
    with time_machine.travel(datetime(2026, 5, 25, 8, tzinfo=UTC), tick=False):
        for refunded in (events[0], events[2]):  # team_engineering's and the organization's
            wallets.wallet_refund(
                organization=outsider_org,
                request_id=refunded.request_id,
                amount=refunded.cost,
                reason="provider credit",
            )
    return events


def _captured(org):
    total = LedgerEntry.objects.filter(
        organization=org,
        kind="capture",
        created_at__gte=datetime(2026, 5, 1, tzinfo=UTC),
        created_at__lt=datetime(2026, 6, 1, tzinfo=UTC),
    ).aggregate(t=Sum("amount"))["t"]
    return -total


def test_events_and_chargeback_totals_equal_the_ledger_captures_to_the_cent(org, may, outsider_may):
    captured = _captured(org)
    events_job = _run(org, type="events", date_from="2026-05-01", date_to="2026-05-31")
    chargeback_job = _run(org, type="chargeback", date_from="2026-05-01", date_to="2026-05-31")

    rows = _csv_rows(events_job)
    assert len(rows) == len(may["events"]) == 22
    assert {r["request_id"] for r in rows} == {e.request_id for e in may["events"]}
    assert sum(Decimal(r["cost"]) for r in rows) == captured  # exact, 8 places
    assert events_job.manifest["totals"]["USD"]["cost"] == str(to_cents(captured))
    assert chargeback_job.manifest["totals"]["USD"]["spend"] == str(to_cents(captured))

    by_team = {r["team_id"]: r for r in _csv_rows(chargeback_job)}
    assert set(by_team) == {"team_engineering", "team_support"}
    eng = by_team["team_engineering"]
    assert Decimal(eng["spend"]) == to_cents(
        sum(e.cost for e in may["events"] if e.department.team_id == "team_engineering")
    )
    assert int(eng["requests"]) == 10
    assert int(by_team["team_support"]["failed_requests"]) == 2
    # Allocations in the month only (the April one is not May's), balance from the ledger.
    assert Decimal(eng["allocations"]) == Decimal("250.00")
    eng_wallet = may["events"][0].wallet
    eng_wallet.refresh_from_db()
    assert Decimal(eng["wallet_balance_end"]) == to_cents(
        LedgerEntry.objects.filter(
            wallet=eng_wallet, created_at__lt=datetime(2026, 6, 1, tzinfo=UTC)
        ).aggregate(t=Sum("amount"))["t"]
    )


def test_a_refund_shows_in_the_chargeback_month_and_nets_the_spend(org, may, outsider_may):
    refunded = may["refunded"]
    job = _run(org, type="chargeback", date_from="2026-05-01", date_to="2026-05-31")
    row = next(r for r in _csv_rows(job) if r["team_id"] == refunded.department.team_id)
    assert Decimal(row["refunds"]) == to_cents(refunded.cost)  # not the outsider's refund too
    other = next(r for r in _csv_rows(job) if r["team_id"] != refunded.department.team_id)
    assert Decimal(other["refunds"]) == 0
    assert Decimal(row["net_spend"]) == Decimal(row["spend"]) - Decimal(row["refunds"])
    totals = job.manifest["totals"]["USD"]
    assert Decimal(totals["refunds_exact"]) == refunded.cost
    assert Decimal(totals["net_spend"]) == Decimal(totals["spend"]) - Decimal(totals["refunds"])


def test_the_price_change_mid_month_prices_each_event_at_its_own_time(org, may, outsider_may):
    rows = _csv_rows(_run(org, type="events", date_from="2026-05-01", date_to="2026-05-31"))
    before = {r["price_id"] for r in rows if r["created_at"] < "2026-05-16" and r["status"] == "ok"}
    after = {r["price_id"] for r in rows if r["created_at"] >= "2026-05-16" and r["status"] == "ok"}
    assert len(before) == len(after) == 1
    assert before != after
    assert not (before | after) & {str(e.price_id) for e in outsider_may}  # its own price
    cached = [r for r in rows if r["cached_tokens"] == "400"]
    assert cached
    failed = [r for r in rows if r["status"] == "provider_error"]
    assert [Decimal(r["cost"]) for r in failed] == [Decimal(0), Decimal(0)]
    assert all(r["error_code"] == "upstream_500" for r in failed)


def test_the_balance_at_the_month_end_leaves_out_what_came_after(org, may, engineering):
    """wallet_balance_end is the balance now less the entries after the period (read by the
    wallet's time index), which is the ledger's sum before the period's end."""
    wallets.wallet_allocate(department=engineering, amount=Decimal("12.34567891"), currency="USD")
    job = _run(org, type="chargeback", date_from="2026-05-01", date_to="2026-05-31")
    eng = next(r for r in _csv_rows(job) if r["team_id"] == "team_engineering")
    wallet = may["events"][0].wallet
    wallet.refresh_from_db()
    before = LedgerEntry.objects.filter(
        wallet=wallet, created_at__lt=datetime(2026, 6, 1, tzinfo=UTC)
    ).aggregate(t=Sum("amount"))["t"]
    assert Decimal(eng["wallet_balance_end"]) == to_cents(before) != to_cents(wallet.balance)
