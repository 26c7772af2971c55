"""Exchange rates in the admin: added through the service (audited), imported from CSV (new
instants added, identical rows skipped, a changed rate refused on its row), never edited or
deleted; the shared table is read-only for staff; converted events show their three figures
and the list's totals stay in the wallet's currency, to the cent."""

from datetime import UTC, datetime
from decimal import Decimal

from django.urls import reverse

from chargeback.models import AuditLog
from gateway.models import ExchangeRate
from tests.admin.conftest import make_event
from tests.admin.test_pricing_and_reconciliation import confirm, import_file

RATES = reverse("admin:gateway_exchangerate_changelist")


def test_finance_adds_a_rate_through_the_service(acme, login):
    client = login(acme.users["finance"])
    response = client.post(
        reverse("admin:gateway_exchangerate_add"),
        {
            "organization": acme.org.pk,
            "from_currency": "USD",
            "to_currency": "GBP",
            "rate": "0.7912",
            "effective_from_0": "2026-11-15",
            "effective_from_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    row = ExchangeRate.objects.get(organization=acme.org, to_currency="GBP")
    assert row.rate == Decimal("0.7912")
    audit = AuditLog.objects.get(action="exchange_rate.create", object_id=str(row.pk))
    assert (audit.actor, audit.via) == ("acme_finance", "admin")


def test_a_rate_the_service_refuses_is_shown_on_the_form(acme, login):
    client = login(acme.users["finance"])
    response = client.post(
        reverse("admin:gateway_exchangerate_add"),
        {
            "organization": acme.org.pk,
            "from_currency": "USD",
            "to_currency": "USD",
            "rate": "1",
            "effective_from_0": "2026-11-15",
            "effective_from_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert "must differ from from_currency" in response.content.decode()
    assert not ExchangeRate.objects.filter(to_currency="USD").exists()


def test_rates_are_never_edited_or_deleted(acme, login):
    client = login(acme.users["finance"])
    row = ExchangeRate.objects.get(organization=acme.org)
    change = client.post(
        reverse("admin:gateway_exchangerate_change", args=[row.pk]),
        {"from_currency": "USD", "to_currency": "EUR", "rate": "5"},
    )
    assert change.status_code == 403
    assert (
        client.post(
            reverse("admin:gateway_exchangerate_delete", args=[row.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    row.refresh_from_db()
    assert row.rate == Decimal("0.9")


def test_the_shared_table_is_listed_for_staff(acme, login):
    shared = ExchangeRate.objects.create(
        from_currency="USD",
        to_currency="CHF",
        rate=Decimal("0.88"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    client = login(acme.users["viewer"])
    response = client.get(RATES)
    assert response.status_code == 200
    assert shared in response.context["cl"].queryset


RATE_CSV = (
    "from_currency,to_currency,rate,effective_from\n"
    "USD,GBP,0.79,2026-11-01 00:00:00\n"
    "USD,GBP,0.80,2026-11-15 00:00:00\n"
)


def test_rates_import_previews_then_adds_and_an_existing_instant_is_not_rewritten(acme, login):
    client = login(acme.users["finance"])
    preview = import_file(
        client, reverse("admin:gateway_exchangerate_import"), "rates.csv", RATE_CSV
    )
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    assert not ExchangeRate.objects.filter(to_currency="GBP").exists()  # preview only
    done = confirm(client, reverse("admin:gateway_exchangerate_process_import"), preview)
    assert done.status_code == 302
    rows = ExchangeRate.objects.filter(organization=acme.org, to_currency="GBP")
    assert sorted(r.rate for r in rows) == [Decimal("0.79"), Decimal("0.8")]
    assert AuditLog.objects.filter(action="exchange_rate.create", via="admin").count() == 2

    # Again: identical rows are skipped; a different rate for an existing instant is refused.
    again = import_file(
        client,
        reverse("admin:gateway_exchangerate_import"),
        "rates.csv",
        RATE_CSV.replace("0.80,", "0.81,"),
    )
    result = again.context["result"]
    assert result.has_validation_errors()
    assert "never changed" in again.content.decode()
    assert ExchangeRate.objects.filter(organization=acme.org, to_currency="GBP").count() == 2


def test_converted_events_show_three_figures_and_the_totals_stay_to_the_cent(acme, login):
    department = acme.org.departments.order_by("pk").first()
    for usd, rate in (("1.00000001", "0.9213"), ("2.5", "0.8777"), ("0.33333333", "0.9213")):
        make_event(
            acme.org,
            department,
            marker="fx",
            cost=str((Decimal(usd) * Decimal(rate)).quantize(Decimal("1e-8"))),
            currency="EUR",
            price_currency="USD",
            price_cost=Decimal(usd),
            exchange_rate=Decimal(rate),
        )
    client = login(acme.users["finance"])
    url = reverse("admin:gateway_usageevent_changelist")
    response = client.get(url, {"price_currency": "USD"})
    assert response.status_code == 200
    events = list(response.context["cl"].queryset)
    assert len(events) == 3
    total = sum(e.cost for e in events)
    assert response.context["totals"]["cost"] == total.quantize(Decimal("0.01"))
    page = client.get(reverse("admin:gateway_usageevent_change", args=[events[0].pk]))
    text = page.content.decode()
    assert "0.9213" in text or "0.8777" in text
    assert "Price currency" in text
