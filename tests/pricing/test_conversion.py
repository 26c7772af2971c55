"""Currency conversion below the gateway: the one rounding rule, the rate in force at an
instant (effective-dated, the organization's rows before the shared table, cached), and the
capture statement of a converted event next to the common path's, unchanged."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from chargeback.money import convert
from gateway import exchange
from gateway.exchange import exchange_rate_create, rate_for
from gateway.fastpath import _capture_sql, capture_and_record_fast
from gateway.models import UsageEvent
from gateway.recording import usage_record
from tests.factories import DepartmentFactory, OrganizationFactory
from tests.pricing.money_writes import event_fields
from wallets import services
from wallets.fastpath import hold_place_fast

NOV = datetime(2026, 11, 1, tzinfo=UTC)
MID = datetime(2026, 11, 15, 12, tzinfo=UTC)


def _add(org, rate, at, source="USD", target="EUR"):
    return exchange_rate_create(
        organization=org,
        from_currency=source,
        to_currency=target,
        rate=Decimal(rate),
        effective_from=at,
        actor="test",
        via="api",
    )


def test_convert_rounds_once_half_up_at_storage_precision():
    assert convert(Decimal("0.00000001"), Decimal("0.5")) == Decimal("0.00000001")  # 0.5e-8 up
    assert convert(Decimal("0.00000001"), Decimal("0.4999999999")) == Decimal("0")
    assert convert(Decimal("1.23456789"), Decimal("0.9213")) == Decimal("1.13740740")
    assert convert(Decimal("10"), Decimal("1")) == Decimal("10.00000000")


@pytest.mark.django_db
def test_a_rate_changed_mid_month_applies_from_its_instant():
    org = OrganizationFactory(currency="EUR")
    _add(org, "0.90", NOV)
    _add(org, "0.95", MID)
    at = {
        d: rate_for(organization_id=org.pk, source="USD", target="EUR", at=d)
        for d in (
            NOV - timedelta(seconds=1),
            NOV,
            MID - timedelta(microseconds=1),
            MID,
            MID + timedelta(days=9),
        )
    }
    assert list(at.values()) == [
        None,
        Decimal("0.90"),
        Decimal("0.90"),
        Decimal("0.95"),
        Decimal("0.95"),
    ]
    # Only the direct pair: no inverse rate is made up.
    assert rate_for(organization_id=org.pk, source="EUR", target="USD", at=MID) is None
    assert rate_for(organization_id=org.pk, source="EUR", target="EUR", at=MID) == 1


@pytest.mark.django_db
def test_the_organizations_rates_win_over_the_shared_table_once_in_force(outsider_org):
    org = OrganizationFactory(currency="EUR")
    _add(None, "0.80", NOV)
    _add(org, "0.93", MID)
    assert rate_for(organization_id=org.pk, source="USD", target="EUR", at=NOV) == Decimal("0.80")
    assert rate_for(organization_id=org.pk, source="USD", target="EUR", at=MID) == Decimal("0.93")
    # Another organization sees the shared table only.
    assert rate_for(organization_id=outsider_org.pk, source="USD", target="EUR", at=MID) == Decimal(
        "0.80"
    )


@pytest.mark.django_db
def test_rates_are_cached_and_a_new_rate_clears_the_cache(django_assert_num_queries, settings):
    settings.KT_PRICE_CACHE_SECONDS = 60
    org = OrganizationFactory(currency="EUR")
    _add(org, "0.90", NOV)
    exchange.rate_cache_clear()
    rate_for(organization_id=org.pk, source="USD", target="EUR", at=MID)
    with django_assert_num_queries(0):
        for _ in range(100):
            assert rate_for(organization_id=org.pk, source="USD", target="EUR", at=MID) == Decimal(
                "0.90"
            )
    _add(org, "0.95", MID)
    assert rate_for(organization_id=org.pk, source="USD", target="EUR", at=MID) == Decimal("0.95")


@pytest.mark.django_db
def test_a_rate_is_checked_field_by_field():
    from chargeback.errors import ValidationFailed

    org = OrganizationFactory()
    with pytest.raises(ValidationFailed) as caught:
        _add(org, "0", NOV, source="XXX", target="XXX")
    assert set(caught.value.field_errors()) == {"from_currency", "to_currency", "rate"}
    _add(org, "0.9", NOV)
    with pytest.raises(ValidationFailed) as caught:
        _add(org, "0.91", NOV)
    assert "already starts" in caught.value.field_errors()["effective_from"][0]


@pytest.mark.django_db
def test_the_common_capture_statement_is_unchanged_and_the_converted_one_is_separate():
    if connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL only")
    for async_commit in (False, True):
        common, converted = _capture_sql(async_commit)[0], _capture_sql(async_commit, True)[0]
        for column in ("price_currency", "price_cost", "exchange_rate"):
            assert column not in common
            assert column in converted
    # What the gateway's benchmark measured: the common path's statement, byte for byte (3,976
    # before gateway 0014 replaced its `ON CONFLICT (request_id)` by gateway_event_new()).
    assert len(_capture_sql(False)[0].encode()) == 3966


def _converted_fields(wallet, request_id, usd, rate):
    return {
        **event_fields(wallet, request_id, convert(usd, rate)),
        "currency": "EUR",
        "price_currency": "USD",
        "price_cost": usd,
        "exchange_rate": rate,
    }


def _eur_wallet(org, team):
    department = DepartmentFactory(organization=org, team_id=team)
    services.wallet_allocate(department=department, amount=Decimal("10"), currency="EUR")
    return services.wallet_for_team(department=department)


@pytest.mark.django_db
def test_a_converted_capture_writes_the_same_rows_on_the_fast_path_and_the_orm(org):
    org.currency = "EUR"
    org.save(update_fields=["currency"])
    rate = Decimal("0.9213")
    rows = {}
    for name, place, capture in (
        ("orm", services.hold_place, usage_record),
        ("fast", hold_place_fast, capture_and_record_fast),
    ):
        wallet = _eur_wallet(org, f"team_{name}")
        hold = place(wallet=wallet, amount=Decimal("2"), request_id=f"{name}_1")
        capture(
            hold,
            convert(Decimal("1.23456789"), rate),
            _converted_fields(wallet, f"{name}_1", Decimal("1.23456789"), rate),
        )
        # The same hold again: nothing charged; the event says cost 0 in both currencies.
        capture(hold, Decimal("1"), _converted_fields(wallet, f"{name}_2", Decimal("5"), rate))
        wallet.refresh_from_db()
        rows[name] = (
            wallet.balance,
            list(
                UsageEvent.objects.filter(wallet=wallet)
                .order_by("id")
                .values_list("cost", "currency", "price_currency", "price_cost", "exchange_rate")
            ),
        )
    assert rows["fast"] == rows["orm"]
    assert rows["fast"] == (
        Decimal("10") - Decimal("1.13740740"),
        [
            (Decimal("1.13740740"), "EUR", "USD", Decimal("1.23456789"), rate),
            (Decimal("0"), "EUR", "USD", Decimal("0"), rate),
        ],
    )
