"""`demo_seed`: the seed page's May 2026, exact to the cent, with a consistent ledger."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count, Sum

from budgets.models import Budget
from chargeback.models import ConsumerGroup, Department, Organization
from chargeback.money import to_cents
from demo.seed import _balancing_usage, demo_seed
from gateway.models import Price, UsageEvent
from gateway.pricing import Usage, cost_of
from gateway.selectors import events_in_range, spend_by, spend_total
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.factories import (
    ConsumerGroupFactory,
    DepartmentFactory,
    OrganizationFactory,
    PriceFactory,
)
from wallets.models import LedgerEntry, Wallet
from wallets.services import wallet_allocate, wallet_for_team

MAY = {"date_from": date(2026, 5, 1), "date_to": date(2026, 5, 31)}


def _outsider_look_alike() -> Organization:
    """Another organization that already looks like the demo before it is seeded: the seed's
    team_ids and names, its own price for a model the seed uses, a wallet funded with the very
    idempotency key the seed uses, a budget, and May 2026 usage of its own."""
    outsider = OrganizationFactory(name="Outsider", slug="outsider")
    engineering = DepartmentFactory(
        organization=outsider, team_id="team_engineering", name="Engineering"
    )
    DepartmentFactory(organization=outsider, team_id="team_support", name="Support")
    ConsumerGroupFactory(
        department=engineering, name="engineering", key="kt_cg_outsider_engineering"
    )
    price = PriceFactory(
        organization=outsider,
        provider="openai",
        model="gpt-4o-mini",
        input_per_mtok=Decimal("99"),
        output_per_mtok=Decimal("99"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    wallet_allocate(
        department=engineering,
        amount=Decimal("777"),
        currency="USD",
        idempotency_key="demo-seed-team_engineering-2026-04",
    )
    Budget.objects.create(organization=outsider, department=engineering, amount=Decimal("55"))
    for day in (3, 17, 31):
        UsageEvent.objects.create(
            organization=outsider,
            department=engineering,
            wallet=wallet_for_team(department=engineering),
            request_id=f"req_outsider_{day}",
            user="alice",
            endpoint="/v1/chat/completions",
            provider="openai",
            model_requested="gpt-4o-mini",
            prompt_tokens=1000,
            completion_tokens=100,
            cost=Decimal("0.1089"),
            price=price,
            created_at=datetime(2026, 5, day, 12, tzinfo=UTC),
        )
    return outsider


def _tenant_rows(organization: Organization) -> dict:
    """Every row of the organization that the seed could create, change or spend from."""
    return {
        model.__name__: list(
            model.objects.filter(organization=organization).order_by("pk").values()
        )
        for model in (Department, ConsumerGroup, Wallet, LedgerEntry, Budget, UsageEvent, Price)
    }


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Seed once for the module (it takes seconds) inside a transaction rolled back at the end,
    so nothing of it outlives this module; the outsider exists before the seed runs."""
    with django_db_blocker.unblock(), transaction.atomic():
        outsider = _outsider_look_alike()
        before = _tenant_rows(outsider)
        call_command("demo_seed")
        # Fire the deferred foreign-key checks once here, not again after every test.
        connection.check_constraints()
        yield {
            "acme": Organization.objects.get(slug="acme"),
            "outsider": outsider,
            "outsider_before": before,
        }
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def seeded(world):
    return world["acme"]


pytestmark = pytest.mark.django_db


def test_may_matches_the_seed_page_to_the_cent(seeded):
    assert spend_total(organization=seeded, **MAY) == Decimal("62000")
    by_team = {
        r["key"]: r["cost"]
        for r in spend_by(organization=seeded, field="department__team_id", **MAY)
    }
    assert by_team["team_engineering"] == Decimal("28000")
    assert by_team["team_support"] == Decimal("12000")
    assert by_team["team_legal"] == Decimal("3000")
    assert by_team["team_shared_ops"] == Decimal("7000")
    small = set(by_team) - {"team_engineering", "team_support", "team_legal", "team_shared_ops"}
    assert len(small) >= 3
    assert sum(by_team[t] for t in small) == Decimal("12000")


def test_every_event_costs_what_its_price_gives_for_its_tokens(seeded):
    events = UsageEvent.objects.filter(organization=seeded).select_related("price")
    assert events.count() > 5000
    for event in events.iterator(chunk_size=2000):
        usage = Usage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            cached_tokens=event.cached_tokens,
            cache_write_tokens=event.cache_write_tokens,
        )
        assert event.cost == cost_of(event.price, usage), event.request_id


def test_each_charged_event_has_one_capture_equal_to_its_cost(seeded):
    events = dict(
        UsageEvent.objects.filter(organization=seeded, cost__gt=0).values_list("request_id", "cost")
    )
    captures = LedgerEntry.objects.filter(organization=seeded, kind="capture")
    assert captures.count() == len(events)
    for reference, amount in captures.values_list("reference", "amount"):
        assert amount == -events[reference]


def test_wallet_balances_are_the_sum_of_their_ledger_and_nothing_is_held(seeded):
    wallets = Wallet.objects.filter(organization=seeded)
    assert wallets.count() >= 8
    for wallet in wallets:
        ledger = wallet.entries.aggregate(total=Sum("amount"))["total"]
        assert wallet.balance == ledger
        assert wallet.held == 0
        assert wallet.balance > 0  # funded enough to cover April and May


def test_support_repeats_about_thirty_percent_of_its_prompts(seeded):
    support = events_in_range(organization=seeded, **MAY).filter(department__team_id="team_support")
    total = support.count()
    distinct = support.values("prompt_fingerprint").distinct().count()
    assert 0.27 <= (total - distinct) / total <= 0.33


def test_the_month_looks_real(seeded):
    may = events_in_range(organization=seeded, **MAY)
    assert set(may.values_list("provider", flat=True)) == {"openai", "anthropic"}
    assert may.values("model_requested").distinct().count() >= 5
    assert may.exclude(status="ok").exists()
    assert may.exclude(status="ok").filter(cost__gt=0).count() == 0
    days = may.values("created_at__date").annotate(n=Count("id"))
    assert days.count() == 31
    eng = may.filter(department__team_id="team_engineering")
    premium = eng.filter(price__premium=True).aggregate(s=Sum("cost"))["s"]
    assert premium / Decimal(28000) > Decimal("0.5")
    assert Budget.objects.get(
        organization=seeded, department__team_id="team_engineering"
    ).amount == Decimal(30000)


def test_running_it_again_does_not_double_may(seeded):
    before = UsageEvent.objects.filter(organization=seeded).count()
    result = demo_seed()
    assert result["skipped"] is True
    assert UsageEvent.objects.filter(organization=seeded).count() == before
    assert spend_total(organization=seeded, **MAY) == Decimal("62000")


def test_it_leaves_another_organization_that_looks_alike_as_it_was(world, seeded):
    outsider = world["outsider"]
    assert _tenant_rows(outsider) == world["outsider_before"]
    # The demo's numbers are its own: not the outsider's price, wallet, key replay or budget.
    assert not UsageEvent.objects.filter(organization=seeded, price__organization=outsider).exists()
    assert not UsageEvent.objects.filter(
        organization=seeded, wallet__organization=outsider
    ).exists()
    allocation = LedgerEntry.objects.get(
        organization=seeded,
        idempotency_key="demo-seed-team_engineering-2026-04",
    )
    assert allocation.wallet.department.organization == seeded
    assert allocation.amount != Decimal("777")
    assert set(
        Department.objects.filter(organization=seeded).values_list("team_id", flat=True)
    ) >= {
        "team_engineering",
        "team_support",
    }


@pytest.mark.parametrize(
    ("inp", "out", "rest", "reachable"),
    [
        ("1.00", "5.00", "2.345678", True),
        ("0.02", "0", "1.999999", True),
        ("3.00", "15.00", "2.000001", True),
        ("0.15", "0.60", "2.100003", True),
        # $3/$15 moves in steps of 3 micro-dollars: the seed then tries the next model.
        ("3.00", "15.00", "2.000002", False),
    ],
)
def test_the_balancing_event_costs_exactly_the_rest(inp, out, rest, reachable):
    price = Price(input_per_mtok=Decimal(inp), output_per_mtok=Decimal(out))
    usage = _balancing_usage(Decimal(rest), price)
    if not reachable:
        assert usage is None
        return
    assert cost_of(price, usage) == Decimal(rest)
    assert usage.prompt_tokens > 0


def test_the_ledger_reads_in_time_order_with_each_month_funded_before_its_usage(seeded):
    for wallet in Wallet.objects.filter(organization=seeded, scope="team"):
        entries = list(wallet.entries.order_by("created_at", "id"))
        assert [e.kind for e in entries[:1]] == ["allocation"]
        balance = Decimal(0)
        for entry in entries:
            balance += entry.amount
            assert entry.balance_after == balance, entry.pk
            assert entry.balance_after >= 0  # funded before it is spent
        may_funding = [e for e in entries if e.kind == "allocation"][1]
        assert may_funding.created_at == datetime(2026, 5, 1, tzinfo=seeded.tz)
        assert may_funding.idempotency_key == f"demo-seed-{wallet.department.team_id}-2026-05"


def test_the_may_chargeback_files_balance_columns_equal_the_wallet_ledger(
    seeded, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    job = export_job_create(
        organization=seeded,
        type="chargeback",
        format="csv",
        date_from="2026-05-01",
        date_to="2026-05-31",
    )
    job = export_job_run(job_id=job.id)
    assert job.status == "completed", job.error
    with default_storage.open(job.file.name, "rb") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"), newline="")))
    may_start = datetime(2026, 5, 1, tzinfo=seeded.tz)
    june = datetime(2026, 6, 1, tzinfo=seeded.tz)
    assert {r["team_id"] for r in rows} == set(
        Wallet.objects.filter(organization=seeded, scope="team").values_list(
            "department__team_id", flat=True
        )
    )
    for row in rows:
        wallet = Wallet.objects.get(organization=seeded, department__team_id=row["team_id"])
        last = wallet.entries.filter(created_at__lt=june).order_by("-created_at", "-id").first()
        assert Decimal(row["wallet_balance_end"]) == to_cents(last.balance_after), row["team_id"]
        assert Decimal(row["wallet_balance_end"]) > 0
        funded = wallet.entries.filter(
            kind="allocation", created_at__gte=may_start, created_at__lt=june
        ).aggregate(total=Sum("amount"))["total"]
        assert Decimal(row["allocations"]) == to_cents(funded) > 0
    engineering = next(r for r in rows if r["team_id"] == "team_engineering")
    # 59,000 allocated over the spring, 24,800 spent in April and 28,000 in May.
    assert Decimal(engineering["wallet_balance_end"]) == Decimal("6200.00")
    assert Decimal(engineering["allocations"]) == Decimal("31000.00")
