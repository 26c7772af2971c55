"""Price history through admin edits and imports; invoice import and the reconciliation view."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chargeback.models import AuditLog
from gateway.models import Price
from reports.admin_reconciliation import reconciliation_rows
from reports.models import ProviderInvoice
from tests.admin.conftest import make_event

PRICES = reverse("admin:gateway_price_changelist")


def price_form(price, **changes):
    data = {
        "organization": price.organization_id or "",
        "provider": price.provider,
        "model": price.model,
        "kind": price.kind,
        "input_per_mtok": price.input_per_mtok,
        "output_per_mtok": price.output_per_mtok,
        "cached_input_per_mtok": price.cached_input_per_mtok or "",
        "cache_write_per_mtok": "",
        "max_output_tokens": price.max_output_tokens,
        "context_window": price.context_window,
        "currency": price.currency,
        "effective_from_0": price.effective_from.strftime("%Y-%m-%d"),
        "effective_from_1": price.effective_from.strftime("%H:%M:%S"),
        "effective_to_0": "",
        "effective_to_1": "",
    }
    data.update(changes)
    return data


def test_editing_a_used_price_closes_it_and_opens_a_new_row(acme, login):
    client = login(acme.users["finance"])
    used = Price.objects.get(organization=acme.org, model="acme-model")
    response = client.post(
        reverse("admin:gateway_price_change", args=[used.pk]), price_form(used, input_per_mtok="3")
    )
    assert response.status_code == 302
    used.refresh_from_db()
    assert used.input_per_mtok == Decimal("2.5")  # the terms events were billed at stay
    assert used.effective_to is not None
    new = Price.objects.get(organization=acme.org, model="acme-model", effective_to__isnull=True)
    assert new.input_per_mtok == Decimal("3")
    assert new.effective_from == used.effective_to
    audit = AuditLog.objects.get(action="price.update")
    assert audit.after["closed_price"] == used.pk
    assert (audit.actor, audit.before["input_per_mtok"], audit.after["input_per_mtok"]) == (
        "acme_finance",
        "2.500000",
        "3.000000",
    )


def test_an_unused_price_is_edited_in_place(acme, login):
    client = login(acme.users["finance"])
    unused = Price.objects.create(
        organization=acme.org,
        provider="fake",
        model="acme-new",
        input_per_mtok=Decimal("1"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    client.post(
        reverse("admin:gateway_price_change", args=[unused.pk]),
        price_form(unused, input_per_mtok="2"),
    )
    assert Price.objects.filter(model="acme-new").count() == 1
    assert Price.objects.get(model="acme-new").input_per_mtok == Decimal("2")
    assert AuditLog.objects.filter(action="price.update", object_id=str(unused.pk)).exists()


def test_the_default_catalog_is_read_only_for_staff(acme, login):
    default = Price.objects.create(
        provider="openai",
        model="gpt-default",
        input_per_mtok=Decimal("1"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    client = login(acme.users["finance"])
    assert client.get(PRICES).status_code == 200
    response = client.post(
        reverse("admin:gateway_price_change", args=[default.pk]),
        price_form(default, input_per_mtok="9"),
    )
    assert response.status_code == 403
    default.refresh_from_db()
    assert default.input_per_mtok == Decimal("1")


def import_file(client, url, name, text):
    """Upload, return the preview response; confirm with `confirm(response)`."""
    return client.post(
        url,
        {"format": "0", "import_file": SimpleUploadedFile(name, text.encode(), "text/csv")},
    )


def confirm(client, url, preview):
    form = preview.context["confirm_form"]
    return client.post(url, {k: form.initial[k] for k in form.fields if k in form.initial})


PRICE_CSV = (
    "provider,model,kind,input_per_mtok,output_per_mtok,cached_input_per_mtok,"
    "cache_write_per_mtok,max_output_tokens,context_window,currency,premium\n"
    "fake,acme-model,chat,4.000000,10.000000,1.250000,,4096,128000,USD,0\n"
    "fake,acme-brand-new,chat,1.000000,2.000000,,,4096,128000,USD,1\n"
)


def test_price_import_previews_then_applies_keeping_history(acme, login):
    client = login(acme.users["finance"])
    before = Price.objects.filter(organization=acme.org).count()
    preview = import_file(client, reverse("admin:gateway_price_import"), "prices.csv", PRICE_CSV)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    kinds = sorted(row.import_type for row in result.rows)
    assert kinds == ["new", "update"]
    assert Price.objects.filter(organization=acme.org).count() == before  # preview only

    done = confirm(client, reverse("admin:gateway_price_process_import"), preview)
    assert done.status_code == 302
    rows = Price.objects.filter(organization=acme.org, model="acme-model").order_by(
        "effective_from"
    )
    assert [(p.input_per_mtok, p.effective_to is None) for p in rows] == [
        (Decimal("2.5"), False),
        (Decimal("4"), True),
    ]
    assert Price.objects.get(model="acme-brand-new").premium is True
    assert AuditLog.objects.filter(action="price.update", actor="acme_finance").count() == 1
    assert AuditLog.objects.filter(action="price.create").count() == 1


def test_price_export_is_the_catalog_the_user_sees(acme, outsider, login):
    client = login(acme.users["finance"])
    response = client.post(
        reverse("admin:gateway_price_export"),
        {"format": "0", "resource": "0", **{f"pricesresource_{f}": "on" for f in ["provider"]}},
    )
    if response.status_code == 200 and response.get("Content-Type", "").startswith("text/csv"):
        body = response.content.decode()
    else:  # import-export 4 asks which fields; take its defaults
        form = response.context["form"]
        data = {"format": "0", "resource": "0"}
        data.update({name: "on" for name in form.fields if name.startswith("priceresource_")})
        body = client.post(reverse("admin:gateway_price_export"), data).content.decode()
    assert "acme-model" in body
    assert "outsider" not in body


INVOICE_CSV = "provider,period,amount,currency,reference\nfake,2026-05,100.00,USD,INV-1\nopenai,2026-05,50,usd,INV-2\n"


@pytest.fixture
def may_spend(acme):
    """fake: 101.5 recorded (variance 1.5 %), openai: 45 (-10 %), anthropic: no invoice."""
    day = datetime(2026, 5, 10, 12, tzinfo=UTC)
    for cost in ("100", "1.496", "0.004"):
        make_event(acme.org, acme.owned, marker="acme", cost=cost, created_at=day)
    make_event(acme.org, acme.owned, marker="acme", cost="45", provider="openai", created_at=day)
    make_event(acme.org, acme.owned, marker="acme", cost="3", provider="anthropic", created_at=day)
    # Another month and another tenant do not count.
    make_event(
        acme.org,
        acme.owned,
        marker="acme",
        cost="7",
        created_at=datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC),
    )
    return acme


def test_invoice_import_and_reconciliation_math(may_spend, outsider, login, settings):
    settings.KT_RECONCILE_TOLERANCE_PERCENT = 2.0
    acme = may_spend
    client = login(acme.users["finance"])
    preview = import_file(
        client, reverse("admin:reports_providerinvoice_import"), "inv.csv", INVOICE_CSV
    )
    assert not preview.context["result"].has_validation_errors()
    confirm(client, reverse("admin:reports_providerinvoice_process_import"), preview)
    invoice = ProviderInvoice.objects.get(organization=acme.org, provider="openai")
    assert (invoice.period.isoformat(), invoice.amount, invoice.currency) == (
        "2026-05-01",
        Decimal("50"),
        "USD",
    )
    assert (
        AuditLog.objects.filter(action="provider_invoice.create", actor="acme_finance").count() == 2
    )

    with time_machine.travel(datetime(2026, 6, 15, tzinfo=UTC)):
        rows = {
            (r.provider, r.month.isoformat()): r for r in reconciliation_rows(organization=acme.org)
        }
        page = client.get(reverse("admin:reports_providerinvoice_reconciliation"))
    fake = rows[("fake", "2026-05-01")]
    assert (fake.recorded, fake.invoiced, fake.variance, fake.percent, fake.flagged) == (
        Decimal("101.50"),
        Decimal("100.00"),
        Decimal("1.50"),
        Decimal("1.50"),
        False,
    )
    openai = rows[("openai", "2026-05-01")]
    assert (openai.variance, openai.percent, openai.flagged) == (
        Decimal("-5.00"),
        Decimal("-10.00"),
        True,
    )
    assert rows[("anthropic", "2026-05-01")].invoiced is None
    assert rows[("anthropic", "2026-05-01")].flagged
    assert rows[("fake", "2026-06-01")].recorded == Decimal("7.00")
    assert not any(p == "outsidercloud" for p, _ in rows)

    assert page.status_code == 200
    html = page.content.decode()
    # openai and anthropic (May), fake (June: no invoice), acmecloud (May: invoice, no spend)
    assert html.count("kt-flagged") == 4
    assert "outsider" not in html.lower()
    link = re.search(r'href="([^"]*provider=openai[^"]*)"', html).group(1).replace("&amp;", "&")
    events = client.get(link)
    assert events.status_code == 200
    assert events.context["totals"]["cost"] == Decimal("45.00")


def test_an_invoice_file_with_a_bad_period_is_refused_whole(acme, login):
    client = login(acme.users["finance"])
    before = ProviderInvoice.objects.count()
    preview = import_file(
        client,
        reverse("admin:reports_providerinvoice_import"),
        "inv.csv",
        "provider,period,amount,currency\nfake,May 2026,1,USD\nopenai,2026-05,2,XXX\n",
    )
    result = preview.context["result"]
    assert result.has_validation_errors()
    assert "confirm_form" not in preview.context or preview.context["confirm_form"] is None
    assert ProviderInvoice.objects.count() == before


def test_an_invoice_file_without_the_amount_column_imports_nothing(acme, login):
    client = login(acme.users["finance"])
    before = ProviderInvoice.objects.count()
    preview = import_file(
        client,
        reverse("admin:reports_providerinvoice_import"),
        "inv.csv",
        "provider,period,currency\nfake,2026-05,USD\n",
    )
    assert preview.status_code == 200
    assert b"missing columns: amount" in preview.content
    assert not preview.context.get("confirm_form")
    assert ProviderInvoice.objects.count() == before


def test_a_superuser_edit_of_the_default_catalog_is_audited_without_organization(
    acme, superuser, login
):
    default = Price.objects.create(
        provider="openai",
        model="gpt-default",
        input_per_mtok=Decimal("1"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    client = login(superuser)
    response = client.post(
        reverse("admin:gateway_price_change", args=[default.pk]),
        {**price_form(default, input_per_mtok="1.5"), "organization": ""},
    )
    assert response.status_code == 302
    row = AuditLog.objects.get(action="price.update", object_id=str(default.pk))
    assert (row.organization_id, row.actor) == (None, "root")
