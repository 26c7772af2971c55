"""Importing provider invoices as the demo's login, a superuser who belongs to the demo
organization: it imports for that organization. A superuser of no organization, or a bad file,
gets a clear message; no admin page shows a traceback."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chargeback.models import AuditLog, Membership
from reports.models import ProviderInvoice

from .conftest import PASSWORD
from .test_pricing_and_reconciliation import INVOICE_CSV, confirm, import_file

pytestmark = pytest.mark.django_db

IMPORT = "admin:reports_providerinvoice_import"
PROCESS = "admin:reports_providerinvoice_process_import"


def _superuser(username, organization=None):
    user = get_user_model().objects.create_superuser(
        username=username, email=f"{username}@example.com", password=PASSWORD
    )
    if organization is not None:
        Membership.objects.create(user=user, organization=organization, role="owner")
    return user


def test_a_superuser_who_owns_the_organization_imports_for_it(acme, outsider, login):
    client = login(_superuser("admin", organization=acme.org))

    preview = import_file(client, reverse(IMPORT), "inv.csv", INVOICE_CSV)
    assert preview.status_code == 200
    assert not preview.context["result"].has_errors()
    assert not preview.context["result"].has_validation_errors()
    done = confirm(client, reverse(PROCESS), preview)
    assert done.status_code == 302

    invoices = ProviderInvoice.objects.filter(reference__in=["INV-1", "INV-2"])
    assert {(i.organization_id, i.provider, i.amount) for i in invoices} == {
        (acme.org.pk, "fake", Decimal("100.00")),
        (acme.org.pk, "openai", Decimal("50")),
    }
    assert (
        AuditLog.objects.filter(
            organization=acme.org, action="provider_invoice.create", actor="admin"
        ).count()
        == 2
    )
    page = client.get(reverse("admin:reports_providerinvoice_changelist")).content.decode()
    assert "100.00" in page
    assert "Traceback" not in page


def test_a_superuser_of_no_organization_is_told_why_not(acme, login):
    client = login(_superuser("platform"))

    for url in (reverse(IMPORT), reverse(PROCESS)):
        response = client.post(url, {"format": "0"}, follow=True)
        page = response.content.decode()
        assert response.status_code == 200
        assert "Invoices are imported for one organization" in page
        assert "Traceback" not in page
        assert "NOT NULL" not in page
    assert not ProviderInvoice.objects.filter(reference__in=["INV-1", "INV-2"]).exists()


def test_a_bad_file_shows_what_is_wrong_without_a_traceback(acme, login):
    client = login(_superuser("admin", organization=acme.org))

    missing = import_file(client, reverse(IMPORT), "inv.csv", "provider,amount\nfake,1\n")
    bad_row = import_file(
        client, reverse(IMPORT), "inv.csv", "provider,period,amount,currency\nfake,May,1,USD\n"
    )

    assert "missing columns: currency, period</div>" in missing.content.decode()
    assert "period must look like 2026-05" in bad_row.content.decode()
    for response in (missing, bad_row):
        page = response.content.decode()
        assert "Traceback" not in page
        assert 'File "' not in page  # no frame of a stack trace either


def test_a_new_rows_organization_starts_as_the_superusers_own(acme, outsider, login):
    client = login(_superuser("admin", organization=acme.org))

    form = client.get(reverse("admin:chargeback_department_add")).context["adminform"].form

    assert form.fields["organization"].initial == acme.org.pk
    assert set(form.fields["organization"].queryset) >= {acme.org, outsider.org}  # may pick
