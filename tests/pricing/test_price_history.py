from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.models import Price, UsageEvent
from gateway.pricing import Usage, cost_of, price_for
from tests.factories import PriceFactory
from tests.pricing.conftest import may

pytestmark = pytest.mark.django_db


def _load(path, **kwargs):
    call_command("load_prices", str(path), stdout=open("/dev/null", "w"), **kwargs)  # noqa: SIM115


def _price(model, at, organization_id=None):
    return price_for(organization_id=organization_id, provider="fake", model=model, at=at)


def test_a_mid_month_price_change_prices_each_event_at_its_own_time(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-01")))
    _load(
        catalog_file(
            ("bench-model", "2.00", "8.00", "2026-05-01"),
            ("bench-model", "1.00", "4.00", "2026-05-15T12:00:00Z"),
        )
    )
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)

    before = _price("bench-model", may(15, 11))
    after = _price("bench-model", may(15, 12))

    assert cost_of(before, usage) == Decimal("10.00000000")
    assert cost_of(after, usage) == Decimal("5.00000000")
    assert _price("bench-model", may(1)) == before
    assert _price("bench-model", may(1).replace(month=4)) is None


def test_the_cached_rows_still_pick_the_price_by_time(catalog_file, django_assert_num_queries):
    _load(
        catalog_file(
            ("bench-model", "2.00", "8.00", "2026-05-01"),
            ("bench-model", "1.00", "4.00", "2026-05-15"),
        )
    )
    with django_assert_num_queries(1):
        first = _price("bench-model", may(10))
        second = _price("bench-model", may(20))
        again = _price("bench-model", may(10))
    assert first.input_per_mtok == Decimal("2.00") == again.input_per_mtok
    assert second.input_per_mtok == Decimal("1.00")


def test_a_price_saved_in_this_process_is_seen_at_once(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-01")))
    assert _price("bench-model", may(20)).input_per_mtok == Decimal("2.00")

    _load(
        catalog_file(
            ("bench-model", "2.00", "8.00", "2026-05-01"),
            ("bench-model", "3.00", "9.00", "2026-05-15"),
        )
    )

    assert _price("bench-model", may(20)).input_per_mtok == Decimal("3.00")


def test_a_price_changed_by_another_process_is_seen_after_the_cache_time(settings):
    import time

    settings.KT_PRICE_CACHE_SECONDS = 0.2
    row = PriceFactory(model="bench-model", effective_from=may(1))
    assert _price("bench-model", may(2)).input_per_mtok == row.input_per_mtok
    # A bulk update sends no signal: like a load in another gateway process.
    Price.objects.filter(pk=row.pk).update(effective_to=may(2))
    assert _price("bench-model", may(3)) is not None  # still cached
    time.sleep(0.25)
    assert _price("bench-model", may(3)) is None


def test_the_organizations_own_price_wins(org, outsider_org):
    PriceFactory(model="bench-model", input_per_mtok=Decimal("5"), effective_from=may(1))
    PriceFactory(
        organization=org, model="bench-model", input_per_mtok=Decimal("4"), effective_from=may(1)
    )

    assert _price("bench-model", may(2), org.pk).input_per_mtok == Decimal("4")
    assert _price("bench-model", may(2), outsider_org.pk).input_per_mtok == Decimal("5")
    assert _price("bench-model", may(2)).input_per_mtok == Decimal("5")


def test_the_default_price_applies_outside_the_organizations_own_period(org):
    PriceFactory(model="bench-model", input_per_mtok=Decimal("5"), effective_from=may(1))
    PriceFactory(
        organization=org,
        model="bench-model",
        input_per_mtok=Decimal("4"),
        effective_from=may(10),
        effective_to=may(20),
    )

    assert _price("bench-model", may(5), org.pk).input_per_mtok == Decimal("5")
    assert _price("bench-model", may(15), org.pk).input_per_mtok == Decimal("4")
    assert _price("bench-model", may(25), org.pk).input_per_mtok == Decimal("5")


def test_an_organization_file_loads_as_its_own_prices(org, outsider_org, catalog_file):
    _load(catalog_file(("bench-model", "1.00", "1.00", "2026-05-01")))
    _load(
        catalog_file(("bench-model", "0.50", "0.50", "2026-05-01"), name="acme.yaml"),
        organization="acme",
    )

    assert _price("bench-model", may(2), org.pk).input_per_mtok == Decimal("0.5")
    assert _price("bench-model", may(2), outsider_org.pk).input_per_mtok == Decimal("1")
    assert Price.objects.filter(organization=org).count() == 1


def test_loading_the_same_file_twice_changes_nothing(catalog_file):
    path = catalog_file(
        ("bench-model", "2.00", "8.00", "2026-05-01"),
        ("bench-model", "1.00", "4.00", "2026-05-15"),
        ("other-model", "0.10", "0.40", "2026-01-01"),
    )
    _load(path)
    before = list(Price.objects.filter(provider="fake").values().order_by("id"))

    from gateway.catalog import catalog_load

    report = catalog_load(path=path)

    assert not report.changed
    assert report.unchanged == 3
    assert list(Price.objects.filter(provider="fake").values().order_by("id")) == before


def test_a_changed_price_closes_the_open_row_and_opens_a_new_one(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-01")))
    first = Price.objects.get(model="bench-model")
    UsageEvent.objects.create(
        organization=_org(),
        request_id="req_used",
        endpoint="chat",
        provider="fake",
        model_requested="bench-model",
        price=first,
        cost=Decimal("1"),
    )

    _load(
        catalog_file(
            ("bench-model", "2.00", "8.00", "2026-05-01"),
            ("bench-model", "1.00", "4.00", "2026-05-15"),
        )
    )

    old, new = Price.objects.filter(model="bench-model").order_by("effective_from")
    assert old.pk == first.pk
    assert (old.input_per_mtok, old.output_per_mtok) == (Decimal("2"), Decimal("8"))
    assert old.effective_to == may(15) == new.effective_from
    assert new.effective_to is None
    assert new.input_per_mtok == Decimal("1")


def test_a_used_price_is_never_edited(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-01")))
    used = Price.objects.get(model="bench-model")
    UsageEvent.objects.create(
        organization=_org(),
        request_id="req_used",
        endpoint="chat",
        provider="fake",
        model_requested="bench-model",
        price=used,
        cost=Decimal("1"),
    )

    with pytest.raises(CommandError, match="already used"):
        _load(catalog_file(("bench-model", "9.00", "8.00", "2026-05-01")))

    used.refresh_from_db()
    assert used.input_per_mtok == Decimal("2")


def test_an_unused_price_may_be_corrected_in_place(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-01")))
    _load(catalog_file(("bench-model", "2.50", "8.00", "2026-05-01")))

    row = Price.objects.get(model="bench-model")
    assert row.input_per_mtok == Decimal("2.5")


def test_history_before_the_newest_price_is_refused_and_nothing_loads(catalog_file):
    _load(catalog_file(("bench-model", "2.00", "8.00", "2026-05-15")))

    with pytest.raises(CommandError, match="history is never rewritten"):
        _load(
            catalog_file(
                ("new-model", "1.00", "1.00", "2026-05-01"),
                ("bench-model", "3.00", "8.00", "2026-05-01"),
            )
        )

    assert not Price.objects.filter(model="new-model").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{provider: fake, model: m, input: -1, effective_from: 2026-05-01}", "price >= 0"),
        ("{provider: fake, model: m, input: 0.0000001, effective_from: 2026-05-01}", "6 decimal"),
        ("{provider: fake, model: m, effective_from: 2026-05-01}", "input: required"),
        ("{provider: fake, model: m, input: 1, effective_from: soon}", "ISO date"),
        ("{provider: fake, model: m, input: 1, kind: image, effective_from: 2026-05-01}", "kind"),
        ("{provider: fake, model: m, input: 1, colour: red, effective_from: 2026-05-01}", "colour"),
    ],
)
def test_a_bad_catalog_is_refused_with_the_entry_named_and_changes_nothing(
    tmp_path, entry, message
):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "prices:\n  - {provider: fake, model: ok, input: 1, effective_from: 2026-05-01}\n"
        f"  - {entry}\n"
    )

    with pytest.raises(CommandError, match=message) as exc:
        _load(path)

    assert "prices[1]" in str(exc.value)
    assert not Price.objects.filter(model__in=["ok", "m"]).exists()


def test_the_migration_loads_the_shipped_catalog():
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    Price.objects.filter(organization=None).delete()
    apps = (
        MigrationLoader(connection).project_state(("gateway", "0002_pricing_default_catalog")).apps
    )
    migration = importlib.import_module("gateway.migrations.0002_pricing_default_catalog")

    migration.load_default_catalog(apps, None)

    gpt5 = price_for(organization_id=None, provider="openai", model="gpt-5", at=may(20))
    assert (gpt5.input_per_mtok, gpt5.cached_input_per_mtok) == (Decimal("1.25"), Decimal("0.125"))
    o3 = price_for(organization_id=None, provider="openai", model="o3", at=may(20))
    assert o3.output_per_mtok == Decimal("8")
    for provider, model in [
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "text-embedding-3-small"),
        ("fake", "fake-gpt"),
        ("fake", "fake-premium"),
        ("fake", "fake-embed"),
    ]:
        assert price_for(organization_id=None, provider=provider, model=model, at=may(20))


def _org():
    from tests.factories import OrganizationFactory

    return OrganizationFactory()
