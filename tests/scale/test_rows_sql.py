"""The generated calls (tests/scale/rows_sql.py) have the shape of the ones the services write:
the same invariants hold for a call written through wallets/services (hold placed and captured,
capture entry, event) and for each generated one, and the rollups the events' triggers keep
from them equal the events."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Sum

from chargeback.money import quantize
from gateway.models import Price, UsageEvent
from gateway.rollups import rollup_total
from gateway.selectors import COST_SUM, events_in_range
from tests.budgets.helpers import record_spend
from tests.factories import ConsumerGroupFactory
from tests.scale.rows_sql import generate
from wallets import services
from wallets.models import Hold, LedgerEntry, Wallet

pytestmark = pytest.mark.django_db

REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$|^req_test_")


def assert_written_as_the_gateway_writes(event: UsageEvent) -> None:
    assert REQUEST_ID.match(event.request_id), event.request_id
    assert event.endpoint == "chat.completions"
    assert event.model_served == event.model_requested
    assert event.organization_id == event.department.organization_id
    if event.status == UsageEvent.Status.CACHE_HIT:
        assert not Hold.objects.filter(request_id=event.request_id).exists()
        return
    hold = Hold.objects.get(request_id=event.request_id)
    assert (hold.organization_id, hold.wallet_id) == (event.organization_id, event.wallet_id)
    # The caller's department (tests' record_spend places its holds without one).
    assert hold.department_id in (event.department_id, None)
    assert hold.amount >= event.cost
    assert hold.resolved_at is not None
    assert hold.expires_at > hold.created_at
    captures = LedgerEntry.objects.filter(hold=hold)
    if event.cost > 0:
        assert (hold.status, hold.captured_amount) == ("captured", event.cost)
        capture = captures.get()
        assert (capture.kind, capture.amount, capture.reference) == (
            "capture",
            -event.cost,
            event.request_id,
        )
        assert capture.wallet_id == event.wallet_id
        assert capture.currency == event.currency == capture.wallet.currency
        earlier = LedgerEntry.objects.filter(wallet=capture.wallet, pk__lte=capture.pk)
        assert capture.balance_after == earlier.aggregate(total=Sum("amount"))["total"]
    else:
        assert hold.status == "released"
        assert not captures.exists()


def test_generated_calls_keep_the_services_invariants(engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("50"), currency="USD")
    written = record_spend(department=engineering, amount="0.42")
    assert_written_as_the_gateway_writes(written)

    price = Price.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        input_per_mtok=Decimal("0.15"),
        output_per_mtok=Decimal("0.6"),
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
    )
    wallet = Wallet.objects.get(department=engineering)
    group = ConsumerGroupFactory(organization=engineering.organization, department=engineering)
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    generate(
        organization=engineering.organization,
        teams=[(engineering, wallet, group, Decimal("10"))],
        prices=[price],
        count=200,
        start=start,
        end=end,
    )
    generated = UsageEvent.objects.exclude(pk=written.pk)
    assert generated.count() == 200
    assert {e.status for e in generated} == {"ok", "cache_hit", "provider_error"}
    for event in generated:
        assert_written_as_the_gateway_writes(event)
        if event.status == "ok":  # priced as gateway/pricing.py prices plain chat usage
            want = (
                event.prompt_tokens * price.input_per_mtok
                + event.completion_tokens * price.output_per_mtok
            ) / 1_000_000
            assert event.cost == quantize(want)
            assert event.price_id == price.pk
    wallet.refresh_from_db()
    assert wallet.balance == wallet.entries.aggregate(total=Sum("amount"))["total"]
    scope = {
        "organization": engineering.organization,
        "date_from": start.date(),
        "date_to": end.date(),
    }
    assert rollup_total(**scope)["cost"] == events_in_range(**scope).aggregate(c=COST_SUM)["c"]
